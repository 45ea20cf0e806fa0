/**
 * The webhook over a real loopback server: the handshake, signed and unsigned deliveries, bounded
 * bodies, the router's 404, 405 and HEAD answers, and the access log.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  openTempKv,
  postDelivery,
  startTestServer,
  TEST_SECRET,
  TEST_VERIFY_TOKEN,
  testConfig,
} from "./support.ts";
import { signBody } from "../src/webhook/signature.ts";
import type { KvEventRecord as EventRecord } from "../src/store/kv/keys.ts";

/** A delivery with one text message, as Meta sends it (escapes included). */
function textDelivery(wamid: string, escapedBody = "hello"): string {
  return String
    .raw`{"object":"whatsapp_business_account","entry":[{"id":"102290000000001","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"106540000000002"},"contacts":[{"profile":{"name":"Ana"},"wa_id":"5511999990000"}],"messages":[{"from":"5511999990000","id":"${wamid}","timestamp":"1767225600","type":"text","text":{"body":"${escapedBody}"}}]}}]}]}`;
}
const DELIVERY = textDelivery("wamid.EDGE01");

async function recordedEvents(kv: Deno.Kv): Promise<EventRecord[]> {
  const records: EventRecord[] = [];
  for await (const entry of kv.list<EventRecord>({ prefix: ["events"] })) records.push(entry.value);
  return records;
}

function handshakeUrl(origin: string, params: Record<string, string>): string {
  return `${origin}/webhook/whatsapp?${new URLSearchParams(params)}`;
}

Deno.test("GET /webhook/whatsapp echoes hub.challenge as text for the right verify token", async () => {
  await using server = await startTestServer();
  const response = await fetch(handshakeUrl(server.origin, {
    "hub.mode": "subscribe",
    "hub.verify_token": TEST_VERIFY_TOKEN,
    "hub.challenge": "1158201444",
  }));
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(await response.text(), "1158201444");
});

Deno.test("GET /webhook/whatsapp answers 403 for a wrong token and 400 for missing parameters", async () => {
  await using server = await startTestServer();
  const cases: [Record<string, string>, number, RegExp][] = [
    [
      { "hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1" },
      403,
      /does not match/,
    ],
    [{ "hub.mode": "subscribe", "hub.challenge": "1" }, 400, /"hub.verify_token" is missing/],
    [{ "hub.verify_token": TEST_VERIFY_TOKEN, "hub.challenge": "1" }, 400, /"hub.mode" is missing/],
    [{ "hub.mode": "subscribe", "hub.verify_token": TEST_VERIFY_TOKEN }, 400, /"hub.challenge"/],
    [
      { "hub.mode": "unsubscribe", "hub.verify_token": TEST_VERIFY_TOKEN, "hub.challenge": "1" },
      400,
      /not "subscribe"/,
    ],
  ];
  for (const [params, status, reason] of cases) {
    const response = await fetch(handshakeUrl(server.origin, params));
    assert.equal(response.status, status, JSON.stringify(params));
    assert.match((await response.json()).error, reason);
  }
  assert.doesNotMatch(server.logs.text(), /wrong|test-verify-token/, "no token in the logs");
});

Deno.test("POST /webhook/whatsapp records a correctly signed delivery before answering 200", async () => {
  await using server = await startTestServer({ startWorker: false });
  const response = await postDelivery(server.origin, DELIVERY);
  assert.equal(response.status, 200);
  await response.body?.cancel();
  const records = await recordedEvents(server.kv);
  assert.deepEqual(records.map((r) => [r.id, r.state]), [["message:wamid.EDGE01", "pending"]]);
});

Deno.test("POST /webhook/whatsapp answers 401 with a reason for each signature failure", async () => {
  await using server = await startTestServer({ startWorker: false });
  const good = await signBody(TEST_SECRET, new TextEncoder().encode(DELIVERY));
  const cases: [string | null, RegExp][] = [
    [null, /"X-Hub-Signature-256" is missing/],
    ["sha256=abc", /is not "sha256=" and 64 hex digits/],
    [good.replace("sha256=", "sha1="), /is not "sha256="/],
    [await signBody("another-secret", new TextEncoder().encode(DELIVERY)), /does not match/],
  ];
  for (const [signature, reason] of cases) {
    const response = await postDelivery(server.origin, DELIVERY, { signature });
    assert.equal(response.status, 401);
    assert.match((await response.json()).error, reason);
  }
  assert.deepEqual(await recordedEvents(server.kv), [], "nothing unverified is recorded");
  const rejections = server.logs.lines.filter((line) => line.status === 401);
  assert.equal(rejections.length, 4);
  assert.ok(rejections.every((line) => line.level === "warn" && typeof line.reason === "string"));
  assert.ok(!server.logs.text().includes(good.slice(7, 30)), "no signature in the logs");
});

Deno.test("POST /webhook/whatsapp accepts the old and the new secret while rotating", async () => {
  await using server = await startTestServer({ env: { APP_SECRET: "old-secret,new-secret" } });
  for (const secret of ["old-secret", "new-secret"]) {
    const response = await postDelivery(server.origin, DELIVERY, { secret });
    assert.equal(response.status, 200);
    await response.body?.cancel();
  }
  const refused = await postDelivery(server.origin, DELIVERY, { secret: "third-secret" });
  assert.equal(refused.status, 401);
  await refused.body?.cancel();
});

Deno.test("POST /webhook/whatsapp verifies Meta's escaped bytes exactly as sent", async () => {
  await using server = await startTestServer({ startWorker: false });
  const escaped = textDelivery(
    "wamid.ESC01",
    String.raw`J'ai mang\u00e9 \ud83d\ude00 https:\/\/x.test\/a`,
  );
  const response = await postDelivery(server.origin, escaped);
  assert.equal(response.status, 200);
  await response.body?.cancel();
  const raw = textDelivery("wamid.RAW01", "pâtes 😀 / @");
  const rawResponse = await postDelivery(server.origin, raw);
  assert.equal(rawResponse.status, 200);
  await rawResponse.body?.cancel();
  const texts = Object.fromEntries(
    (await recordedEvents(server.kv)).map((r) => [
      r.id,
      r.event?.kind === "message" && r.event.message.type === "text"
        ? r.event.message.text.body
        : undefined,
    ]),
  );
  assert.deepEqual(texts, {
    "message:wamid.ESC01": "J'ai mangé 😀 https://x.test/a",
    "message:wamid.RAW01": "pâtes 😀 / @",
  });
});

Deno.test("POST /webhook/whatsapp answers 400 for a signed body that is not JSON", async () => {
  await using server = await startTestServer();
  const notJson = await postDelivery(server.origin, "{not json");
  assert.equal(notJson.status, 400);
  assert.match((await notJson.json()).error, /Body is not valid JSON/);
  const notUtf8 = await postDelivery(server.origin, new Uint8Array([0x7b, 0xff, 0x7d]));
  assert.equal(notUtf8.status, 400);
  assert.match((await notUtf8.json()).error, /not valid UTF-8/);
});

Deno.test("POST /webhook/whatsapp answers 503 when the delivery cannot be recorded", async () => {
  await using temp = await openTempKv();
  await using server = await startTestServer({ kv: temp.kv, startWorker: false });
  temp.kv.close();
  const response = await postDelivery(server.origin, DELIVERY);
  assert.equal(response.status, 503);
  assert.match((await response.json()).error, /retry later/);
  assert.ok(server.logs.lines.some((line) => line.msg === "delivery not recorded"));
});

Deno.test("POST /webhook/whatsapp answers 413 for a Content-Length over the cap without reading", async () => {
  await using server = await startTestServer({
    env: { MAX_BODY_BYTES: "2048" },
    startWorker: false,
  });
  const small = textDelivery("wamid.CAP01");
  const atCap = small.replace('"hello"', `"${"x".repeat(2048 - small.length + 5)}"`);
  assert.equal(atCap.length, 2048);
  const ok = await postDelivery(server.origin, atCap);
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
  const over = await postDelivery(server.origin, JSON.stringify({ pad: "x".repeat(2048) }));
  assert.equal(over.status, 413);
  assert.match((await over.json()).error, /larger than the limit of 2048 bytes/);
  assert.equal((await recordedEvents(server.kv)).length, 1);
});

Deno.test("POST /webhook/whatsapp answers 413 to a chunked body as soon as it passes the cap", async () => {
  await using server = await startTestServer({ env: { MAX_BODY_BYTES: "2048" } });
  const port = Number(new URL(server.origin).port);
  using connection = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunk = "x".repeat(1024);
  const request = "POST /webhook/whatsapp HTTP/1.1\r\nHost: test\r\n" +
    "Transfer-Encoding: chunked\r\nX-Hub-Signature-256: sha256=" + "0".repeat(64) + "\r\n\r\n" +
    `400\r\n${chunk}\r\n`.repeat(3);
  await connection.write(new TextEncoder().encode(request));
  // The stream is never finished: the answer must come from the byte count alone.
  const buffer = new Uint8Array(4096);
  const read = await connection.read(buffer);
  const head = new TextDecoder().decode(buffer.subarray(0, read ?? 0));
  assert.match(head, /^HTTP\/1\.1 413 /);
  assert.match(head, /streamed body passed 2048 bytes/);
});

Deno.test("the router answers 404, 405 with Allow, and HEAD on the real server", async () => {
  await using server = await startTestServer({ config: testConfig() });
  const missing = await fetch(`${server.origin}/nope`);
  assert.equal(missing.status, 404);
  assert.deepEqual(await missing.json(), { error: 'No route for "/nope"' });
  const wrongMethod = await fetch(`${server.origin}/webhook/whatsapp`, { method: "PUT" });
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.get("allow"), "GET, HEAD, POST");
  await wrongMethod.body?.cancel();
  // HEAD answers as GET does, with the same headers and no body.
  const health = await fetch(`${server.origin}/healthz`);
  const head = await fetch(`${server.origin}/healthz`, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), "");
  assert.deepEqual(await health.json(), { status: "ok" });
  // Every header but those that differ per answer, Content-Length included (RFC 9110 8.6).
  const comparable = (response: Response): [string, string][] =>
    [...response.headers].filter(([name]) => !["date", "x-request-id"].includes(name));
  assert.deepEqual(comparable(head), comparable(health));
  assert.equal(head.headers.get("content-length"), String('{"status":"ok"}'.length));
  assert.equal(head.headers.get("cache-control"), "no-store");
  assert.match(head.headers.get("content-type") ?? "", /^application\/json/);
  assert.match(head.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  // The server drops a HEAD answer's body on the wire whatever the app returns: the app's own
  // answer must have none.
  const direct = await server.app.fetch(
    new Request(`${server.origin}/healthz`, { method: "HEAD" }),
  );
  assert.equal(direct.status, 200);
  assert.equal(direct.body, null);
  // HEAD is GET's: on a path without GET it is refused like any other method.
  const headOnPost = await fetch(`${server.origin}/admin/events/x/replay`, { method: "HEAD" });
  assert.equal(headOnPost.status, 405);
  assert.equal(headOnPost.headers.get("allow"), "POST");
  await headOnPost.body?.cancel();
});

Deno.test("every request gets one access line with its id, status and duration", async () => {
  await using server = await startTestServer();
  const response = await fetch(handshakeUrl(server.origin, {
    "hub.mode": "subscribe",
    "hub.verify_token": TEST_VERIFY_TOKEN,
    "hub.challenge": "42",
  }));
  await response.body?.cancel();
  const lines = server.logs.lines.filter((line) => line.msg === "request");
  assert.equal(lines.length, 1);
  const [line] = lines;
  assert.equal(line?.requestId, response.headers.get("x-request-id"));
  assert.equal(line?.status, 200);
  assert.equal(line?.path, "/webhook/whatsapp");
  assert.equal(typeof line?.ms, "number");
  assert.doesNotMatch(server.logs.text(), /verify_token|test-verify-token/);
});
