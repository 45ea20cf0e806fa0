/**
 * The WhatsApp Flows endpoint over a real socket, driven by Meta's side written apart (the Node
 * client, Node's OpenSSL crypto): every case of the protocol answered and decrypted, and every
 * refusal with the status Meta's client acts on and a log line that says why.
 *
 * @module
 */
import assert from "node:assert/strict";
import { completeFlow, type FlowContext, Flows, InvalidFlowTokenError } from "../mod.ts";
import { createServiceMetrics } from "../src/ops/service_metrics.ts";
import { flowsKeyPair, metaExchange, type Tamper } from "./flows_support.ts";
import { parseExposition, valueOf } from "./prometheus_text.ts";
import { startTestServer, type TestServer } from "./support.ts";

/** A flow token as a business would choose it: the flow's name, then a session id. */
const TOKEN = "booking:8f14e45f-ceea-467f";

/** The Flows of these tests: a booking flow with every kind of handler. */
function bookingFlows(seen: FlowContext[] = []): Flows {
  return new Flows({ flowOf: (token) => token.split(":")[0] })
    .onInit((ctx) => {
      seen.push(ctx);
      return { screen: "APPOINTMENT", data: { slots: ["09:00", "10:00"] } };
    })
    .onDataExchange("APPOINTMENT", (ctx) => {
      seen.push(ctx);
      return { screen: "CONFIRM", data: { slot: ctx.data.slot } };
    }, { flow: "booking" })
    .onDataExchange("CONFIRM", (ctx) => completeFlow(ctx.flowToken, { slot: ctx.data.slot }))
    .onBack("APPOINTMENT", (ctx) => {
      seen.push(ctx);
      return { screen: "APPOINTMENT", data: { slots: ["11:00"] } };
    })
    .onDataExchange("EXPIRED", () => {
      throw new InvalidFlowTokenError("This booking has already been made");
    })
    .onDataExchange("BROKEN", () => {
      throw new Error("database is down at db.internal:5432");
    });
}

/** The test server with the first key pair configured and `flows` registered. */
function startFlowsServer(
  flows: Flows,
  env: Record<string, string> = {},
  metrics = createServiceMetrics(),
): Promise<TestServer> {
  return startTestServer({
    startWorker: false,
    env: { FLOWS_PRIVATE_KEY: flowsKeyPair().privateKeyPem, LOG_LEVEL: "debug", ...env },
    flows,
    metrics,
  });
}

/** The access log's "request" line of the only request to `path`. */
function requestLine(server: TestServer, path = "/flows"): Record<string, unknown> {
  const lines = server.logs.lines.filter((line) => line.msg === "request" && line.path === path);
  assert.equal(lines.length, 1, server.logs.text());
  return lines[0]!;
}

/** Every log line at info or above, as text. */
function linesAboveDebug(server: TestServer): string {
  return server.logs.lines.filter((line) => line.level !== "debug").map((line) =>
    JSON.stringify(line)
  ).join("\n");
}

Deno.test("POST /flows answers Meta's ping with status active, encrypted for the flipped IV", async () => {
  await using server = await startFlowsServer(new Flows());
  const result = await metaExchange({
    url: `${server.origin}/flows`,
    request: { version: "3.0", action: "ping" },
  });
  assert.equal(result.status, 200, result.text);
  assert.match(result.contentType ?? "", /^text\/plain/);
  assert.deepEqual(result.answer, { data: { status: "active" } });
});

Deno.test("POST /flows hands INIT, data_exchange and BACK to their handlers and encrypts their answers", async () => {
  const seen: FlowContext[] = [];
  await using server = await startFlowsServer(bookingFlows(seen));
  const url = `${server.origin}/flows`;
  const init = await metaExchange({
    url,
    request: { version: "3.0", action: "INIT", flow_token: TOKEN, data: {} },
  });
  assert.deepEqual(init.answer, { screen: "APPOINTMENT", data: { slots: ["09:00", "10:00"] } });
  const exchange = await metaExchange({
    url,
    request: {
      version: "3.0",
      action: "data_exchange",
      screen: "APPOINTMENT",
      data: { slot: "10:00" },
      flow_token: TOKEN,
    },
  });
  assert.deepEqual(exchange.answer, { screen: "CONFIRM", data: { slot: "10:00" } });
  const back = await metaExchange({
    url,
    request: { version: "3.0", action: "BACK", screen: "APPOINTMENT", flow_token: TOKEN },
  });
  assert.deepEqual(back.answer, { screen: "APPOINTMENT", data: { slots: ["11:00"] } });
  assert.deepEqual(
    seen.map(({ action, screen, data, flowToken, flow }) => ({
      action,
      screen,
      data,
      flowToken,
      flow,
    })),
    [
      { action: "INIT", screen: undefined, data: {}, flowToken: TOKEN, flow: "booking" },
      {
        action: "data_exchange",
        screen: "APPOINTMENT",
        data: { slot: "10:00" },
        flowToken: TOKEN,
        flow: "booking",
      },
      { action: "BACK", screen: "APPOINTMENT", data: {}, flowToken: TOKEN, flow: "booking" },
    ],
  );
  // Neither the token nor the user's answers reach a line above debug.
  const logged = linesAboveDebug(server);
  assert.doesNotMatch(logged, /8f14e45f|10:00/);
});

Deno.test("a handler registered for one flow does not answer another flow's screen", async () => {
  await using server = await startFlowsServer(bookingFlows());
  const result = await metaExchange({
    url: `${server.origin}/flows`,
    request: {
      version: "3.0",
      action: "data_exchange",
      screen: "APPOINTMENT",
      data: {},
      flow_token: "survey:1",
    },
  });
  assert.equal(result.status, 500);
  assert.match(
    String(requestLine(server).reason),
    /^No flow handler for data_exchange on screen "APPOINTMENT": register one/,
  );
});

Deno.test("completeFlow() closes the flow with SUCCESS and the flow token in the message's params", async () => {
  await using server = await startFlowsServer(bookingFlows());
  const result = await metaExchange({
    url: `${server.origin}/flows`,
    request: {
      version: "3.0",
      action: "data_exchange",
      screen: "CONFIRM",
      data: { slot: "09:00" },
      flow_token: TOKEN,
    },
  });
  assert.deepEqual(result.answer, {
    screen: "SUCCESS",
    data: { extension_message_response: { params: { flow_token: TOKEN, slot: "09:00" } } },
  });
});

Deno.test("an error notification is acknowledged, logged by its key, and shown to its handler", async () => {
  const notified: { error: string; errorMessage: string | undefined }[] = [];
  const flows = bookingFlows().onErrorNotification(({ error, errorMessage }) => {
    notified.push({ error, errorMessage });
  });
  await using server = await startFlowsServer(flows);
  const result = await metaExchange({
    url: `${server.origin}/flows`,
    request: {
      version: "3.0",
      action: "data_exchange",
      screen: "CONFIRM",
      flow_token: TOKEN,
      data: { error: "INVALID_SCREEN_DATA", error_message: "slot: expected string" },
    },
  });
  assert.deepEqual(result.answer, { data: { acknowledged: true } });
  assert.deepEqual(notified, [
    { error: "INVALID_SCREEN_DATA", errorMessage: "slot: expected string" },
  ]);
  const line = server.logs.lines.find((line) => line.msg === "flow error notification");
  assert.deepEqual(
    { level: line?.level, error: line?.error, screen: line?.screen, action: line?.action },
    { level: "warn", error: "INVALID_SCREEN_DATA", screen: "CONFIRM", action: "data_exchange" },
  );
});

Deno.test("a handler refusing the flow token is answered 427 with the message the user sees", async () => {
  await using server = await startFlowsServer(bookingFlows());
  const result = await metaExchange({
    url: `${server.origin}/flows`,
    request: { version: "3.0", action: "data_exchange", screen: "EXPIRED", flow_token: TOKEN },
  });
  assert.equal(result.status, 427);
  assert.deepEqual(JSON.parse(result.text), { error_msg: "This booking has already been made" });
  const line = server.logs.lines.find((line) => line.msg === "flow token refused");
  assert.equal(line?.level, "warn");
  assert.equal(line?.reason, "the handler refused the flow token");
  assert.doesNotMatch(server.logs.text(), /8f14e45f/);
});

Deno.test("a failing handler is answered 500 without its error, which goes to the log", async () => {
  await using server = await startFlowsServer(bookingFlows());
  const result = await metaExchange({
    url: `${server.origin}/flows`,
    request: { version: "3.0", action: "data_exchange", screen: "BROKEN", flow_token: TOKEN },
  });
  assert.equal(result.status, 500);
  assert.doesNotMatch(result.text, /db\.internal|at /);
  assert.match(
    String(requestLine(server).reason),
    /^The flow handler for data_exchange failed; its error is in the service's log$/,
  );
  const failed = server.logs.lines.find((line) => line.msg === "flow handler failed");
  assert.equal(failed?.level, "error");
  assert.match(JSON.stringify(failed?.error), /database is down/);
});

/** Each refusal: what the client changes, the status Meta sees, and the reason logged. */
const REFUSALS: {
  name: string;
  tamper?: Tamper;
  signature?: "missing" | "wrong";
  otherKey?: boolean;
  padBytes?: number;
  status: number;
  reason: RegExp;
}[] = [
  {
    name: "a changed ciphertext",
    tamper: "ciphertext",
    status: 421,
    reason: /^Cannot decrypt the Flows request: "encrypted_flow_data" does not authenticate/,
  },
  {
    name: "a request for another public key",
    otherKey: true,
    status: 421,
    reason:
      /^Cannot decrypt the Flows request: "encrypted_aes_key" cannot be unwrapped with the configured private key/,
  },
  {
    name: "a truncated tag",
    tamper: "truncated_tag",
    status: 421,
    reason: /^Cannot decrypt the Flows request: "encrypted_flow_data" does not authenticate/,
  },
  {
    name: "bad base64",
    tamper: "bad_base64",
    status: 421,
    reason: /^Cannot decrypt the Flows request: "encrypted_flow_data" is not base64$/,
  },
  {
    name: "a missing field",
    tamper: "missing_field",
    status: 400,
    reason: /^Cannot read the Flows request: "initial_vector" is required: a base64 string$/,
  },
  {
    name: "a body over the cap",
    padBytes: 4_096,
    status: 413,
    reason: /^Body is larger than the limit of 2048 bytes/,
  },
  {
    name: "a missing signature",
    signature: "missing",
    status: 432,
    reason: /^Cannot verify signature: header "X-Hub-Signature-256" is missing$/,
  },
  {
    name: "a wrong signature",
    signature: "wrong",
    status: 432,
    reason: /^Cannot verify signature: signature does not match the body/,
  },
];

for (const refusal of REFUSALS) {
  Deno.test(`POST /flows refuses ${refusal.name} with ${refusal.status} and says why in the log`, async () => {
    const metrics = createServiceMetrics();
    await using server = await startFlowsServer(
      bookingFlows(),
      { MAX_BODY_BYTES: "2048" },
      metrics,
    );
    const result = await metaExchange({
      url: `${server.origin}/flows`,
      request: { version: "3.0", action: "ping" },
      ...(refusal.tamper ? { tamper: refusal.tamper } : {}),
      ...(refusal.signature ? { signature: refusal.signature } : {}),
      ...(refusal.otherKey ? { publicKeyPem: flowsKeyPair(1).publicKeyPem } : {}),
      ...(refusal.padBytes ? { padBytes: refusal.padBytes } : {}),
    });
    assert.equal(result.status, refusal.status, result.text);
    const line = requestLine(server);
    assert.equal(line.status, refusal.status);
    assert.equal(line.level, "warn");
    assert.match(String(line.reason), refusal.reason);
    const exposition = parseExposition(metrics.registry.render());
    const outcome = {
      421: "undecryptable",
      400: "bad_request",
      413: "too_large",
      432: "rejected_signature",
    }[refusal.status]!;
    assert.equal(
      valueOf(exposition, "wa_webhook_flow_requests_total", { action: "unknown", outcome }),
      1,
    );
  });
}

Deno.test("POST /flows counts requests by action and outcome and times the handlers", async () => {
  const metrics = createServiceMetrics();
  await using server = await startFlowsServer(bookingFlows(), {}, metrics);
  const url = `${server.origin}/flows`;
  await metaExchange({ url, request: { version: "3.0", action: "ping" } });
  await metaExchange({ url, request: { version: "3.0", action: "INIT", flow_token: TOKEN } });
  await metaExchange({
    url,
    request: { version: "3.0", action: "data_exchange", screen: "EXPIRED", flow_token: TOKEN },
  });
  const exposition = parseExposition(metrics.registry.render());
  const count = (action: string, outcome: string): number =>
    valueOf(exposition, "wa_webhook_flow_requests_total", { action, outcome });
  assert.equal(count("ping", "answered"), 1);
  assert.equal(count("INIT", "answered"), 1);
  assert.equal(count("data_exchange", "invalid_token"), 1);
  assert.equal(valueOf(exposition, "wa_webhook_flow_handler_seconds_count", { action: "INIT" }), 1);
  assert.equal(
    valueOf(exposition, "wa_webhook_flow_handler_seconds_count", { action: "data_exchange" }),
    1,
  );
});

Deno.test("FLOWS_PATH moves the endpoint; without a private key there is none", async () => {
  await using moved = await startFlowsServer(new Flows(), { FLOWS_PATH: "/hooks/flows" });
  const ping = { version: "3.0", action: "ping" };
  const result = await metaExchange({ url: `${moved.origin}/hooks/flows`, request: ping });
  assert.deepEqual(result.answer, { data: { status: "active" } });
  await using off = await startTestServer({ startWorker: false });
  const response = await fetch(`${off.origin}/flows`, { method: "POST", body: "{}" });
  assert.equal(response.status, 404);
  assert.match(await response.text(), /No route for \\"\/flows\\"/);
});
