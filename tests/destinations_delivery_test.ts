/**
 * Delivery to HTTP destinations end to end: the app on a real socket with `DESTINATIONS` pointing
 * at consumers served on 127.0.0.1, each verifying every POST with `npm:standardwebhooks` over the
 * raw body. Every event arrives once per destination whose filter it passes, signed, under a
 * `webhook-id` stable per (destination, event); a 503 is retried until delivered, and a 400 ends
 * the job dead after the configured attempts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { webhookId } from "../src/destinations/payload.ts";
import { messageEventId } from "../src/events/event_ids.ts";
import { messagesDelivery, textsDelivery } from "./deliveries.ts";
import { ManualClock } from "../src/ops/clock.ts";
import { DEFAULT_CIRCUIT_LIMITS } from "../src/destinations/circuit.ts";
import { advanceUntil, postDelivery, startTestServer, waitFor } from "./support.ts";

/** One POST a consumer received. */
interface Received {
  webhookId: string;
  isVerified: boolean;
  type: string;
  eventId: string;
}

/** A consumer of deliveries on 127.0.0.1, answering the nth POST (from 0) with `statusOf(n)`. */
interface Consumer extends AsyncDisposable {
  url: string;
  secret: string;
  received: Received[];
}

/** A fresh Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes. */
function newSecret(): string {
  return `whsec_${crypto.getRandomValues(new Uint8Array(32)).toBase64()}`;
}

function startConsumer(statusOf: (n: number) => number = () => 204): Consumer {
  const secret = newSecret();
  const verifier = new Webhook(secret);
  const received: Received[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.text();
    const headers = Object.fromEntries(req.headers);
    let isVerified = true;
    try {
      verifier.verify(body, headers);
    } catch {
      isVerified = false;
    }
    const payload = JSON.parse(body) as { type: string; data: { id: string } };
    const n = received.length;
    received.push({
      webhookId: headers["webhook-id"] ?? "",
      isVerified,
      type: payload.type,
      eventId: payload.data.id,
    });
    return new Response(null, { status: statusOf(n) });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/hooks`,
    secret,
    received,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** `DESTINATIONS` for the given declarations. */
function destinationsEnv(
  declarations: { name: string; consumer: Consumer; filter?: unknown; paused?: boolean }[],
  env: Record<string, string> = {},
): Record<string, string> {
  return {
    DESTINATIONS: JSON.stringify(declarations.map(({ name, consumer, filter, paused }) => ({
      name,
      url: consumer.url,
      secrets: [consumer.secret],
      ...(filter === undefined ? {} : { filter }),
      ...(paused === undefined ? {} : { paused }),
    }))),
    ...env,
  };
}

/** A delivery of one image message with wamid `wamid`. */
function imageDelivery(wamid: string): string {
  return JSON.stringify(messagesDelivery({
    contacts: [{ profile: { name: "Ana" }, wa_id: "5511999990000" }],
    messages: [{
      from: "5511999990000",
      id: wamid,
      timestamp: "1767225600",
      type: "image",
      image: { id: "media-1", mime_type: "image/jpeg", sha256: "abc" },
    }],
  }));
}

Deno.test("every recorded event reaches its destination once, signed, under a stable webhook-id", async () => {
  await using consumer = startConsumer();
  await using server = await startTestServer({
    env: destinationsEnv([{ name: "crm", consumer }]),
  });
  const wamids = ["wamid.D1", "wamid.D2", "wamid.D3"];
  assert.equal((await postDelivery(server.origin, textsDelivery(wamids))).status, 200);
  // Meta's retry of the same delivery records nothing new, so nothing is delivered again.
  assert.equal((await postDelivery(server.origin, textsDelivery(wamids))).status, 200);
  const eventIds = wamids.map(messageEventId);
  await waitFor(async () => {
    const jobs = await Promise.all(eventIds.map((id) => server.store.getJobs(id)));
    return jobs.every((list) => list.length === 1 && list[0]!.state === "delivered");
  }, "every job delivered");

  assert.deepEqual(consumer.received.map((r) => r.eventId).sort(), [...eventIds].sort());
  for (const received of consumer.received) {
    assert.equal(received.isVerified, true, `signature of ${received.eventId}`);
    assert.equal(received.type, "whatsapp.message.text");
    assert.equal(received.webhookId, webhookId("crm", received.eventId));
  }
  const job = (await server.store.getJobs(eventIds[0]!))[0]!;
  assert.equal(job.attempts, 1);
  const text = server.logs.text();
  assert.ok(!text.includes(consumer.secret.slice(6)), "the secret is never logged");
  assert.ok(!text.includes("message 0"), "no body is logged");
});

Deno.test("two destinations each get every event their filter passes, and only those", async () => {
  await using all = startConsumer();
  await using images = startConsumer();
  await using server = await startTestServer({
    env: destinationsEnv([
      { name: "all", consumer: all },
      { name: "images", consumer: images, filter: { messageTypes: ["image"] } },
    ]),
  });
  assert.equal((await postDelivery(server.origin, textsDelivery(["wamid.T1"]))).status, 200);
  assert.equal((await postDelivery(server.origin, imageDelivery("wamid.I1"))).status, 200);
  const [text, image] = [messageEventId("wamid.T1"), messageEventId("wamid.I1")];
  await waitFor(async () => {
    const jobs = [...await server.store.getJobs(text), ...await server.store.getJobs(image)];
    return jobs.length === 3 && jobs.every((job) => job.state === "delivered");
  }, "three jobs delivered");

  assert.deepEqual(all.received.map((r) => r.eventId).sort(), [image, text].sort());
  assert.deepEqual(images.received.map((r) => [r.eventId, r.type]), [
    [image, "whatsapp.message.image"],
  ]);
  assert.ok([...all.received, ...images.received].every((r) => r.isVerified));
  assert.equal(images.received[0]!.webhookId, webhookId("images", image));
  assert.notEqual(images.received[0]!.webhookId, webhookId("all", image));
  assert.deepEqual((await server.store.getJobs(text)).map((job) => job.destination), ["all"]);
});

Deno.test("a 503 is retried after the retry delay and the event then delivered", async () => {
  await using consumer = startConsumer((n) => (n === 0 ? 503 : 200));
  await using server = await startTestServer({
    env: destinationsEnv([{ name: "flaky", consumer }], {
      RETRY_BASE_DELAY_MS: "20",
      RETRY_MAX_DELAY_MS: "50",
    }),
  });
  const eventId = messageEventId("wamid.R1");
  assert.equal((await postDelivery(server.origin, textsDelivery(["wamid.R1"]))).status, 200);
  await waitFor(async () => {
    const [job] = await server.store.getJobs(eventId);
    return job?.state === "delivered";
  }, "the job delivered");

  const [job] = await server.store.getJobs(eventId);
  assert.equal(job!.attempts, 2);
  assert.equal(job!.lastError, undefined);
  assert.match(job!.history[0]!.error ?? "", /HTTP 503/);
  assert.equal(consumer.received.length, 2);
  assert.ok(consumer.received.every((r) => r.isVerified));
  // Both attempts carry the same webhook-id, so the consumer deduplicates them.
  assert.equal(consumer.received[0]!.webhookId, consumer.received[1]!.webhookId);
  assert.ok(
    server.logs.lines.some((line) =>
      line.msg === "delivery failed, will retry" && line.destination === "flaky" &&
      line.eventId === eventId
    ),
  );
});

Deno.test("a 400 ends the job dead after RETRY_MAX_ATTEMPTS, the reason kept", async () => {
  await using consumer = startConsumer(() => 400);
  await using server = await startTestServer({
    env: destinationsEnv([{ name: "strict", consumer }], {
      RETRY_MAX_ATTEMPTS: "3",
      RETRY_BASE_DELAY_MS: "10",
      RETRY_MAX_DELAY_MS: "20",
    }),
  });
  const eventId = messageEventId("wamid.X1");
  assert.equal((await postDelivery(server.origin, textsDelivery(["wamid.X1"]))).status, 200);
  await waitFor(async () => {
    const [job] = await server.store.getJobs(eventId);
    return job?.state === "dead";
  }, "the job dead");

  const [job] = await server.store.getJobs(eventId);
  assert.equal(job!.attempts, 3);
  assert.match(job!.lastError ?? "", /HTTP 400: the destination refused this event as malformed/);
  assert.equal(consumer.received.length, 3);
  assert.ok(
    server.logs.lines.some((line) =>
      line.msg === "delivery dead after its last attempt" && line.destination === "strict" &&
      line.eventId === eventId
    ),
  );
});

Deno.test("a 410 keeps the job waiting and stops deliveries to that destination only", async () => {
  await using gone = startConsumer(() => 410);
  await using healthy = startConsumer();
  await using server = await startTestServer({
    env: destinationsEnv([{ name: "gone", consumer: gone }, {
      name: "healthy",
      consumer: healthy,
    }]),
  });
  const [first, second] = [messageEventId("wamid.G1"), messageEventId("wamid.G2")];
  assert.equal((await postDelivery(server.origin, textsDelivery(["wamid.G1"]))).status, 200);
  await waitFor(
    () => server.logs.lines.some((line) => line.level === "error" && line.destination === "gone"),
    "the error line naming the gone destination",
  );
  assert.equal((await postDelivery(server.origin, textsDelivery(["wamid.G2"]))).status, 200);
  await waitFor(async () => {
    const jobs = await server.store.getJobs(second);
    return jobs.some((job) => job.destination === "healthy" && job.state === "delivered");
  }, "the second event delivered to the healthy destination");

  const goneJob = (await server.store.getJobs(first)).find((job) => job.destination === "gone");
  assert.equal(goneJob!.state, "retrying");
  assert.match(goneJob!.lastError ?? "", /HTTP 410/);
  const waiting = (await server.store.getJobs(second)).find((job) => job.destination === "gone");
  assert.equal(waiting!.state, "pending");
  assert.deepEqual(gone.received.map((r) => r.eventId), [first]);
});

Deno.test("a paused destination gets no delivery: its jobs wait", async () => {
  await using paused = startConsumer();
  await using healthy = startConsumer();
  await using server = await startTestServer({
    env: destinationsEnv([
      { name: "paused", consumer: paused, paused: true },
      { name: "healthy", consumer: healthy },
    ]),
  });
  const eventId = messageEventId("wamid.P1");
  assert.equal((await postDelivery(server.origin, textsDelivery(["wamid.P1"]))).status, 200);
  await waitFor(async () => {
    const jobs = await server.store.getJobs(eventId);
    return jobs.some((job) => job.destination === "healthy" && job.state === "delivered");
  }, "the event delivered to the healthy destination");

  const job = (await server.store.getJobs(eventId)).find((job) => job.destination === "paused");
  assert.equal(job!.state, "pending");
  assert.equal(paused.received.length, 0);
});

Deno.test("no more than `concurrency` requests are in flight to a destination", async () => {
  const secret = newSecret();
  let inFlight = 0;
  let maxInFlight = 0;
  let started = 0;
  const releases: (() => void)[] = [];
  await using consumer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      await req.text();
      started++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise<void>((resolve) => releases.push(resolve));
      inFlight--;
      return new Response(null, { status: 204 });
    },
  );
  await using server = await startTestServer({
    env: {
      DESTINATIONS: JSON.stringify([{
        name: "narrow",
        url: `http://127.0.0.1:${consumer.addr.port}/`,
        secrets: [secret],
        concurrency: 2,
      }]),
    },
  });
  const wamids = ["wamid.C1", "wamid.C2", "wamid.C3", "wamid.C4", "wamid.C5"];
  assert.equal((await postDelivery(server.origin, textsDelivery(wamids))).status, 200);
  for (let answered = 0; answered < wamids.length; answered++) {
    // Each answer frees one slot: the next request comes only then.
    await waitFor(() => started >= Math.min(wamids.length, answered + 2), "requests in flight");
    await waitFor(() => releases.length > 0, "a request waiting");
    releases.shift()!();
  }
  await waitFor(async () => {
    const jobs = await Promise.all(wamids.map((w) => server.store.getJobs(messageEventId(w))));
    return jobs.every((list) => list[0]?.state === "delivered");
  }, "every job delivered");
  assert.equal(started, wamids.length);
  assert.equal(maxInFlight, 2);
});

Deno.test("attempts to a destination with ratePerSecond start that far apart", async () => {
  const starts: number[] = [];
  await using consumer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      starts.push(performance.now());
      await req.text();
      return new Response(null, { status: 204 });
    },
  );
  await using server = await startTestServer({
    env: {
      DESTINATIONS: JSON.stringify([{
        name: "paced",
        url: `http://127.0.0.1:${consumer.addr.port}/`,
        secrets: [newSecret()],
        ratePerSecond: 10,
      }]),
    },
  });
  const wamids = ["wamid.L1", "wamid.L2", "wamid.L3"];
  assert.equal((await postDelivery(server.origin, textsDelivery(wamids))).status, 200);
  await waitFor(() => starts.length === wamids.length, "every attempt");
  const gaps = starts.slice(1).map((at, i) => at - starts[i]!);
  // 100 ms apart, less a few ms for the request's way from the timer to the consumer.
  assert.ok(gaps.every((gap) => gap >= 90), `gaps ${gaps.map(Math.round).join(", ")} ms`);
});

Deno.test("after repeated failures the circuit holds a destination's jobs until one probe", async () => {
  const clock = new ManualClock(Date.now());
  await using consumer = startConsumer(() => 503);
  await using server = await startTestServer({
    clock,
    env: destinationsEnv([{ name: "down", consumer }], {
      RETRY_MAX_ATTEMPTS: "100",
      RETRY_BASE_DELAY_MS: "10",
      RETRY_MAX_DELAY_MS: "20",
    }),
  });
  const { failureThreshold, baseProbeIntervalMs } = DEFAULT_CIRCUIT_LIMITS;
  assert.equal((await postDelivery(server.origin, textsDelivery(["wamid.O1"]))).status, 200);
  const isOpen = () =>
    server.logs.lines.some((line) =>
      line.msg === "destination failing: deliveries wait for a probe" && line.destination === "down"
    );
  await advanceUntil(clock, () => Promise.resolve(isOpen()), "the circuit open", 10);
  assert.equal(consumer.received.length, failureThreshold);
  // The retries fall due every 20 ms of clock time; while the circuit is open none goes out, and
  // once the probe interval has passed exactly one does.
  const eventId = messageEventId("wamid.O1");
  await advanceUntil(
    clock,
    async () => (await server.store.getJobs(eventId))[0]!.attempts > failureThreshold,
    "the probe settled",
    100,
  );
  const [job] = await server.store.getJobs(eventId);
  assert.ok(job!.history.at(-1)!.at - job!.history.at(-2)!.at >= baseProbeIntervalMs);
  assert.equal(consumer.received.length, failureThreshold + 1);
});

Deno.test("stopping aborts an attempt still in flight after the grace; its job keeps its lease", async () => {
  let requests = 0;
  const { promise: released, resolve: release } = Promise.withResolvers<void>();
  await using consumer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async () => {
      requests++;
      await released; // no answer until the test ends
      return new Response(null, { status: 204 });
    },
  );
  // Disposed before the consumer, whose shutdown waits for its handlers.
  await using _answer = { [Symbol.asyncDispose]: () => Promise.resolve(release()) };
  await using server = await startTestServer({
    env: {
      DESTINATIONS: JSON.stringify([{
        name: "slow",
        url: `http://127.0.0.1:${consumer.addr.port}/`,
        secrets: [newSecret()],
        timeoutMs: 60_000,
      }]),
    },
  });
  const eventId = messageEventId("wamid.S1");
  assert.equal((await postDelivery(server.origin, textsDelivery(["wamid.S1"]))).status, 200);
  await waitFor(() => requests === 1, "the request in flight");
  const started = performance.now();
  await server.app.deliveries.stop(50);
  assert.ok(performance.now() - started < 5_000, "stop waited for the 60 s timeout");
  const [job] = await server.store.getJobs(eventId);
  assert.equal(job!.state, "delivering");
  assert.equal(job!.attempts, 0);
  assert.ok(
    server.logs.lines.some((line) =>
      line.msg === "deliveries still in flight at shutdown; aborting them" &&
      line.destination === "slow"
    ),
  );
});
