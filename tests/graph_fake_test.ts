/** The fake Graph API answers like Meta: token and shape checks, Meta's error and success shapes. */

import assert from "node:assert/strict";
import { FAKE_TOKEN, startDroppingGraphApi, startFakeGraphApi } from "./fake_graph_api.ts";

const PATH = "/v26.0/1234/messages";
const TEXT = {
  messaging_product: "whatsapp",
  to: "5511999990000",
  type: "text",
  text: { body: "Hi" },
};

async function post(
  url: string,
  body: unknown,
  token: string | null = FAKE_TOKEN,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(url, {
    method: "POST",
    headers: token === null ? {} : { Authorization: `Bearer ${token}` },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

function errorCode(json: Record<string, unknown>): unknown {
  return (json.error as { code?: unknown } | undefined)?.code;
}

Deno.test("the fake Graph API accepts a text message with Meta's success shape", async () => {
  await using fake = startFakeGraphApi();
  const { status, json } = await post(fake.url + PATH, TEXT);
  assert.equal(status, 200);
  assert.deepEqual(json, {
    messaging_product: "whatsapp",
    contacts: [{ input: "5511999990000", wa_id: "5511999990000" }],
    messages: [{ id: "wamid.FAKE000001" }],
  });
  assert.deepEqual(fake.requests[0]?.body, TEXT);
});

Deno.test("the fake Graph API refuses a missing or wrong token with 190 and HTTP 401", async () => {
  await using fake = startFakeGraphApi();
  for (const token of [null, "wrong"]) {
    const { status, json } = await post(fake.url + PATH, TEXT, token);
    assert.equal(status, 401);
    assert.equal(errorCode(json), 190);
    assert.equal((json.error as { type?: unknown }).type, "OAuthException");
  }
});

Deno.test("the fake Graph API refuses a bad path or body with 100 and HTTP 400", async () => {
  await using fake = startFakeGraphApi();
  const cases: [string, unknown][] = [
    ["/v26.0/1234/other", TEXT],
    [PATH, "not json"],
    [PATH, { ...TEXT, messaging_product: undefined }],
    [PATH, { ...TEXT, recipient: "US.13491208655302741918" }],
    [PATH, { ...TEXT, to: undefined }],
    [PATH, { ...TEXT, type: "hologram" }],
    [PATH, { ...TEXT, text: undefined }],
    [PATH, { messaging_product: "whatsapp", status: "read" }],
  ];
  for (const [path, body] of cases) {
    const { status, json } = await post(fake.url + path, body);
    assert.equal(status, 400, `${path} ${JSON.stringify(body)}`);
    assert.equal(errorCode(json), 100, `${path} ${JSON.stringify(body)}`);
  }
});

Deno.test("the fake Graph API answers scripted errors with Meta's status and Retry-After", async () => {
  await using fake = startFakeGraphApi();
  fake.script({ error: 130429, retryAfter: "2" }, { error: 190 }, { status: 502 });

  const throttled = await fetch(fake.url + PATH, { method: "POST", body: "{}" });
  assert.equal(throttled.status, 400);
  assert.equal(throttled.headers.get("retry-after"), "2");
  assert.equal(errorCode(await throttled.json()), 130429);
  const expired = await post(fake.url + PATH, TEXT);
  assert.equal(expired.status, 401);
  const gateway = await fetch(fake.url + PATH, { method: "POST", body: "{}" });
  assert.equal(gateway.status, 502);
  assert.equal(await gateway.text(), "");
  assert.equal((await post(fake.url + PATH, TEXT)).status, 200);
});

Deno.test("the fake Graph API told to answer late accepts a message at once and answers later", async () => {
  await using fake = startFakeGraphApi();
  fake.answerLate(Infinity);
  const caller = new AbortController();
  const answer = fetch(fake.url + PATH, {
    method: "POST",
    headers: { Authorization: `Bearer ${FAKE_TOKEN}` },
    body: JSON.stringify(TEXT),
    signal: caller.signal,
  });
  await fake.waitForRequests(1);
  assert.deepEqual(fake.accepted, ["wamid.FAKE000001"], "accepted before any answer");
  caller.abort();
  await assert.rejects(answer);

  fake.answerLate(0);
  assert.equal((await post(fake.url + PATH, TEXT)).status, 200);
  assert.deepEqual(fake.accepted, ["wamid.FAKE000001", "wamid.FAKE000002"]);
});

Deno.test("the dropping Graph API reads the request whole, then closes without answering", async () => {
  await using dropping = startDroppingGraphApi();
  await assert.rejects(
    fetch(dropping.url + PATH, { method: "POST", body: JSON.stringify(TEXT) }),
    TypeError,
  );
  assert.equal(dropping.requests.length, 1);
  assert.equal(dropping.requests[0]!.path, PATH);
  assert.deepEqual(dropping.requests[0]!.body, TEXT);
  assert.equal(dropping.accepted.length, 1);
});
