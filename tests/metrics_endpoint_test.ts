import assert from "node:assert/strict";
import { ManualClock } from "../src/ops/clock.ts";
import { PROMETHEUS_CONTENT_TYPE } from "../src/ops/metrics.ts";
import { createMetricsHandler } from "../src/ops/metrics_endpoint.ts";
import { createServiceMetrics } from "../src/ops/service_metrics.ts";
import { readyKey } from "../src/store/kv/keys.ts";
import { parseExposition, valueOf } from "./prometheus_text.ts";
import { get, serveService } from "./route_server.ts";
import { kvStore, openTempKv, TEST_ADMIN_TOKEN } from "./support.ts";

const T0 = Date.UTC(2026, 0, 1);

/** Serves `/metrics` alone over a KV store on `kv`. */
function _serveMetrics(
  kv: Deno.Kv,
  options: Omit<Parameters<typeof createMetricsHandler>[0], "store">,
): ReturnType<typeof serveService> {
  return serveService({ metrics: createMetricsHandler({ ...options, store: kvStore(kv) }) });
}
const AUTH = { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

Deno.test("GET /metrics answers the exposition with the 0.0.4 content type", async () => {
  await using temp = await openTempKv();
  const clock = new ManualClock(T0);
  const metrics = createServiceMetrics({ clock });
  metrics.observeDelivery("bad_json");
  await temp.kv.set(readyKey(T0 - 30_000, "late"), "late");
  await clock.advance(90_000);
  await using server = _serveMetrics(temp.kv, {
    metrics: metrics,
    adminToken: TEST_ADMIN_TOKEN,
    clock,
  });

  const response = await get(server.origin, "/metrics", AUTH);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
  const exposition = parseExposition(response.text);
  assert.equal(valueOf(exposition, "wa_webhook_deliveries_total", { outcome: "bad_json" }), 1);
  // Collected at scrape time, from KV and the clock.
  assert.equal(valueOf(exposition, "wa_webhook_ready_queue_depth", { due: "now" }), 1);
  assert.equal(valueOf(exposition, "wa_webhook_ready_queue_oldest_age_seconds"), 120);
  assert.equal(valueOf(exposition, "wa_webhook_seconds_since_last_delivery"), 90);
});

Deno.test("GET /metrics answers 401 without the admin token, or with a wrong one", async () => {
  await using temp = await openTempKv();
  const clock = new ManualClock(T0);
  await using server = _serveMetrics(temp.kv, {
    metrics: createServiceMetrics({ clock }),
    adminToken: TEST_ADMIN_TOKEN,
    clock,
  });
  const missing = await get(server.origin, "/metrics");
  assert.equal(missing.status, 401);
  assert.match(missing.headers.get("www-authenticate") ?? "", /^Bearer realm=/);
  const wrong = await get(server.origin, "/metrics", {
    Authorization: "Bearer wrong-admin-token-9876543210",
  });
  assert.equal(wrong.status, 401);
  assert.match(wrong.headers.get("www-authenticate") ?? "", /invalid_token/);
  assert.doesNotMatch(wrong.text, /wa_webhook_/);
});

Deno.test("GET /metrics is open when no admin token is configured", async () => {
  await using temp = await openTempKv();
  const clock = new ManualClock(T0);
  await using server = _serveMetrics(temp.kv, {
    metrics: createServiceMetrics({ clock }),
    adminToken: undefined,
    clock,
  });
  const response = await get(server.origin, "/metrics");
  assert.equal(response.status, 200);
  assert.equal(valueOf(parseExposition(response.text), "wa_webhook_dead_letters_total"), 0);
});

Deno.test("GET /metrics still answers 200 when KV fails, logging the failure", async () => {
  await using temp = await openTempKv();
  const clock = new ManualClock(T0);
  await using server = _serveMetrics(temp.kv, {
    metrics: createServiceMetrics({ clock }),
    adminToken: undefined,
    clock,
  });
  temp.kv.close();
  const response = await get(server.origin, "/metrics");
  assert.equal(response.status, 200);
  const exposition = parseExposition(response.text);
  assert.ok(Number.isNaN(valueOf(exposition, "wa_webhook_ready_queue_depth", { due: "now" })));
  assert.ok(
    server.logs.lines.some((line) => line.msg === "metrics collection failed"),
    server.logs.text(),
  );
});

Deno.test("HEAD /metrics answers as GET does, without a body, and needs the token too", async () => {
  await using temp = await openTempKv();
  const clock = new ManualClock(T0);
  await using server = _serveMetrics(temp.kv, {
    metrics: createServiceMetrics({ clock }),
    adminToken: TEST_ADMIN_TOKEN,
    clock,
  });
  const head = await fetch(`${server.origin}/metrics`, { method: "HEAD", headers: AUTH });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
  assert.equal(await head.text(), "");
  const body = (await get(server.origin, "/metrics", AUTH)).text;
  assert.equal(head.headers.get("content-length"), String(new TextEncoder().encode(body).length));
  const unauthorized = await fetch(`${server.origin}/metrics`, { method: "HEAD" });
  await unauthorized.body?.cancel();
  assert.equal(unauthorized.status, 401);
  assert.match(unauthorized.headers.get("www-authenticate") ?? "", /^Bearer realm=/);
});
