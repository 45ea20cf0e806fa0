/**
 * The Graph API client against the fake Graph API over loopback. Time is a `ManualClock`: the
 * tests move it to release backoff, pacing and timeouts, and wait for real I/O normally.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ManualClock } from "../src/ops/clock.ts";
import { createLogger, type LogLevel } from "../src/ops/log.ts";
import {
  createGraphClient,
  type GraphCallOutcome,
  type GraphClient,
  type GraphClientOptions,
} from "../src/graph/client.ts";
import { recipientFields } from "../src/graph/outbound_message.ts";
import { GraphApiError } from "../src/graph/errors.ts";
import {
  FAKE_TOKEN,
  type FakeGraphApi,
  startDroppingGraphApi,
  startFakeGraphApi,
} from "./fake_graph_api.ts";

const PHONE_NUMBER_ID = "106540352242922";
const USER_PHONE = "5511999990000";
const USER_BSUID = "US.13491208655302741918";
const TIMEOUT_MS = 10_000;
/** With `random` fixed at 0.5 and a 500 ms base, full jitter waits 250 ms, then 500 ms, … */
const FIRST_BACKOFF_MS = 250;
const SECOND_BACKOFF_MS = 500;
/** How long `until` waits for real I/O before failing the test. */
const UNTIL_LIMIT_MS = 5_000;

interface SentRequest {
  at: number;
  body: Record<string, unknown>;
}

interface Harness extends AsyncDisposable {
  fake: FakeGraphApi;
  clock: ManualClock;
  client: GraphClient;
  /** Every fetch the client made, stamped with the manual clock's time. */
  sent: SentRequest[];
  outcomes: GraphCallOutcome[];
  logs: { level: LogLevel; line: string }[];
}

function setup(overrides: Partial<GraphClientOptions> = {}): Harness {
  const fake = startFakeGraphApi();
  const clock = new ManualClock();
  const sent: SentRequest[] = [];
  const outcomes: GraphCallOutcome[] = [];
  const logs: { level: LogLevel; line: string }[] = [];
  const client = createGraphClient({
    baseUrl: fake.url,
    token: FAKE_TOKEN,
    clock,
    logger: createLogger({ level: "debug", sink: (line, level) => logs.push({ level, line }) }),
    random: () => 0.5,
    timeoutMs: TIMEOUT_MS,
    retry: { maxAttempts: 5, baseDelayMs: 500, maxDelayMs: 30_000, maxTotalMs: 60_000 },
    fetch: (input, init) => {
      sent.push({ at: clock.now(), body: JSON.parse(String(init?.body)) });
      return fetch(input, init);
    },
    onCall: (outcome) => outcomes.push(outcome),
    ...overrides,
  });
  return { fake, clock, client, sent, outcomes, logs, [Symbol.asyncDispose]: () => fake.close() };
}

/** Waits (in real time, for real I/O) until `condition` holds. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + UNTIL_LIMIT_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Waits until the client sleeps exactly these delays (no request in flight). */
async function untilSleeping(clock: ManualClock, delaysMs: number[]): Promise<void> {
  await until(
    () => JSON.stringify(clock.pendingSleeps()) === JSON.stringify(delaysMs),
    `the clock has sleeps ${JSON.stringify(delaysMs)} (has ${
      JSON.stringify(clock.pendingSleeps())
    })`,
  );
}

/**
 * Asserts what the client sent so far: `count` calls, each seen by the fake. Call it once the
 * client can send no more: it sleeps on the clock, or its calls have settled.
 */
function assertSent(t: Harness, count: number, message?: string): void {
  assert.equal(t.sent.length, count, message);
  assert.equal(t.fake.requests.length, count, message);
}

async function rejection(promise: Promise<unknown>): Promise<GraphApiError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof GraphApiError, `expected a GraphApiError, got ${error}`);
    return error;
  }
  assert.fail("expected the call to fail");
}

Deno.test("sendText() posts Meta's text reply with the token, the recipient, the text and the context", async () => {
  await using t = setup();
  const start = t.clock.now();

  const result = await t.client.sendText(PHONE_NUMBER_ID, {
    to: USER_PHONE,
    text: "Echo: Oi",
    replyTo: "wamid.INBOUND=",
    previewUrl: false,
    bizOpaqueCallbackData: "reply-to-wamid.INBOUND=",
  });

  assert.equal(t.fake.requests.length, 1);
  const request = t.fake.requests[0]!;
  assert.equal(request.method, "POST");
  assert.equal(request.path, `/v26.0/${PHONE_NUMBER_ID}/messages`);
  assert.equal(request.headers["authorization"], `Bearer ${FAKE_TOKEN}`);
  assert.equal(request.headers["content-type"], "application/json");
  assert.deepEqual(request.body, {
    messaging_product: "whatsapp",
    to: USER_PHONE,
    recipient_type: "individual",
    type: "text",
    text: { body: "Echo: Oi", preview_url: false },
    context: { message_id: "wamid.INBOUND=" },
    biz_opaque_callback_data: "reply-to-wamid.INBOUND=",
  });
  assert.deepEqual(result, {
    messageId: "wamid.FAKE000001",
    contact: { input: USER_PHONE, waId: USER_PHONE },
  });
  assert.deepEqual(t.sent.map((s) => s.at), [start]);
  assert.deepEqual(t.clock.pendingSleeps(), [], "the request's timeout is cleared");
});

Deno.test("sendText() addresses a user known only by a BSUID through recipient, not to", async () => {
  await using t = setup();

  const result = await t.client.sendText(PHONE_NUMBER_ID, {
    to: { userId: USER_BSUID },
    text: "Hello",
  });

  const body = t.fake.requests[0]!.body as Record<string, unknown>;
  assert.equal(body.recipient, USER_BSUID);
  assert.equal("to" in body, false);
  assert.deepEqual(result.contact, { input: USER_BSUID, userId: USER_BSUID });
});

Deno.test("recipientFields() prefers the phone number, falls back to the BSUID and reads a bare string", () => {
  assert.deepEqual(recipientFields({ phone: USER_PHONE, userId: USER_BSUID }), { to: USER_PHONE });
  assert.deepEqual(recipientFields({ userId: USER_BSUID }), { recipient: USER_BSUID });
  assert.deepEqual(recipientFields({ phone: "", userId: USER_BSUID }), { recipient: USER_BSUID });
  assert.deepEqual(recipientFields(USER_PHONE), { to: USER_PHONE });
  assert.deepEqual(recipientFields(USER_BSUID), { recipient: USER_BSUID });
  assert.deepEqual(recipientFields("US.ENT.11815799212886844830"), {
    recipient: "US.ENT.11815799212886844830",
  });
  assert.throws(() => recipientFields({}), TypeError);
});

Deno.test("markAsRead() sends Meta's read receipt, with the typing indicator when asked", async () => {
  await using t = setup();

  await t.client.markAsRead(PHONE_NUMBER_ID, "wamid.INBOUND=", { typingIndicator: true });
  await t.client.markAsRead(PHONE_NUMBER_ID, "wamid.OTHER=");

  assert.deepEqual(t.fake.requests.map((r) => r.body), [
    {
      messaging_product: "whatsapp",
      status: "read",
      message_id: "wamid.INBOUND=",
      typing_indicator: { type: "text" },
    },
    { messaging_product: "whatsapp", status: "read", message_id: "wamid.OTHER=" },
  ]);
});

Deno.test("sendMessage() sends any typed message and uses the token of its phone number id", async () => {
  await using fake = startFakeGraphApi({
    tokensByPhoneNumberId: { "2222": "second-number-token" },
  });
  const client = createGraphClient({
    baseUrl: fake.url,
    token: FAKE_TOKEN,
    tokensByPhoneNumberId: { "2222": "second-number-token" },
    clock: new ManualClock(),
  });

  const first = await client.sendMessage(PHONE_NUMBER_ID, {
    to: USER_PHONE,
    type: "image",
    image: { link: "https://example.com/cat.jpg", caption: "A cat" },
  });
  const second = await client.sendMessage("2222", {
    to: USER_PHONE,
    type: "reaction",
    reaction: { message_id: "wamid.INBOUND=", emoji: "👍" },
  });

  assert.notEqual(first.messageId, second.messageId);
  assert.deepEqual(fake.requests.map((r) => [r.path, r.headers["authorization"]]), [
    [`/v26.0/${PHONE_NUMBER_ID}/messages`, `Bearer ${FAKE_TOKEN}`],
    ["/v26.0/2222/messages", "Bearer second-number-token"],
  ]);
  assert.deepEqual(fake.requests[0]!.body, {
    messaging_product: "whatsapp",
    to: USER_PHONE,
    type: "image",
    image: { link: "https://example.com/cat.jpg", caption: "A cat" },
  });
});

Deno.test("a request Meta finds malformed fails at once as invalid_request (100)", async () => {
  await using t = setup();

  const error = await rejection(
    t.client.sendMessage(PHONE_NUMBER_ID, { to: USER_PHONE, type: "text", text: { body: "" } }),
  );

  assert.equal(error.category, "invalid_request");
  assert.equal(error.code, 100);
  assert.equal(error.httpStatus, 400);
  assert.equal(error.retryable, false);
  assert.equal(t.fake.requests.length, 1);
});

Deno.test("130429 twice then success: delivered after two backoffs, nothing sent before the clock moves", async () => {
  await using t = setup();
  t.fake.script({ error: 130429 }, { error: 130429 });
  const start = t.clock.now();

  const sending = t.client.sendText(PHONE_NUMBER_ID, { to: USER_PHONE, text: "Hello" });

  await untilSleeping(t.clock, [FIRST_BACKOFF_MS]);
  assertSent(t, 1);
  await t.clock.advance(FIRST_BACKOFF_MS - 1);
  // Still the same backoff, a millisecond from its end: the retry cannot have gone.
  assert.deepEqual(t.clock.pendingSleeps(), [1]);
  assertSent(t, 1, "not sent a millisecond early");
  await t.clock.advance(1);

  await untilSleeping(t.clock, [SECOND_BACKOFF_MS]);
  assertSent(t, 2);
  await t.clock.advance(SECOND_BACKOFF_MS);

  const result = await sending;
  assert.equal(result.messageId, "wamid.FAKE000001");
  assert.deepEqual(t.sent.map((s) => s.at - start), [
    0,
    FIRST_BACKOFF_MS,
    FIRST_BACKOFF_MS + SECOND_BACKOFF_MS,
  ]);
  assert.deepEqual(
    t.outcomes.map((o) => [o.attempt, o.outcome, o.httpStatus, o.code]),
    [[1, "throttled", 400, 130429], [2, "throttled", 400, 130429], [3, "ok", undefined, undefined]],
  );
});

Deno.test("429 with Retry-After: 2 waits exactly 2 s before the next try", async () => {
  await using t = setup();
  t.fake.script({ status: 429, body: "Too Many Requests", headers: { "Retry-After": "2" } });
  const start = t.clock.now();

  const sending = t.client.sendText(PHONE_NUMBER_ID, { to: USER_PHONE, text: "Hello" });

  await untilSleeping(t.clock, [2000]);
  await t.clock.advance(1999);
  assert.deepEqual(t.clock.pendingSleeps(), [1]);
  assertSent(t, 1);
  await t.clock.advance(1);
  await sending;
  assert.deepEqual(t.sent.map((s) => s.at - start), [0, 2000]);
  assert.equal(t.outcomes[0]!.outcome, "throttled");
});

Deno.test("Retry-After as an HTTP date waits until that date by the client's clock", async () => {
  await using t = setup();
  const start = t.clock.now();
  t.fake.script({ error: 130429, retryAfter: new Date(start + 3000).toUTCString() });

  const sending = t.client.sendText(PHONE_NUMBER_ID, { to: USER_PHONE, text: "Hello" });

  await untilSleeping(t.clock, [3000]);
  await t.clock.advance(3000);
  await sending;
  assert.deepEqual(t.sent.map((s) => s.at - start), [0, 3000]);
});

Deno.test("131047 (outside the 24-hour window) fails at once as a recipient error", async () => {
  await using t = setup();
  t.fake.script({ error: 131047, details: "More than 24 hours have passed" });

  const error = await rejection(
    t.client.sendText(PHONE_NUMBER_ID, { to: USER_PHONE, text: "Hello" }),
  );

  assert.equal(error.category, "recipient");
  assert.equal(error.retryable, false);
  assert.equal(error.code, 131047);
  assert.equal(error.httpStatus, 400);
  assert.equal(error.details, "More than 24 hours have passed");
  assert.match(error.fbtraceId ?? "", /^Fake/);
  assert.match(error.message, /131047/);
  // The call has failed and nothing waits on the clock: there is no retry to come.
  assert.deepEqual(t.clock.pendingSleeps(), []);
  assertSent(t, 1);
});

Deno.test("190 (bad token) fails at once as auth with one error line that does not hold the token", async () => {
  const badToken = "EAAG-expired-secret-token";
  await using t = setup({ token: badToken });

  const error = await rejection(
    t.client.sendText(PHONE_NUMBER_ID, { to: USER_PHONE, text: "Very private words" }),
  );

  assert.equal(error.category, "auth");
  assert.equal(error.code, 190);
  assert.equal(error.httpStatus, 401);
  assert.equal(error.retryable, false);
  assert.equal(t.fake.requests.length, 1);
  const errorLines = t.logs.filter((l) => l.level === "error");
  assert.equal(errorLines.length, 1);
  assert.match(errorLines[0]!.line, /"code":190/);
  for (const { line } of t.logs) {
    assert.equal(line.includes(badToken), false, `token in log line ${line}`);
    assert.equal(line.includes("Very private words"), false, `text in log line ${line}`);
  }
});

/**
 * Awaits `promise`, failing the test instead of hanging when it has not settled within
 * `UNTIL_LIMIT_MS` of real time (a client that retries would wait for the clock forever).
 */
async function settled<T>(promise: Promise<T>, what: string): Promise<T> {
  let isSettled = false;
  promise.then(() => isSettled = true, () => isSettled = true);
  await until(() => isSettled, what);
  return await promise;
}

Deno.test("a message whose answer times out fails as unknown_outcome, not sent again by the client", async () => {
  await using t = setup();
  t.fake.answerLate(Infinity);

  const sending = rejection(t.client.sendText(PHONE_NUMBER_ID, { to: USER_PHONE, text: "Hello" }));

  await t.fake.waitForRequests(1);
  await untilSleeping(t.clock, [TIMEOUT_MS]);
  await t.clock.advance(TIMEOUT_MS);
  const error = await settled(sending, "the call fails without a retry");
  assert.equal(error.category, "unknown_outcome");
  assert.equal(error.retryable, false);
  assert.match(error.message, /did not answer within 10000 ms: the request may have been accepted/);
  assert.deepEqual(t.fake.accepted, ["wamid.FAKE000001"], "Meta took it nonetheless");
  assert.equal(t.fake.requests.length, 1);
  assert.deepEqual(t.clock.pendingSleeps(), []);
  assert.deepEqual(t.outcomes.map((o) => o.outcome), ["unknown_outcome"]);
  assert.ok(
    t.logs.some((l) => l.level === "warn" && l.line.includes("graph call outcome unknown")),
  );
});

Deno.test("a read receipt whose answer times out is retried: marking read twice changes nothing", async () => {
  await using t = setup();
  t.fake.script({ delayMs: Infinity });
  const start = t.clock.now();

  const marking = t.client.markAsRead(PHONE_NUMBER_ID, "wamid.INBOUND=");

  await t.fake.waitForRequests(1);
  await untilSleeping(t.clock, [TIMEOUT_MS]);
  await t.clock.advance(TIMEOUT_MS);
  await untilSleeping(t.clock, [FIRST_BACKOFF_MS]);
  await t.clock.advance(FIRST_BACKOFF_MS);
  await marking;
  assert.deepEqual(t.sent.map((s) => s.at - start), [0, TIMEOUT_MS + FIRST_BACKOFF_MS]);
  assert.deepEqual(t.outcomes.map((o) => o.outcome), ["unknown_outcome", "ok"]);
});

Deno.test("a connection lost after the request was written fails as unknown_outcome, not retried", async () => {
  await using dropping = startDroppingGraphApi();
  await using t = setup({ baseUrl: dropping.url });

  const error = await settled(
    rejection(t.client.sendText(PHONE_NUMBER_ID, { to: USER_PHONE, text: "Hello" })),
    "the call fails without a retry",
  );
  assert.equal(error.category, "unknown_outcome");
  assert.match(error.message, /^Lost the connection to the Graph API: .*may have been accepted$/);
  assert.equal(dropping.requests.length, 1);
  assert.deepEqual(t.clock.pendingSleeps(), []);
});

Deno.test("a refused connection sent nothing: it is retried as transient", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (closed.addr as Deno.NetAddr).port;
  closed.close();
  await using t = setup({
    baseUrl: `http://127.0.0.1:${port}`,
    retry: { maxAttempts: 2, baseDelayMs: 500, maxDelayMs: 30_000, maxTotalMs: 60_000 },
  });

  const sending = rejection(t.client.sendText(PHONE_NUMBER_ID, { to: USER_PHONE, text: "Hi" }));
  await untilSleeping(t.clock, [FIRST_BACKOFF_MS]);
  await t.clock.advance(FIRST_BACKOFF_MS);
  const error = await sending;
  assert.equal(error.category, "transient");
  assert.equal(error.retryable, true);
  assert.match(error.message, /^Cannot connect to the Graph API: fetch failed: .*\(Connect\)/);
  assert.equal(t.sent.length, 2);
});

Deno.test("a Graph error quoting the message text keeps it out of the error's message and every log line", async () => {
  await using t = setup();
  const secret = "the words only the user may see";
  t.fake.script(
    { error: 131000, message: `(#131000) Failed on "${secret}"`, details: secret },
    { error: 131026, message: `(#131026) Undeliverable: "${secret}"`, details: secret },
  );

  const sending = rejection(t.client.sendText(PHONE_NUMBER_ID, { to: USER_PHONE, text: secret }));
  await untilSleeping(t.clock, [FIRST_BACKOFF_MS]);
  await t.clock.advance(FIRST_BACKOFF_MS);
  const error = await sending;
  assert.equal(error.code, 131026);
  assert.equal(
    error.message,
    "Graph API answered HTTP 400 with error 131026 (recipient): Message undeliverable",
  );
  assert.equal(error.details, secret, "kept on the error for code that needs it");
  assert.ok(t.logs.some((l) => l.level === "warn" && l.line.includes('"code":131000')));
  for (const { line } of t.logs) assert.equal(line.includes(secret), false, `text in ${line}`);
});

Deno.test("500 with Meta's body and a bare 502 are transient and retried", async () => {
  await using t = setup();
  t.fake.script({ error: 131000 }, { status: 502, body: "<html>Bad Gateway</html>" });

  const sending = t.client.sendText(PHONE_NUMBER_ID, { to: USER_PHONE, text: "Hello" });

  await untilSleeping(t.clock, [FIRST_BACKOFF_MS]);
  await t.clock.advance(FIRST_BACKOFF_MS);
  await untilSleeping(t.clock, [SECOND_BACKOFF_MS]);
  await t.clock.advance(SECOND_BACKOFF_MS);
  await sending;
  assert.deepEqual(t.outcomes.map((o) => [o.outcome, o.httpStatus, o.code]), [
    ["transient", 500, 131000],
    ["transient", 502, undefined],
    ["ok", undefined, undefined],
  ]);
  assert.ok(t.logs.some((l) => l.line.includes("not a Graph error")));
});

Deno.test("retries stop at maxAttempts and fail with the last error", async () => {
  await using t = setup({
    retry: { maxAttempts: 3, baseDelayMs: 500, maxDelayMs: 30_000, maxTotalMs: 60_000 },
  });
  t.fake.script({ status: 500 }, { status: 500 }, { status: 500 }, { status: 500 });

  const sending = rejection(t.client.sendText(PHONE_NUMBER_ID, { to: USER_PHONE, text: "Hi" }));

  await untilSleeping(t.clock, [FIRST_BACKOFF_MS]);
  await t.clock.advance(FIRST_BACKOFF_MS);
  await untilSleeping(t.clock, [SECOND_BACKOFF_MS]);
  await t.clock.advance(SECOND_BACKOFF_MS);
  const error = await sending;
  assert.equal(error.category, "transient");
  assert.equal(error.httpStatus, 500);
  assert.match(error.message, /empty body/);
  assert.deepEqual(t.clock.pendingSleeps(), []);
  assertSent(t, 3);
});

Deno.test("retries stop when the next wait would pass maxTotalMs", async () => {
  await using t = setup({
    retry: { maxAttempts: 10, baseDelayMs: 500, maxDelayMs: 30_000, maxTotalMs: 2500 },
  });
  const throttled = { error: 130429, retryAfter: "1" };
  t.fake.script(throttled, throttled, throttled, throttled);
  const start = t.clock.now();

  const sending = rejection(t.client.sendText(PHONE_NUMBER_ID, { to: USER_PHONE, text: "Hi" }));

  await untilSleeping(t.clock, [1000]);
  await t.clock.advance(1000);
  await untilSleeping(t.clock, [1000]);
  await t.clock.advance(1000);
  const error = await sending;
  assert.equal(error.category, "throttled");
  assert.equal(error.retryAfterMs, 1000);
  assert.deepEqual(t.sent.map((s) => s.at - start), [0, 1000, 2000]);
  assert.ok(t.logs.some((l) => l.level === "warn" && l.line.includes("graph call gave up")));
});

Deno.test("a burst of 300 sends on one number is paced at 80 per second by the clock", async () => {
  await using t = setup({ messagesPerSecond: 80 });
  const start = t.clock.now();
  const burst = 300;

  const sends = Array.from(
    { length: burst },
    (_, i) => t.client.sendText(PHONE_NUMBER_ID, { to: `5511${1000000 + i}`, text: "Hello" }),
  );

  await t.fake.waitForRequests(80);
  // Every other send waits for a token on the clock.
  await until(() => t.clock.pendingSleeps().length === burst - 80, "the first 80 are answered");
  assertSent(t, 80, "the first 80 go at once, the rest wait");
  await t.clock.advance(1000);
  await t.fake.waitForRequests(160);
  await t.clock.advance(1000);
  await t.fake.waitForRequests(240);
  await t.clock.advance(750);
  const results = await Promise.all(sends);

  assert.equal(new Set(results.map((r) => r.messageId)).size, burst);
  const expected = Array.from({ length: burst }, (_, i) => i < 80 ? 0 : (i - 79) * 12.5);
  assert.deepEqual(t.sent.map((s) => s.at - start), expected);
  const perSecond = [0, 1, 2].map((second) =>
    t.sent.filter((s) => Math.floor((s.at - start) / 1000) === second).length
  );
  assert.deepEqual(perSecond, [159, 80, 61]);
});

Deno.test("131056 spaces further sends to that recipient (1 s, then 4 s) and delays no one else", async () => {
  await using t = setup();
  t.fake.script({ error: 131056 });
  const start = t.clock.now();
  const other = "5511888880000";

  const first = t.client.sendText(PHONE_NUMBER_ID, { to: USER_PHONE, text: "one" });
  await untilSleeping(t.clock, [1000]);
  const second = t.client.sendText(PHONE_NUMBER_ID, { to: USER_PHONE, text: "two" });
  await t.client.sendText(PHONE_NUMBER_ID, { to: other, text: "elsewhere" });
  assert.deepEqual(t.clock.pendingSleeps(), [1000], "'two' waits for 'one' to be accepted");

  t.fake.script({ error: 131056 });
  await t.clock.advance(1000);
  await untilSleeping(t.clock, [4000]);
  await t.clock.advance(4000);
  await first;
  await untilSleeping(t.clock, [4000]);
  await t.clock.advance(4000);
  await second;

  const sentTo = (to: string): [number, string][] =>
    t.sent.filter((s) => s.body.to === to).map((s) => [
      s.at - start,
      (s.body.text as { body: string }).body,
    ]);
  assert.deepEqual(sentTo(other), [[0, "elsewhere"]]);
  assert.deepEqual(sentTo(USER_PHONE), [[0, "one"], [1000, "one"], [5000, "one"], [9000, "two"]]);
});

Deno.test("an aborted signal stops a call waiting to retry", async () => {
  await using t = setup();
  t.fake.script({ error: 130429 });
  const controller = new AbortController();

  const sending = t.client.sendText(PHONE_NUMBER_ID, {
    to: USER_PHONE,
    text: "Hello",
    signal: controller.signal,
  });
  await untilSleeping(t.clock, [FIRST_BACKOFF_MS]);
  controller.abort(new Error("shutting down"));

  await assert.rejects(sending, /shutting down/);
  assert.deepEqual(t.clock.pendingSleeps(), []);
  assert.equal(t.fake.requests.length, 1);
});
