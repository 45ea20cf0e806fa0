/**
 * Tracing with Deno's built-in OpenTelemetry: the helpers of `src/ops/telemetry.ts`, and the real
 * service, started with the start task's exact flags and `OTEL_DENO=true`, exporting to a local
 * OTLP receiver that keeps every body it gets.
 */
import assert from "node:assert/strict";
import { messageEventId } from "../src/events/event_ids.ts";
import { ECHO_HANDLER_NAME } from "../src/handlers/echo.ts";
import { redactUrlQuery, withSpan } from "../src/ops/telemetry.ts";
import { signBody } from "../src/webhook/signature.ts";
import { startFakeGraphApi } from "./fake_graph_api.ts";
import { serviceEnv, startService, withDataDir } from "./service_process.ts";
import { TEST_SECRET, TEST_VERIFY_TOKEN, waitFor } from "./support.ts";

/** How long the service may take to run the event's handlers, and the exporter to deliver. */
const WAIT_MS = 10_000;

Deno.test("redactUrlQuery() keeps the path and parameter names, and redacts every value", () => {
  const cases: [url: string, isQueryOnly: boolean, expected: string][] = [
    [
      "https://example.com/webhook/whatsapp?hub.mode=subscribe&hub.verify_token=s3cret&hub.challenge=42",
      false,
      "https://example.com/webhook/whatsapp?hub.mode=REDACTED&hub.verify_token=REDACTED&hub.challenge=REDACTED",
    ],
    [
      "hub.verify_token=s3cret&hub.challenge=42",
      true,
      "hub.verify_token=REDACTED&hub.challenge=REDACTED",
    ],
    ["https://example.com/admin/events", false, "https://example.com/admin/events"],
    ["https://example.com/p?", false, "https://example.com/p?"],
    ["https://example.com/p?s3cret", false, "https://example.com/p?REDACTED"],
    ["https://example.com/p?a=1#s3cret", false, "https://example.com/p?a=REDACTED"],
    ["https://example.com/p#s3cret?a=1", false, "https://example.com/p"],
    ["/p?a=1&b", false, "/p?a=REDACTED&REDACTED"],
    ["", true, ""],
  ];
  for (const [url, isQueryOnly, expected] of cases) {
    assert.equal(redactUrlQuery(url, isQueryOnly), expected, url);
  }
});

Deno.test("withSpan() returns or rethrows what its function does, sync or async", async () => {
  assert.equal(withSpan("test.sync", () => 1), 1);
  assert.equal(await withSpan("test.async", () => Promise.resolve(2)), 2);
  assert.throws(() =>
    withSpan("test.throws", () => {
      throw new RangeError("sync");
    }), RangeError);
  await assert.rejects(
    withSpan("test.rejects", () => Promise.reject(new TypeError("async"))),
    TypeError,
  );
});

Deno.test("with OTEL_DENO=true the service exports pipeline spans, and no secret or message text", async () => {
  await using receiver = startOtlpReceiver();
  const graphToken = `graph-token-${crypto.randomUUID()}`;
  await using graph = startFakeGraphApi({ token: graphToken });
  const text = `canary-text-${crypto.randomUUID()}`;
  const challenge = `challenge-${crypto.randomUUID()}`;
  const { body, eventId } = await _textDelivery(text);
  const signature = await signBody(TEST_SECRET, body);

  await withDataDir(async (kvPath) => {
    // The start task's flags: its --allow-env does not list OTEL_*, the runtime reads them itself.
    await using service = await startService(serviceEnv(kvPath, {
      LOG_LEVEL: "debug",
      ECHO_REPLIES: "true",
      WHATSAPP_TOKEN: graphToken,
      GRAPH_API_BASE_URL: graph.url,
      OTEL_DENO: "true",
      OTEL_DENO_CONSOLE: "capture",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_SERVICE_NAME: "wa-webhook",
    }));
    const handshake = await fetch(
      `${service.origin}/webhook/whatsapp?hub.mode=subscribe&hub.verify_token=${TEST_VERIFY_TOKEN}&hub.challenge=${challenge}`,
    );
    assert.equal(await handshake.text(), challenge);
    const delivery = await fetch(`${service.origin}/webhook/whatsapp`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Hub-Signature-256": signature },
      body,
    });
    assert.equal(delivery.status, 200);
    await delivery.body?.cancel();
    await graph.waitForRequests(2); // mark as read, then the echo reply
    await waitFor(
      () => service.output.some((line) => line.includes('"msg":"event done"')),
      "the event to be done",
      WAIT_MS,
    );
    const { code } = await service.stop("SIGTERM");
    assert.equal(code, 0, service.output.join("\n"));
  });
  // The exporter flushes at exit; the receiver may still be reading the last body.
  await waitFor(
    () => _spans(receiver.received).some((span) => span.name === "worker.result"),
    "the worker's spans to arrive",
    WAIT_MS,
  );

  const spans = _spans(receiver.received);
  const one = (name: string, where: (span: _Span) => boolean = () => true): _Span => {
    const found = spans.filter((span) => span.name === name && where(span));
    assert.equal(found.length, 1, `one span "${name}" in ${spans.map((s) => s.name).join(", ")}`);
    return found[0]!;
  };

  // The runtime's server spans, named after the route, with the query redacted.
  const get = one("GET /webhook/whatsapp");
  assert.deepEqual(get.attributes.get("http.route"), ["/webhook/whatsapp"]);
  assert.deepEqual(get.attributes.get("url.query"), [
    "hub.mode=REDACTED&hub.verify_token=REDACTED&hub.challenge=REDACTED",
  ]);
  const post = one("POST /webhook/whatsapp");

  // Intake: verify, parse, record, children of the delivery's server span.
  const verify = one("intake.verify");
  assert.deepEqual(verify.attributes.get("wa.signature.outcome"), ["valid"]);
  assert.deepEqual(verify.attributes.get("wa.body.bytes"), [body.byteLength]);
  const parse = one("intake.parse");
  assert.deepEqual(parse.attributes.get("wa.events.count"), [1]);
  assert.deepEqual(parse.attributes.get("wa.event.kinds"), [["message"]]);
  const record = one("intake.record");
  assert.deepEqual(record.attributes.get("wa.event.ids"), [[eventId]]);
  assert.deepEqual(record.attributes.get("wa.events.recorded"), [1]);
  assert.deepEqual(record.attributes.get("wa.events.duplicates"), [0]);
  for (const step of [verify, parse, record]) {
    assert.equal(step.parentSpanId, post.spanId, `${step.name} is a child of the request`);
    assert.equal(step.traceId, post.traceId);
  }

  // Worker: the event was recorded leased to it, so it runs without a claim, with one span per
  // handler and one for its result.
  assert.deepEqual(record.attributes.get("wa.events.leased"), [1]);
  assert.ok(!spans.some((span) => span.name === "worker.claim"), "no claim was needed");
  const run = one("worker.run");
  assert.deepEqual(run.attributes.get("wa.event.id"), [eventId]);
  assert.deepEqual(run.attributes.get("wa.event.outcome"), ["done"]);
  const echo = one(
    "worker.handler",
    (span) => span.attributes.get("wa.handler")?.[0] === ECHO_HANDLER_NAME,
  );
  assert.deepEqual(echo.attributes.get("wa.event.id"), [eventId]);
  assert.deepEqual(echo.attributes.get("wa.event.kind"), ["message"]);
  assert.deepEqual(echo.attributes.get("wa.attempt"), [1]);
  assert.equal(echo.parentSpanId, run.spanId);
  const result = one("worker.result");
  assert.deepEqual(result.attributes.get("wa.result.stored"), [true]);
  assert.equal(result.parentSpanId, run.spanId);

  // Graph API: one span per call inside the handler, with the runtime's fetch span under it.
  const calls = spans.filter((span) => span.name === "graph.call");
  assert.deepEqual(calls.map((call) => call.attributes.get("wa.graph.operation")?.[0]).sort(), [
    "read",
    "text",
  ]);
  for (const call of calls) {
    assert.equal(call.parentSpanId, echo.spanId);
    assert.deepEqual(call.attributes.get("wa.graph.outcome"), ["ok"]);
    const sent = spans.filter((span) => span.parentSpanId === call.spanId && span.kind === 3);
    assert.equal(sent.length, 1, "one fetch span per call");
    assert.match(String(sent[0]!.attributes.get("url.full")?.[0]), /^http:\/\/127\.0\.0\.1:\d+\/v/);
  }
  assert.ok(!spans.some((span) => span.name === "wa-webhook.probe"), "the probe is never exported");

  // Every byte that left the process: traces, logs (our JSON lines) and metrics.
  const paths = new Set(receiver.received.map((body) => body.path));
  assert.deepEqual([...paths].sort(), ["/v1/logs", "/v1/metrics", "/v1/traces"]);
  const exported = receiver.received.map((body) => body.text).join("\n");
  assert.ok(exported.includes("echo reply sent"), "our log lines were exported");
  const secrets: Record<string, string> = {
    "the verify token": TEST_VERIFY_TOKEN,
    "the handshake's challenge": challenge,
    "the app secret": TEST_SECRET,
    "the signature": signature.replace(/^sha256=/, ""),
    "the message text": text,
    "the Graph API token": graphToken,
  };
  for (const [what, secret] of Object.entries(secrets)) {
    assert.ok(!exported.includes(secret), `${what} was exported`);
  }
});

/** A body as the receiver got it. */
interface _Received {
  path: string;
  text: string;
}

/** A local OTLP/HTTP receiver on 127.0.0.1 that keeps every body. */
interface _OtlpReceiver extends AsyncDisposable {
  /** For `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  endpoint: string;
  received: _Received[];
}

const _OTLP_PATHS = new Set(["/v1/traces", "/v1/logs", "/v1/metrics"]);

function startOtlpReceiver(): _OtlpReceiver {
  const received: _Received[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const path = new URL(request.url).pathname;
      if (request.method !== "POST" || !_OTLP_PATHS.has(path)) {
        await request.body?.cancel();
        return new Response("Not found", { status: 404 });
      }
      received.push({ path, text: await request.text() });
      return Response.json({});
    },
  );
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    received,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** A span as exported, with each attribute's values in order (Deno appends a key set twice). */
interface _Span {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  attributes: Map<string, unknown[]>;
}

/** Every span of the `/v1/traces` bodies (OTLP JSON). */
function _spans(received: _Received[]): _Span[] {
  const spans: _Span[] = [];
  for (const { path, text } of received) {
    if (path !== "/v1/traces") continue;
    for (const resource of JSON.parse(text).resourceSpans ?? []) {
      for (const scope of resource.scopeSpans ?? []) {
        for (const span of scope.spans ?? []) {
          const attributes = new Map<string, unknown[]>();
          for (const { key, value } of span.attributes ?? []) {
            attributes.set(key, [...attributes.get(key) ?? [], _valueOf(value)]);
          }
          spans.push({
            name: span.name,
            kind: span.kind,
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: span.parentSpanId ?? "",
            attributes,
          });
        }
      }
    }
  }
  return spans;
}

/** An OTLP JSON `AnyValue` as a plain value (numbers from JS arrive as `doubleValue`). */
function _valueOf(value: Record<string, unknown>): unknown {
  if ("stringValue" in value) return value.stringValue;
  if ("boolValue" in value) return value.boolValue;
  if ("intValue" in value) return Number(value.intValue);
  if ("doubleValue" in value) return value.doubleValue;
  if ("arrayValue" in value) {
    const { values = [] } = value.arrayValue as { values?: Record<string, unknown>[] };
    return values.map(_valueOf);
  }
  return value;
}

/** The text-message fixture with `text` as its body; returns the bytes and the event's id. */
async function _textDelivery(
  text: string,
): Promise<{ body: Uint8Array<ArrayBuffer>; eventId: string }> {
  const delivery = JSON.parse(
    await Deno.readTextFile(new URL("./fixtures/message_text.json", import.meta.url)),
  );
  const message = delivery.entry[0].changes[0].value.messages[0];
  message.text.body = text;
  // Sent now: the service runs on the system clock, and replies only inside the 24-hour window.
  message.timestamp = String(Math.floor(Date.now() / 1000));
  return {
    body: new TextEncoder().encode(JSON.stringify(delivery)),
    eventId: messageEventId(message.id),
  };
}
