import assert from "node:assert/strict";
import { ManualClock } from "../src/ops/clock.ts";
import { Dispatcher } from "../src/dispatch/dispatcher.ts";
import { createWorker } from "../src/dispatch/worker.ts";
import { createHealthHandlers, type HealthOptions, probeStore } from "../src/ops/health.ts";
import { createMetricsHandler } from "../src/ops/metrics_endpoint.ts";
import { createServiceMetrics } from "../src/ops/service_metrics.ts";
import { healthProbeKey } from "../src/store/kv/keys.ts";
import { parseExposition, valueOf } from "./prometheus_text.ts";
import { get, serveService } from "./route_server.ts";
import { captureLogs, kvStore, openTempKv } from "./support.ts";

const T0 = Date.UTC(2026, 0, 1);
const MINUTE_MS = 60_000;

/** Health and metrics over a temp KV, a manual clock and a worker whose loop the test moves. */
async function startHealthServer(overrides: Partial<HealthOptions> = {}) {
  const temp = await openTempKv();
  const clock = new ManualClock(T0);
  const logs = captureLogs();
  const store = kvStore(temp.kv, { logger: logs.logger });
  const metrics = createServiceMetrics({ clock });
  const state = {
    loopAt: T0,
    isShuttingDown: false,
    lastDeliveryAt: undefined as number | undefined,
  };
  const server = serveService({
    health: createHealthHandlers({
      store,
      worker: { lastLoopAt: () => state.loopAt },
      clock,
      isShuttingDown: () => state.isShuttingDown,
      silenceAfterMs: 0,
      lastDeliveryAt: () => state.lastDeliveryAt,
      logger: logs.logger,
      metrics,
      ...overrides,
    }),
    metrics: createMetricsHandler({ metrics, adminToken: undefined, store, clock }),
  });
  return {
    ...server,
    kv: temp.kv,
    clock,
    logs,
    state,
    /** `/readyz` as status and parsed body. */
    async ready(): Promise<{ status: number; body: Record<string, unknown> }> {
      const response = await get(server.origin, "/readyz");
      return { status: response.status, body: JSON.parse(response.text) };
    },
    async silenceGauge(): Promise<number> {
      const text = (await get(server.origin, "/metrics")).text;
      return valueOf(parseExposition(text), "wa_webhook_delivery_silence");
    },
    async [Symbol.asyncDispose]() {
      await server[Symbol.asyncDispose]();
      await temp[Symbol.asyncDispose]();
    },
  };
}

Deno.test("GET /healthz answers 200 {status: ok}", async () => {
  await using server = await startHealthServer();
  const response = await get(server.origin, "/healthz");
  assert.equal(response.status, 200);
  assert.deepEqual(JSON.parse(response.text), { status: "ok" });
  assert.equal(response.headers.get("cache-control"), "no-store");
});

Deno.test("GET /readyz answers 200 when KV answers and the worker loop is alive", async () => {
  await using server = await startHealthServer();
  const { status, body } = await server.ready();
  assert.equal(status, 200);
  assert.deepEqual(body, { status: "ready" });
  // The probe wrote its key, with the probe time.
  assert.equal((await server.kv.get(healthProbeKey())).value, T0);
});

Deno.test("GET /readyz answers 503 when the worker loop has not run for over 10 s", async () => {
  await using server = await startHealthServer();
  await server.clock.advance(10_000);
  assert.equal((await server.ready()).status, 200);
  await server.clock.advance(1_000);
  const { status, body } = await server.ready();
  assert.equal(status, 503);
  assert.equal(body.status, "unavailable");
  assert.deepEqual(body.reasons, ["Worker loop has not run for 11 s (limit 10 s)"]);
  server.state.loopAt = server.clock.now();
  assert.equal((await server.ready()).status, 200);
});

Deno.test("GET /readyz answers 503 before the worker loop started", async () => {
  await using server = await startHealthServer();
  server.state.loopAt = 0;
  const { status, body } = await server.ready();
  assert.equal(status, 503);
  assert.deepEqual(body.reasons, ["Worker loop has not started"]);
});

Deno.test("GET /readyz follows a real worker: alive while it loops, 503 once it stopped", async () => {
  await using temp = await openTempKv();
  const clock = new ManualClock(T0);
  const logs = captureLogs();
  const store = kvStore(temp.kv, { logger: logs.logger });
  const worker = createWorker({
    store,
    dispatcher: new Dispatcher(),
    logger: logs.logger,
    clock,
    pollIntervalMs: 1_000,
  });
  await using server = serveService({
    health: createHealthHandlers({
      store,
      worker,
      clock,
      isShuttingDown: () => false,
      silenceAfterMs: 0,
      lastDeliveryAt: () => undefined,
      logger: logs.logger,
    }),
  });
  worker.start();
  try {
    for (let i = 0; i < 30; i++) await clock.advance(1_000);
    assert.equal((await get(server.origin, "/readyz")).status, 200);
  } finally {
    await worker.stop(100);
  }
  await clock.advance(11_000);
  assert.equal((await get(server.origin, "/readyz")).status, 503);
});

Deno.test("GET /readyz answers 503 while shutting down, without touching KV", async () => {
  await using server = await startHealthServer();
  server.state.isShuttingDown = true;
  const { status, body } = await server.ready();
  assert.equal(status, 503);
  assert.deepEqual(body, { status: "unavailable", reasons: ["Shutting down"] });
  assert.equal((await server.kv.get(healthProbeKey())).versionstamp, null);
});

Deno.test("GET /readyz answers 503 with the reason when KV is closed", async () => {
  await using server = await startHealthServer();
  server.kv.close();
  const { status, body } = await server.ready();
  assert.equal(status, 503);
  const reasons = body.reasons as string[];
  assert.equal(reasons.length, 1);
  assert.match(reasons[0]!, /^Cannot use Deno KV: /);
});

Deno.test("probeStore() gives up after its timeout when KV does not answer", async () => {
  let release: () => void = () => {};
  const hanging = {
    set: () => new Promise((resolve) => (release = () => resolve({ ok: true }))),
    get: () => Promise.resolve({ versionstamp: "1", value: 0, key: healthProbeKey() }),
  } as unknown as Deno.Kv;
  const reason = await probeStore(kvStore(hanging), T0, 20);
  assert.equal(reason, "Cannot use Deno KV: a write and a read took longer than 20 ms");
  release();
});

Deno.test("silence: /readyz stays 200 with a warning, logged once, and the gauge reads 1", async () => {
  await using server = await startHealthServer({ silenceAfterMs: 10 * MINUTE_MS });
  const keepWorkerAlive = () => (server.state.loopAt = server.clock.now());

  await server.clock.advance(10 * MINUTE_MS - 1);
  keepWorkerAlive();
  assert.deepEqual(await server.ready(), { status: 200, body: { status: "ready" } });
  assert.equal(await server.silenceGauge(), 0);

  await server.clock.advance(1);
  keepWorkerAlive();
  assert.deepEqual(await server.ready(), {
    status: 200,
    body: { status: "ready", warnings: ["No delivery for 600 s"] },
  });
  await server.clock.advance(MINUTE_MS);
  keepWorkerAlive();
  assert.deepEqual((await server.ready()).body.warnings, ["No delivery for 660 s"]);
  assert.equal(await server.silenceGauge(), 1);
  const warnings = server.logs.lines.filter((line) => line.msg === "no delivery");
  assert.equal(warnings.length, 1, server.logs.text());
  assert.equal(warnings[0]!.level, "warn");
  assert.equal(warnings[0]!.lastDeliveryAt, null);

  // A delivery arrives: the silence ends, once.
  server.state.lastDeliveryAt = server.clock.now();
  assert.deepEqual((await server.ready()).body, { status: "ready" });
  assert.equal(await server.silenceGauge(), 0);
  assert.equal(server.logs.lines.filter((line) => line.msg === "deliveries resumed").length, 1);

  // And starts again, measured from that delivery.
  await server.clock.advance(10 * MINUTE_MS);
  keepWorkerAlive();
  assert.equal(await server.silenceGauge(), 1); // a scrape alone notices it
  assert.equal(server.logs.lines.filter((line) => line.msg === "no delivery").length, 2);
  assert.deepEqual((await server.ready()).body.warnings, ["No delivery for 600 s"]);
  assert.equal(server.logs.lines.filter((line) => line.msg === "no delivery").length, 2);
});

Deno.test("silence: a 503 answer carries the silence warning too", async () => {
  await using server = await startHealthServer({ silenceAfterMs: MINUTE_MS });
  await server.clock.advance(2 * MINUTE_MS);
  const { status, body } = await server.ready();
  assert.equal(status, 503);
  assert.deepEqual(body.warnings, ["No delivery for 120 s"]);
});

Deno.test("silence: silenceAfterMs 0 turns detection off", async () => {
  await using server = await startHealthServer({ silenceAfterMs: 0 });
  await server.clock.advance(24 * 60 * MINUTE_MS);
  server.state.loopAt = server.clock.now();
  assert.deepEqual((await server.ready()).body, { status: "ready" });
  assert.equal(await server.silenceGauge(), 0);
  assert.ok(!server.logs.lines.some((line) => line.msg === "no delivery"));
});
