import assert from "node:assert/strict";
import { parseDelivery } from "../src/events/events.ts";
import { HttpError } from "../src/http/errors.ts";
import { READY_PREFIX, readyKey } from "../src/store/kv/keys.ts";
import { ManualClock } from "../src/ops/clock.ts";
import {
  instrumentIntake,
  instrumentVerifier,
  refusedDeliveryOutcome,
} from "../src/ops/instrument.ts";
import {
  createServiceMetrics,
  DELIVERY_OUTCOMES,
  MAX_UNKNOWN_MESSAGE_TYPE_LABELS,
  type ServiceMetrics,
} from "../src/ops/service_metrics.ts";
import { queueFigures } from "../src/store/kv/queue_figures.ts";
import { createIntakeHandler } from "../src/webhook/intake.ts";
import { createSignatureVerifier, signBody } from "../src/webhook/signature.ts";
import { type Exposition, parseExposition, samplesOf, valueOf } from "./prometheus_text.ts";
import { captureLogs, kvStore, openTempKv, TEST_SECRET } from "./support.ts";
import { messagesDelivery } from "./deliveries.ts";

const T0 = Date.UTC(2026, 0, 1);
const HOUR_MS = 3_600_000;
const RETENTION = { dedupTtlMs: 8 * 24 * HOUR_MS, retentionMs: 7 * 24 * HOUR_MS };

function scrape(metrics: ServiceMetrics): Exposition {
  return parseExposition(metrics.registry.render());
}

async function fixture(name: string): Promise<Uint8Array<ArrayBuffer>> {
  return await Deno.readFile(new URL(`./fixtures/${name}`, import.meta.url));
}

Deno.test("every metric is named wa_webhook_… and has help and a type", () => {
  const exposition = scrape(createServiceMetrics());
  assert.ok(exposition.types.size >= 15);
  for (const [name, type] of exposition.types) {
    assert.match(name, /^wa_webhook_[a-z_]+$/);
    assert.ok(exposition.help.get(name), `help of ${name}`);
    if (type === "counter") assert.match(name, /_total$/);
  }
});

Deno.test("deliveries and signature failures start at 0 for every outcome and reason", () => {
  const exposition = scrape(createServiceMetrics());
  for (const outcome of DELIVERY_OUTCOMES) {
    assert.equal(valueOf(exposition, "wa_webhook_deliveries_total", { outcome }), 0);
  }
  for (const reason of ["missing", "malformed", "mismatch"]) {
    assert.equal(valueOf(exposition, "wa_webhook_signature_failures_total", { reason }), 0);
  }
});

Deno.test("observeRecorded() counts new events by kind and type, duplicates apart", async () => {
  const metrics = createServiceMetrics();
  const { events } = parseDelivery(JSON.parse(
    new TextDecoder().decode(await fixture("batched_mixed.json")),
  ));
  const ids = events.map((event) => event.id);
  metrics.observeRecorded(events, { recorded: ids, duplicates: [] }, T0);
  // Meta retries the same delivery: nothing new.
  metrics.observeRecorded(events, { recorded: [], duplicates: ids }, T0 + 1_000);

  const exposition = scrape(metrics);
  const count = (kind: string, type: string) =>
    valueOf(exposition, "wa_webhook_events_total", { kind, type });
  assert.equal(count("message", "text"), 2);
  assert.equal(count("message", "image"), 1);
  assert.equal(count("message", "reaction"), 1);
  assert.equal(count("status", "sent"), 1);
  assert.equal(count("status", "failed"), 1);
  assert.equal(count("change", "message_template_status_update"), 1);
  assert.equal(valueOf(exposition, "wa_webhook_duplicate_events_total"), events.length);
  assert.equal(valueOf(exposition, "wa_webhook_deliveries_total", { outcome: "accepted" }), 1);
  assert.equal(
    valueOf(exposition, "wa_webhook_deliveries_total", { outcome: "duplicate_only" }),
    1,
  );
  assert.equal(metrics.lastDeliveryAt(), T0 + 1_000);
});

Deno.test("an unknown status value is counted as type other", () => {
  const metrics = createServiceMetrics();
  const { events } = parseDelivery(messagesDelivery({
    statuses: [{ id: "wamid.X", status: "warning", timestamp: "1767225600" }],
  }));
  metrics.observeRecorded(events, { recorded: events.map((e) => e.id), duplicates: [] }, T0);
  assert.equal(
    valueOf(scrape(metrics), "wa_webhook_events_total", { kind: "status", type: "other" }),
    1,
  );
});

/** The intake handler wired as the app wires it, over the Deno KV store on a temp KV. */
async function instrumentedIntake(kv: Deno.Kv, metrics: ServiceMetrics, options: {
  failRecording?: boolean;
  elapsedMs?: number;
} = {}) {
  const verifier = instrumentVerifier(await createSignatureVerifier([TEST_SECRET]), metrics);
  const store = kvStore(kv, RETENTION);
  let time = 0;
  const handler = instrumentIntake(
    createIntakeHandler({
      verifier,
      bodyLimits: { maxBytes: 64 * 1024, timeoutMs: 10_000 },
      onDrift: (drift) => metrics.observeDrift(drift),
      recordEvents: async (events) => {
        if (options.failRecording) throw new Error("KV is down");
        const outcome = await store.recordEvents(events, { now: T0 });
        metrics.observeRecorded(events, outcome, T0);
      },
    }),
    metrics,
    { now: () => (time += options.elapsedMs ?? 3) },
  );
  const logs = captureLogs();
  return async (body: Uint8Array<ArrayBuffer>, signature?: string | null): Promise<number> => {
    const headers = new Headers({ "Content-Type": "application/json" });
    const header = signature === undefined ? await signBody(TEST_SECRET, body) : signature;
    if (header !== null) headers.set("X-Hub-Signature-256", header);
    const request = new Request("http://localhost/webhook/whatsapp", {
      method: "POST",
      headers,
      body,
    });
    try {
      return (await handler(request, { params: {}, log: logs.logger, requestId: "t" })).status;
    } catch (error) {
      return error instanceof HttpError ? error.status : 500;
    }
  };
}

Deno.test("the instrumented intake counts every outcome and signature failure reason", async () => {
  await using temp = await openTempKv();
  const metrics = createServiceMetrics();
  const post = await instrumentedIntake(temp.kv, metrics);
  const text = await fixture("message_text.json");

  assert.equal(await post(text), 200);
  assert.equal(await post(text), 200); // Meta's retry
  assert.equal(await post(text, null), 401);
  assert.equal(await post(text, "sha256=nothex"), 401);
  assert.equal(await post(text, `sha256=${"0".repeat(64)}`), 401);
  assert.equal(await post(text, `sha256=${"0".repeat(64)}`), 401);
  assert.equal(await post(new Uint8Array(65 * 1024)), 413);
  assert.equal(await post(new TextEncoder().encode("{not json")), 400);
  assert.equal(await post(await fixture("drift_status_mistyped.json")), 200);

  const exposition = scrape(metrics);
  const deliveries = (outcome: string) =>
    valueOf(exposition, "wa_webhook_deliveries_total", { outcome });
  assert.equal(deliveries("accepted"), 2);
  assert.equal(deliveries("duplicate_only"), 1);
  assert.equal(deliveries("rejected_signature"), 4);
  assert.equal(deliveries("too_large"), 1);
  assert.equal(deliveries("bad_json"), 1);
  assert.equal(deliveries("unavailable"), 0);
  const failures = (reason: string) =>
    valueOf(exposition, "wa_webhook_signature_failures_total", { reason });
  assert.equal(failures("missing"), 1);
  assert.equal(failures("malformed"), 1);
  assert.equal(failures("mismatch"), 2);
  assert.equal(
    valueOf(exposition, "wa_webhook_schema_drift_total", { field: "messages", type: "status" }),
    1,
  );
  assert.equal(valueOf(exposition, "wa_webhook_duplicate_events_total"), 1);
  // Only the three acknowledged deliveries are timed: 3 ms each by the fake monotonic clock.
  assert.equal(valueOf(exposition, "wa_webhook_intake_ack_duration_seconds_count"), 3);
  assert.equal(
    valueOf(exposition, "wa_webhook_intake_ack_duration_seconds_bucket", { le: "0.0025" }),
    0,
  );
  assert.equal(
    valueOf(exposition, "wa_webhook_intake_ack_duration_seconds_bucket", { le: "0.005" }),
    3,
  );
});

Deno.test("the instrumented intake counts a delivery it could not record as unavailable", async () => {
  await using temp = await openTempKv();
  const metrics = createServiceMetrics();
  const post = await instrumentedIntake(temp.kv, metrics, { failRecording: true });
  assert.equal(await post(await fixture("message_text.json")), 503);
  const exposition = scrape(metrics);
  assert.equal(valueOf(exposition, "wa_webhook_deliveries_total", { outcome: "unavailable" }), 1);
  assert.equal(valueOf(exposition, "wa_webhook_intake_ack_duration_seconds_count"), 0);
  assert.equal(metrics.lastDeliveryAt(), undefined);
});

Deno.test("refusedDeliveryOutcome() maps statuses, and anything unexpected to unavailable", () => {
  assert.equal(refusedDeliveryOutcome(new HttpError(401, "x")), "rejected_signature");
  assert.equal(refusedDeliveryOutcome(new HttpError(413, "x")), "too_large");
  assert.equal(refusedDeliveryOutcome(new HttpError(400, "x")), "bad_json");
  assert.equal(refusedDeliveryOutcome(new HttpError(408, "x")), "timed_out");
  assert.equal(refusedDeliveryOutcome(new HttpError(499, "x")), "aborted");
  assert.equal(refusedDeliveryOutcome(new HttpError(503, "x")), "unavailable");
  assert.equal(refusedDeliveryOutcome(new TypeError("bug")), "unavailable");
});

Deno.test("handler runs, retries and dead letters are counted", () => {
  const metrics = createServiceMetrics();
  metrics.observeHandlerRun("echo", "success");
  metrics.observeHandlerRun("echo", "failure");
  metrics.observeHandlerRun("echo", "failure");
  metrics.observeHandlerRun("status-tracking", "success");
  for (const state of ["done", "retrying", "retrying", "dead"] as const) {
    metrics.observeSettled(state);
  }
  const exposition = scrape(metrics);
  const runs = (handler: string, outcome: string) =>
    valueOf(exposition, "wa_webhook_handler_runs_total", { handler, outcome });
  assert.equal(runs("echo", "success"), 1);
  assert.equal(runs("echo", "failure"), 2);
  assert.equal(runs("status-tracking", "success"), 1);
  assert.equal(valueOf(exposition, "wa_webhook_event_retries_total"), 2);
  assert.equal(valueOf(exposition, "wa_webhook_dead_letters_total"), 1);
});

Deno.test("Graph API calls are counted by outcome and code, and timed", () => {
  const metrics = createServiceMetrics();
  metrics.observeGraphCall({
    phoneNumberId: "1",
    attempt: 1,
    outcome: "ok",
    httpStatus: 200,
    durationMs: 80,
  });
  metrics.observeGraphCall({
    phoneNumberId: "1",
    attempt: 1,
    outcome: "throttled",
    httpStatus: 400,
    code: 131056,
    durationMs: 120,
  });
  metrics.observeGraphCall({
    phoneNumberId: "1",
    attempt: 2,
    outcome: "transient",
    durationMs: 10_000,
  });
  const exposition = scrape(metrics);
  const calls = (outcome: string, code: string) =>
    valueOf(exposition, "wa_webhook_graph_calls_total", { outcome, code });
  assert.equal(calls("ok", "none"), 1);
  assert.equal(calls("throttled", "131056"), 1);
  assert.equal(calls("transient", "none"), 1);
  assert.equal(
    valueOf(exposition, "wa_webhook_graph_call_duration_seconds_bucket", {
      outcome: "ok",
      le: "0.1",
    }),
    1,
  );
  assert.equal(
    valueOf(exposition, "wa_webhook_graph_call_duration_seconds_sum", { outcome: "transient" }),
    10,
  );
});

Deno.test("collect() reads the ready set: depth due now and later, age of the oldest due", async () => {
  await using temp = await openTempKv();
  const store = kvStore(temp.kv);
  const clock = new ManualClock(T0);
  const metrics = createServiceMetrics({ clock });
  const now = T0 + 60_000;
  await temp.kv.set(readyKey(now - 45_000, "a"), "a"); // waiting 45 s
  await temp.kv.set(readyKey(now - 1_000, "commit-1"), ["b1", "b2"]); // an intake commit's events
  await temp.kv.set(readyKey(now, "c"), "c"); // due exactly now
  await temp.kv.set(readyKey(now + 15_000, "lease-1"), ["d1", "d2", "d3"]); // a lease
  await temp.kv.set(readyKey(now + 60_000, "e"), "e"); // a retry

  const errors = await metrics.collect(store, now);
  assert.deepEqual(errors, []);
  const exposition = scrape(metrics);
  // Events, not entries.
  assert.equal(valueOf(exposition, "wa_webhook_ready_queue_depth", { due: "now" }), 4);
  assert.equal(valueOf(exposition, "wa_webhook_ready_queue_depth", { due: "later" }), 4);
  assert.equal(valueOf(exposition, "wa_webhook_ready_queue_oldest_age_seconds"), 45);
  // No delivery yet: the silence counts from the start.
  assert.equal(valueOf(exposition, "wa_webhook_seconds_since_last_delivery"), 60);

  metrics.observeRecorded([], { recorded: [], duplicates: [] }, now - 5_000);
  await metrics.collect(store, now);
  assert.equal(valueOf(scrape(metrics), "wa_webhook_seconds_since_last_delivery"), 5);
});

Deno.test("collect() reports age 0 when only future entries are queued, and 0 depth when empty", async () => {
  await using temp = await openTempKv();
  const store = kvStore(temp.kv);
  const metrics = createServiceMetrics();
  await metrics.collect(store, T0);
  let exposition = scrape(metrics);
  assert.equal(valueOf(exposition, "wa_webhook_ready_queue_depth", { due: "now" }), 0);
  assert.equal(valueOf(exposition, "wa_webhook_ready_queue_oldest_age_seconds"), 0);

  await temp.kv.set(readyKey(T0 + 10_000, "lease"), "lease");
  await metrics.collect(store, T0);
  exposition = scrape(metrics);
  assert.equal(valueOf(exposition, "wa_webhook_ready_queue_depth", { due: "later" }), 1);
  assert.equal(valueOf(exposition, "wa_webhook_ready_queue_oldest_age_seconds"), 0);
});

Deno.test("queueFigures() counts at most its limit", async () => {
  await using temp = await openTempKv();
  for (let i = 0; i < 7; i++) await temp.kv.set(readyKey(T0 - i, `e${i}`), `e${i}`);
  const snapshot = await queueFigures(temp.kv, T0, 5);
  assert.equal(snapshot.due + snapshot.later, 5);
  // The oldest is read first, whatever the limit.
  assert.equal(snapshot.oldestDueAgeMs, 6);
  let all = 0;
  for await (const _ of temp.kv.list({ prefix: READY_PREFIX })) all++;
  assert.equal(all, 7);
});

Deno.test("collect() returns the KV error and sets the queue gauges to NaN", async () => {
  await using temp = await openTempKv();
  const store = kvStore(temp.kv);
  const metrics = createServiceMetrics();
  await temp.kv.set(readyKey(T0 - 1_000, "a"), "a");
  await metrics.collect(store, T0);
  temp.kv.close();
  const errors = await metrics.collect(store, T0);
  assert.equal(errors.length, 1);
  const exposition = scrape(metrics);
  assert.ok(Number.isNaN(valueOf(exposition, "wa_webhook_ready_queue_depth", { due: "now" })));
  assert.ok(Number.isNaN(valueOf(exposition, "wa_webhook_ready_queue_oldest_age_seconds")));
  assert.equal(samplesOf(exposition, "wa_webhook_ready_queue_depth").length, 2);
});

Deno.test("a message of a type not known is counted under the type Meta sent, in bounded labels", () => {
  const metrics = createServiceMetrics();
  const message = (n: number, type: string) => ({
    from: "5511999990000",
    id: `wamid.T${n}`,
    timestamp: "1767225600",
    type,
  });
  const types = [
    "poll",
    "poll",
    "image", // a known type whose payload failed its schema keeps its name
    "a type with spaces",
    "x".repeat(33),
    ...Array.from({ length: MAX_UNKNOWN_MESSAGE_TYPE_LABELS + 5 }, (_, i) => `new_type_${i}`),
  ];
  const { events } = parseDelivery(
    messagesDelivery({ messages: types.map((t, i) => message(i, t)) }),
  );
  assert.ok(events.every((event) => event.kind === "message" && event.message.type === "unknown"));
  metrics.observeRecorded(events, { recorded: events.map((e) => e.id), duplicates: [] }, T0);

  const exposition = scrape(metrics);
  const count = (type: string) =>
    valueOf(exposition, "wa_webhook_events_total", { kind: "message", type });
  assert.equal(count("poll"), 2);
  assert.equal(count("image"), 1);
  assert.equal(count("new_type_0"), 1);
  // "poll" took one label; the new types fill the rest, then count as other with the unsafe ones.
  assert.equal(count(`new_type_${MAX_UNKNOWN_MESSAGE_TYPE_LABELS - 2}`), 1);
  assert.equal(count("other"), 2 + 6);
  const series = samplesOf(exposition, "wa_webhook_events_total");
  assert.equal(series.length, MAX_UNKNOWN_MESSAGE_TYPE_LABELS + 2); // + image + other
  assert.ok(!series.some((sample) => sample.labels.type === "unknown"));
});

Deno.test("observeDrift() counts a delivery's drift by field and type at once, in bounded labels", () => {
  const metrics = createServiceMetrics();
  metrics.observeDrift({ field: "messages", type: "contact", count: 1_500 });
  metrics.observeDrift({ field: "messages", type: "status" });
  for (let i = 0; i < 1_000; i++) metrics.observeDrift({ field: `field_${i}`, type: `type_${i}` });

  const exposition = scrape(metrics);
  const count = (field: string, type: string) =>
    valueOf(exposition, "wa_webhook_schema_drift_total", { field, type });
  assert.equal(count("messages", "contact"), 1_500);
  assert.equal(count("messages", "status"), 1);
  assert.ok(count("other", "other") > 900);
  assert.ok(samplesOf(exposition, "wa_webhook_schema_drift_total").length <= 25);
});
