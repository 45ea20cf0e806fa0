/**
 * Destinations through outages, end to end: a consumer that is down for a while (connection
 * refused, then 503, then 200) gets every event once it is back, with no more requests than
 * attempts and its circuit opened and closed again; and a service killed with SIGKILL while
 * requests are in flight delivers every acknowledged event after a restart on the same KV file,
 * repeating only the deliveries that were in flight at the kill.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { webhookId } from "../src/destinations/payload.ts";
import { messageEventId } from "../src/events/event_ids.ts";
import { ManualClock } from "../src/ops/clock.ts";
import { CIRCUIT_STATE_VALUES } from "../src/ops/destination_metrics.ts";
import { textsDelivery } from "./deliveries.ts";
import { serviceEnv, startService, withDataDir } from "./service_process.ts";
import { postSigned, textDelivery } from "./signed_deliveries.ts";
import {
  advanceUntil,
  postDelivery,
  startTestServer,
  TEST_ADMIN_TOKEN,
  waitFor,
} from "./support.ts";

/** One POST a consumer received and what it answered. */
interface Received {
  webhookId: string;
  isVerified: boolean;
  status: number;
}

/** A fresh Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes. */
function newSecret(): string {
  return `whsec_${crypto.getRandomValues(new Uint8Array(32)).toBase64()}`;
}

/** A free port on 127.0.0.1, closed again: connections to it are refused until someone listens. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** The value of `wa_webhook_destination_circuit_state` for `destination` in a scrape. */
async function circuitState(origin: string, destination: string): Promise<number | undefined> {
  const headers = { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
  const text = await (await fetch(`${origin}/metrics`, { headers })).text();
  const prefix = `wa_webhook_destination_circuit_state{destination="${destination}"} `;
  const line = text.split("\n").find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(prefix.length));
}

Deno.test("a consumer down for a while (refused, then 503, then 200) gets every event once back", async () => {
  const clock = new ManualClock(Date.now());
  const port = closedPort();
  const secret = newSecret();
  const verifier = new Webhook(secret);
  await using server = await startTestServer({
    clock,
    env: {
      DESTINATIONS: JSON.stringify([{
        name: "crm",
        url: `http://127.0.0.1:${port}/hooks`,
        secrets: [secret],
      }]),
      RETRY_MAX_ATTEMPTS: "100",
      RETRY_BASE_DELAY_MS: "10",
      RETRY_MAX_DELAY_MS: "50",
    },
  });
  const wamids = Array.from({ length: 20 }, (_, n) => `wamid.OUT${n}`);
  const eventIds = wamids.map(messageEventId);
  const ids = new Set(eventIds.map((id) => webhookId("crm", id)));
  const logged = (msg: string, to?: string) =>
    server.logs.lines.some((line) =>
      line.msg === msg && line.destination === "crm" && (to === undefined || line.to === to)
    );
  assert.equal((await postDelivery(server.origin, textsDelivery(wamids))).status, 200);

  // Down: nothing listens. Failures in a row open the circuit.
  await advanceUntil(
    clock,
    () => Promise.resolve(logged("destination failing: deliveries wait for a probe")),
    "the circuit open while the port refuses",
    10,
  );
  assert.equal(await circuitState(server.origin, "crm"), CIRCUIT_STATE_VALUES.open);

  // Listening again, but answering 503 at first, then 200.
  let status = 503;
  const received: Received[] = [];
  await using _consumer = Deno.serve(
    { hostname: "127.0.0.1", port, onListen: () => {} },
    async (req) => {
      const body = await req.text();
      let isVerified = true;
      try {
        verifier.verify(body, Object.fromEntries(req.headers));
      } catch {
        isVerified = false;
      }
      received.push({ webhookId: req.headers.get("webhook-id") ?? "", isVerified, status });
      return new Response(null, { status });
    },
  );
  // Each probe's 503 opens the circuit again, for longer.
  await advanceUntil(
    clock,
    () => Promise.resolve(received.length >= 2),
    "two probes answered 503",
    500,
  );
  assert.equal(await circuitState(server.origin, "crm"), CIRCUIT_STATE_VALUES.open);
  assert.ok(!logged("destination circuit changed", "closed"), "the circuit stayed open on 503s");
  status = 200;
  await advanceUntil(
    clock,
    async () => {
      const jobs = await Promise.all(eventIds.map((id) => server.store.getJobs(id)));
      return jobs.every((list) => list.length === 1 && list[0]!.state === "delivered");
    },
    "every job delivered",
    500,
  );
  assert.ok(logged("destination circuit changed", "closed"), "the circuit closed again");
  assert.equal(await circuitState(server.origin, "crm"), CIRCUIT_STATE_VALUES.closed);

  assert.ok(received.every((r) => r.isVerified), "every request verifies");
  assert.ok(received.every((r) => ids.has(r.webhookId)), "only the posted events' webhook-ids");
  let refusedAttempts = 0;
  for (const eventId of eventIds) {
    const id = webhookId("crm", eventId);
    const [job] = await server.store.getJobs(eventId);
    const requests = received.filter((r) => r.webhookId === id);
    assert.deepEqual(
      requests.filter((r) => r.status === 200).length,
      1,
      `${eventId} answered 200 once`,
    );
    // One request per attempt that reached the consumer: refused attempts sent nothing.
    const answered = job!.history.filter((h) => /HTTP 503/.test(h.error ?? "")).length + 1;
    assert.equal(requests.length, answered, `${eventId}: requests against its answered attempts`);
    assert.ok(requests.length <= job!.attempts, `${eventId}: no more requests than attempts`);
    refusedAttempts += job!.history.filter((h) => h.error !== undefined && !/HTTP/.test(h.error))
      .length;
  }
  assert.ok(refusedAttempts > 0, "some attempts met a refused connection");
  assert.ok(received.some((r) => r.status === 503), "some requests met a 503");
});

Deno.test({
  name: "SIGKILL mid-delivery: after a restart every acknowledged event reaches the destination",
  async fn() {
    await withDataDir(async (kvPath) => {
      const events = 12;
      const held = 4;
      const secret = newSecret();
      const verifier = new Webhook(secret);
      const received: Received[] = [];
      /** Requests held open: answered only once the test ends (the service is dead by then). */
      const heldIds = new Set<string>();
      const { promise: released, resolve: release } = Promise.withResolvers<void>();
      let isHolding = true;
      await using consumer = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        async (req) => {
          const body = await req.text();
          const id = req.headers.get("webhook-id") ?? "";
          let isVerified = true;
          try {
            verifier.verify(body, Object.fromEntries(req.headers));
          } catch {
            isVerified = false;
          }
          if (isHolding && heldIds.size < held) {
            heldIds.add(id);
            await released;
            return new Response(null, { status: 503 });
          }
          received.push({ webhookId: id, isVerified, status: 200 });
          return new Response(null, { status: 200 });
        },
      );
      // Disposed before the consumer, whose shutdown waits for its handlers.
      await using _release = { [Symbol.asyncDispose]: () => Promise.resolve(release()) };
      const env = serviceEnv(kvPath, {
        LOG_LEVEL: "debug",
        LEASE_MS: "1000", // a claim's lease is then the destination's timeout plus the margin
        RETRY_BASE_DELAY_MS: "10",
        RETRY_MAX_DELAY_MS: "50",
        DESTINATIONS: JSON.stringify([{
          name: "crm",
          url: `http://127.0.0.1:${consumer.addr.port}/hooks`,
          secrets: [secret],
          timeoutMs: 2_000, // the lease is this plus a margin: the restart re-claims soon
          concurrency: events,
        }]),
      });
      const deliveries = await Promise.all(
        Array.from({ length: events }, (_, n) => textDelivery(n, "KILL")),
      );
      const ids = deliveries.map((d) => webhookId("crm", d.id));

      const first = await startService(env);
      const statuses = await Promise.all(deliveries.map((d) => postSigned(first.origin, d)));
      assert.deepEqual(statuses, deliveries.map(() => 200), "every event acknowledged");
      const deliveredLines = () =>
        first.output.filter((line) => line.includes('"msg":"delivered"')).length;
      // Held requests in flight, every other one answered and its result stored.
      await waitFor(
        () => heldIds.size === held && deliveredLines() === events - held,
        "the held requests in flight and the rest delivered",
      );
      await first.stop("SIGKILL");
      isHolding = false;
      const answeredBeforeKill = new Set(received.map((r) => r.webhookId));
      assert.equal(answeredBeforeKill.size, events - held);

      await using second = await startService(env);
      await waitFor(
        () => ids.every((id) => received.some((r) => r.webhookId === id)),
        "every event answered 200",
        15_000,
      );
      const { code } = await second.stop("SIGTERM");
      assert.equal(code, 0);

      assert.ok(received.every((r) => r.isVerified), "every request verifies");
      const repeated = ids.filter((id) => received.filter((r) => r.webhookId === id).length > 1);
      assert.deepEqual(repeated, [], "no event answered 200 twice");
      // Only the held ones went out again: what was delivered before the kill was not resent.
      const afterKill = received.slice(events - held).map((r) => r.webhookId).sort();
      assert.deepEqual(afterKill, [...heldIds].sort());
    });
  },
});
