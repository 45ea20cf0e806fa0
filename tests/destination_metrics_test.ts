/**
 * Metrics and readiness of HTTP destinations end to end: the app on a real socket with
 * `DESTINATIONS` pointing at a consumer served on 127.0.0.1, read through `GET /metrics` and
 * `GET /readyz`. Attempts and settled jobs are counted per destination, the backlog and circuit
 * gauges follow the store and the circuit, and `/readyz` warns for a destination whose oldest due
 * job is too old.
 *
 * @module
 */
import assert from "node:assert/strict";
import { messageEventId } from "../src/events/event_ids.ts";
import { DEFAULT_CIRCUIT_LIMITS } from "../src/destinations/circuit.ts";
import { ManualClock } from "../src/ops/clock.ts";
import { DESTINATION_BACKLOG_WARN_AFTER_MS } from "../src/ops/health.ts";
import { textsDelivery } from "./deliveries.ts";
import {
  advanceUntil,
  postDelivery,
  startTestServer,
  TEST_ADMIN_TOKEN,
  waitFor,
} from "./support.ts";

/** A consumer on 127.0.0.1 answering the nth POST (from 0) with `statusOf(n)`; counts POSTs. */
function startConsumer(statusOf: (n: number) => number) {
  let received = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.text();
    return new Response(null, { status: statusOf(received++) });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/hooks`,
    received: () => received,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** `DESTINATIONS` declaring one destination `name` at `url`, and more settings. */
function destinationEnv(
  name: string,
  url: string,
  env: Record<string, string> = {},
  extra: Record<string, unknown> = {},
): Record<string, string> {
  const secret = `whsec_${crypto.getRandomValues(new Uint8Array(32)).toBase64()}`;
  return { DESTINATIONS: JSON.stringify([{ name, url, secrets: [secret], ...extra }]), ...env };
}

/** The value of the series `name{labels}` in a scrape of `origin`; `undefined` when absent. */
async function scrape(origin: string, name: string, labels: string): Promise<number | undefined> {
  const headers = { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
  const text = await (await fetch(`${origin}/metrics`, { headers })).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

Deno.test("a delivered event counts an attempt delivered and a job settled delivered for its destination", async () => {
  await using consumer = startConsumer(() => 204);
  await using server = await startTestServer({ env: destinationEnv("crm", consumer.url) });
  assert.equal((await postDelivery(server.origin, textsDelivery(["wamid.M1"]))).status, 200);
  await waitFor(async () => {
    const [job] = await server.store.getJobs(messageEventId("wamid.M1"));
    return job?.state === "delivered";
  }, "the job delivered");
  const origin = server.origin;
  await waitFor(
    async () =>
      await scrape(
        origin,
        "wa_webhook_destination_jobs_settled_total",
        'destination="crm",state="delivered"',
      ) === 1,
    "the settled job counted",
  );
  const attempts = "wa_webhook_destination_attempts_total";
  assert.equal(await scrape(origin, attempts, 'destination="crm",outcome="delivered"'), 1);
  assert.equal(await scrape(origin, attempts, 'destination="crm",outcome="retry"'), 0);
  assert.equal(
    await scrape(origin, "wa_webhook_destination_attempt_seconds_count", 'destination="crm"'),
    1,
  );
  assert.equal(
    await scrape(origin, "wa_webhook_destination_delivery_lag_seconds_count", 'destination="crm"'),
    1,
  );
});

Deno.test("a 503 counts an attempt retry and the backlog gauge shows its job due later", async () => {
  await using consumer = startConsumer(() => 503);
  await using server = await startTestServer({
    env: destinationEnv("flaky", consumer.url, {
      RETRY_BASE_DELAY_MS: "600000",
      RETRY_MAX_DELAY_MS: "600000",
    }),
  });
  assert.equal((await postDelivery(server.origin, textsDelivery(["wamid.M2"]))).status, 200);
  await waitFor(async () => {
    const [job] = await server.store.getJobs(messageEventId("wamid.M2"));
    return job?.state === "retrying";
  }, "the job retrying");
  const origin = server.origin;
  await waitFor(
    async () =>
      await scrape(
        origin,
        "wa_webhook_destination_jobs_settled_total",
        'destination="flaky",state="retrying"',
      ) === 1,
    "the retrying job counted",
  );
  const attempts = "wa_webhook_destination_attempts_total";
  assert.equal(await scrape(origin, attempts, 'destination="flaky",outcome="retry"'), 1);
  assert.equal(await scrape(origin, attempts, 'destination="flaky",outcome="delivered"'), 0);
  const backlog = "wa_webhook_destination_backlog";
  assert.equal(await scrape(origin, backlog, 'destination="flaky",due="later"'), 1);
  assert.equal(await scrape(origin, backlog, 'destination="flaky",due="now"'), 0);
  assert.equal(consumer.received(), 1);
});

Deno.test("the circuit gauge reads open after repeated failures", async () => {
  const clock = new ManualClock(Date.now());
  await using consumer = startConsumer(() => 503);
  await using server = await startTestServer({
    clock,
    env: destinationEnv("down", consumer.url, {
      RETRY_MAX_ATTEMPTS: "100",
      RETRY_BASE_DELAY_MS: "10",
      RETRY_MAX_DELAY_MS: "20",
    }),
  });
  const circuit = "wa_webhook_destination_circuit_state";
  assert.equal(await scrape(server.origin, circuit, 'destination="down"'), 0);
  assert.equal((await postDelivery(server.origin, textsDelivery(["wamid.M3"]))).status, 200);
  await advanceUntil(
    clock,
    async () => await scrape(server.origin, circuit, 'destination="down"') === 2,
    "the circuit gauge open",
    10,
  );
  assert.equal(consumer.received(), DEFAULT_CIRCUIT_LIMITS.failureThreshold);
});

Deno.test("/readyz stays 200 and warns, naming the destination, when its oldest due job is too old", async () => {
  const clock = new ManualClock(Date.now());
  await using server = await startTestServer({
    clock,
    // The deliverers are not started, so the running destination's job stays due; no worker
    // either, so readiness does not depend on its loop under the manual clock.
    startWorker: false,
    env: destinationEnv("stuck", "http://127.0.0.1:9/hooks", { WORKER_CONCURRENCY: "0" }),
  });
  assert.equal((await postDelivery(server.origin, textsDelivery(["wamid.M4"]))).status, 200);
  const readyz = async () => {
    const response = await fetch(`${server.origin}/readyz`);
    return { status: response.status, body: await response.json() as { warnings?: string[] } };
  };
  assert.deepEqual((await readyz()).body.warnings ?? [], []);
  await clock.advance(DESTINATION_BACKLOG_WARN_AFTER_MS + 1_000);
  const after = await readyz();
  assert.equal(after.status, 200);
  assert.ok(
    (after.body.warnings ?? []).some((w) => w.includes('Destination "stuck"')),
    JSON.stringify(after.body),
  );
  const age = "wa_webhook_destination_oldest_due_age_seconds";
  assert.ok((await scrape(server.origin, age, 'destination="stuck"'))! > 900);
  assert.equal(
    await scrape(server.origin, "wa_webhook_destination_backlog", 'destination="stuck",due="now"'),
    1,
  );
});
