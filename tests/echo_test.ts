/**
 * The echo handler end to end: signed deliveries to the app on a real loopback server, the worker,
 * the Graph API client and the fake Graph API. Time is a `ManualClock` shared by the worker and the
 * client; the tests move it to release backoff, pacing and timeouts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ManualClock } from "../src/ops/clock.ts";
import type { EventRecord } from "../src/store/event_record.ts";
import type { ReplyRecord } from "../src/store/reply_record.ts";
import {
  FAKE_TOKEN,
  type FakeGraphApi,
  startDroppingGraphApi,
  startFakeGraphApi,
} from "./fake_graph_api.ts";
import {
  advanceUntil,
  postDelivery,
  startTestServer,
  TEST_ADMIN_TOKEN,
  type TestServer,
  waitFor,
} from "./support.ts";

const WABA = "102290000000001";
const PHONE_ID = "106540000000002";
const OTHER_PHONE_ID = "106540000000003";
const USER_PHONE = "5511999990000";
const USER_BSUID = "US.13491208655302741918";
/** Meta's success answer to a mark-as-read, scripted ahead of a scripted reply answer. */
const READ_OK = { status: 200, body: '{"success":true}' };

interface Sender {
  from?: string;
  from_user_id?: string;
}

/** An inbound message of `type` with its payload, from `sender` (a phone number by default). */
function inbound(
  wamid: string,
  payload: Record<string, unknown>,
  sender: Sender = { from: USER_PHONE },
): Record<string, unknown> {
  return { ...sender, id: wamid, timestamp: "1767225600", ...payload };
}

function text(wamid: string, body: string, sender?: Sender): Record<string, unknown> {
  return inbound(wamid, { type: "text", text: { body } }, sender);
}

/** A delivery with one change per business number, each carrying `messages`. */
function delivery(byNumber: Record<string, Record<string, unknown>[]>): string {
  const changes = Object.entries(byNumber).map(([phoneNumberId, messages]) => ({
    field: "messages",
    value: {
      messaging_product: "whatsapp",
      metadata: { display_phone_number: "15550001111", phone_number_id: phoneNumberId },
      contacts: messages.map((message) => ({
        profile: { name: "Ana" },
        ...(message.from === undefined ? {} : { wa_id: message.from }),
        ...(message.from_user_id === undefined ? {} : { user_id: message.from_user_id }),
      })),
      messages,
    },
  }));
  return JSON.stringify({ object: "whatsapp_business_account", entry: [{ id: WABA, changes }] });
}

interface SentRequest {
  /** The manual clock's time when the client sent it. */
  at: number;
  body: Record<string, unknown>;
}

interface Harness extends AsyncDisposable {
  fake: FakeGraphApi;
  server: TestServer;
  clock: ManualClock;
  /** Every request the app's Graph API client sent, in order. */
  sent: SentRequest[];
}

async function setup(
  options: { env?: Record<string, string>; fakeTokens?: Record<string, string> } = {},
): Promise<Harness> {
  const fake = startFakeGraphApi(
    options.fakeTokens ? { tokensByPhoneNumberId: options.fakeTokens } : {},
  );
  const clock = new ManualClock();
  const sent: SentRequest[] = [];
  const server = await startTestServer({
    clock,
    random: () => 0.5,
    env: {
      ECHO_REPLIES: "true",
      WHATSAPP_TOKEN: FAKE_TOKEN,
      GRAPH_API_BASE_URL: fake.url,
      ...options.env,
    },
    fetch: (input, init) => {
      sent.push({ at: clock.now(), body: JSON.parse(String(init?.body)) });
      return fetch(input, init);
    },
  });
  return {
    fake,
    server,
    clock,
    sent,
    async [Symbol.asyncDispose]() {
      await server[Symbol.asyncDispose]();
      await fake.close();
    },
  };
}

async function post(t: Harness, body: string): Promise<void> {
  const response = await postDelivery(t.server.origin, body);
  assert.equal(response.status, 200);
  await response.body?.cancel();
}

async function record(t: Harness, wamid: string): Promise<EventRecord | null> {
  return (await t.server.store.getEvent(`message:${wamid}`))?.record ?? null;
}

async function untilState(t: Harness, wamid: string, state: EventRecord["state"]): Promise<void> {
  await waitFor(async () => (await record(t, wamid))?.state === state, `${wamid} ${state}`);
}

async function replyRecord(
  t: { server: TestServer },
  wamid: string,
): Promise<(ReplyRecord & { messageId?: string }) | null> {
  return await t.server.store.getReply({ handler: "echo", inboundId: wamid });
}

/** Stores `reply` as the echo's reply record for `wamid`, where none is yet. */
async function putReplyRecord(
  t: { server: TestServer },
  wamid: string,
  reply: ReplyRecord,
): Promise<void> {
  const of = { handler: "echo", inboundId: wamid };
  assert.ok(await t.server.store.swapReply(of, null, reply, 3_600_000), "no record before");
}

/** The client's "will be retried" lines so far: each one is followed by its backoff sleep. */
function retriesLogged(t: Harness): Record<string, unknown>[] {
  return t.server.logs.lines.filter((line) => line.msg === "graph call will be retried");
}

/**
 * Waits until the worker has gone once round its claim loop at the clock's time, to the end: what
 * was due by then is claimed and its run started. (A round ends unseen, so this waits for the next
 * one to start, a millisecond later by the clock.)
 */
async function untilWorkerCaughtUp(t: Harness): Promise<void> {
  const { worker } = t.server.app;
  for (let round = 0; round < 2; round++) {
    if (round > 0) await t.clock.advance(1);
    worker.wake();
    await waitFor(() => worker.lastLoopAt() === t.clock.now(), "a claim round at the clock's time");
  }
}

/**
 * Asserts what the app's Graph API client sent so far: `count` calls, each seen by the fake. Call
 * it once nothing can send any more: the runs that send are finished, or waiting on the clock.
 */
function assertSent(t: Harness, count: number, message?: string): void {
  assert.equal(t.sent.length, count, message);
  assert.equal(t.fake.requests.length, count, message);
}

Deno.test("a text message is marked read with the typing indicator and answered once, quoting it", async () => {
  await using t = await setup();
  const body = delivery({ [PHONE_ID]: [text("wamid.ECHO1", "Oi, tudo bem?")] });
  await post(t, body);
  await untilState(t, "wamid.ECHO1", "done");

  const [read, reply, ...more] = t.fake.requests;
  assert.deepEqual(more, []);
  for (const request of [read!, reply!]) {
    assert.equal(request.method, "POST");
    assert.equal(request.path, `/v26.0/${PHONE_ID}/messages`);
    assert.equal(request.headers.authorization, `Bearer ${FAKE_TOKEN}`);
    assert.equal(request.headers["content-type"], "application/json");
  }
  assert.deepEqual(read!.body, {
    messaging_product: "whatsapp",
    status: "read",
    message_id: "wamid.ECHO1",
    typing_indicator: { type: "text" },
  });
  assert.deepEqual(reply!.body, {
    messaging_product: "whatsapp",
    to: USER_PHONE,
    recipient_type: "individual",
    type: "text",
    text: { body: "Oi, tudo bem?" },
    context: { message_id: "wamid.ECHO1" },
  });
  assert.deepEqual(await replyRecord(t, "wamid.ECHO1"), {
    messageId: "wamid.FAKE000001",
    phoneNumberId: PHONE_ID,
  });
  assert.ok(t.server.logs.lines.some((l) => l.msg === "echo reply sent"));

  // Meta redelivers the same delivery: intake drops it before answering, so no run can send.
  await post(t, body);
  const recorded = t.server.logs.lines.filter((l) => l.msg === "delivery recorded");
  assert.deepEqual(recorded.map((l) => [l.recorded, l.duplicates]), [[1, 0], [0, 1]]);
  assert.equal(t.server.app.worker.running(), 0);
  assertSent(t, 2);
  assert.equal(
    t.server.logs.text().includes("Oi, tudo bem?"),
    false,
    "the message text is never logged",
  );
});

Deno.test("an admin replay of an answered message sends nothing: the reply record stops it", async () => {
  await using t = await setup();
  await post(t, delivery({ [PHONE_ID]: [text("wamid.REPLAY1", "hello")] }));
  await untilState(t, "wamid.REPLAY1", "done");
  assert.equal(t.fake.requests.length, 2);

  const id = encodeURIComponent("message:wamid.REPLAY1");
  const replay = await fetch(`${t.server.origin}/admin/events/${id}/replay`, {
    method: "POST",
    headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
  });
  assert.equal(replay.status, 202);
  await replay.body?.cancel();
  await waitFor(async () => {
    const replayed = await record(t, "wamid.REPLAY1");
    return replayed?.state === "done" && replayed.history.length === 2;
  }, "the replayed run done");

  // The replayed run is over: whatever it sent, it sent before it was done.
  assertSent(t, 2, "no second mark-as-read, no second reply");
  const skipped = t.server.logs.lines.filter((l) => l.msg === "echo reply already sent");
  assert.equal(skipped.length, 1);
  assert.equal(skipped[0]!.level, "debug");
  assert.equal(skipped[0]!.replyId, "wamid.FAKE000001");
});

Deno.test("a reply recorded by a run that died before finishing is not sent again by the retry", async () => {
  await using t = await setup();
  // The state a crash leaves: Meta accepted the reply and it was recorded, the event not yet done.
  const earlier: ReplyRecord = { messageId: "wamid.SENTBEFORE", phoneNumberId: PHONE_ID };
  await putReplyRecord(t, "wamid.CRASH1", earlier);
  await post(t, delivery({ [PHONE_ID]: [text("wamid.CRASH1", "hello")] }));
  await untilState(t, "wamid.CRASH1", "done");
  assertSent(t, 0);
});

Deno.test("a sender known only by a BSUID is answered through recipient, not to", async () => {
  await using t = await setup();
  const message = text("wamid.BSUID1", "hi", { from_user_id: USER_BSUID });
  await post(t, delivery({ [PHONE_ID]: [message] }));
  await untilState(t, "wamid.BSUID1", "done");

  assert.equal(t.fake.requests.length, 2);
  const reply = t.fake.requests[1]!.body as Record<string, unknown>;
  assert.equal(reply.recipient, USER_BSUID);
  assert.equal("to" in reply, false);
  assert.deepEqual(reply.context, { message_id: "wamid.BSUID1" });
});

Deno.test("a message with no sender to answer is dead-lettered with the reason, not even marked read", async () => {
  await using t = await setup();
  await post(t, delivery({ [PHONE_ID]: [text("wamid.NOBODY1", "hi", {})] }));
  await untilState(t, "wamid.NOBODY1", "dead");
  const dead = await record(t, "wamid.NOBODY1");
  assert.match(
    dead?.lastError ?? "",
    /^echo: Cannot send the echo reply: the message has no sender/,
  );
  assert.equal(t.fake.requests.length, 0, "no read receipt, no reply");
});

Deno.test("non-text messages and group messages are not echoed", async () => {
  await using t = await setup();
  const image = inbound("wamid.IMAGE1", {
    type: "image",
    image: { id: "1234", mime_type: "image/jpeg", sha256: "abc" },
  });
  const group = { ...text("wamid.GROUP1", "hi all"), group_id: "120363000000000001" };
  await post(t, delivery({ [PHONE_ID]: [image, group] }));
  await untilState(t, "wamid.IMAGE1", "done");
  await untilState(t, "wamid.GROUP1", "done");
  assertSent(t, 0);
  assert.ok(t.server.logs.lines.some((l) => l.msg === "message received" && l.type === "image"));
  assert.ok(t.server.logs.lines.some((l) => l.msg === "echo skipped: group message"));
});

Deno.test("130429 twice then success: the reply goes out after the client's backoff", async () => {
  await using t = await setup();
  t.fake.script(READ_OK, { error: 130429 }, { error: 130429 });
  const start = t.clock.now();
  await post(t, delivery({ [PHONE_ID]: [text("wamid.THROTTLE1", "hello")] }));

  // With random 0.5, full jitter over 500 ms then 1 s waits 250 ms, then 500 ms.
  await waitFor(() => retriesLogged(t).length === 1, "the first retry planned");
  assert.equal(retriesLogged(t)[0]!.delayMs, 250);
  await t.clock.advance(249);
  // The client still sleeps its backoff, a millisecond from the end: nothing can have been sent.
  assert.ok(t.clock.pendingSleeps().includes(1), `sleeps: ${t.clock.pendingSleeps()}`);
  assertSent(t, 2, "not sent a millisecond early");
  await t.clock.advance(1);
  await waitFor(() => retriesLogged(t).length === 2, "the second retry planned");
  assert.equal(retriesLogged(t)[1]!.delayMs, 500);
  await t.clock.advance(500);
  await untilState(t, "wamid.THROTTLE1", "done");

  assert.deepEqual(t.sent.map((s) => [s.at - start, s.body.type ?? s.body.status]), [
    [0, "read"],
    [0, "text"],
    [250, "text"],
    [750, "text"],
  ]);
  const done = await record(t, "wamid.THROTTLE1");
  assert.equal(done?.attempts, 1, "the client retried; the worker did not have to");
  assert.equal((await replyRecord(t, "wamid.THROTTLE1"))?.messageId, "wamid.FAKE000001");
});

Deno.test("429 with Retry-After: 2 makes the next try wait exactly 2 s", async () => {
  await using t = await setup();
  t.fake.script(READ_OK, {
    status: 429,
    body: "Too Many Requests",
    headers: { "Retry-After": "2" },
  });
  const start = t.clock.now();
  await post(t, delivery({ [PHONE_ID]: [text("wamid.RETRYAFTER1", "hello")] }));

  await waitFor(() => retriesLogged(t).length === 1, "the retry planned");
  await t.clock.advance(1_999);
  assert.ok(t.clock.pendingSleeps().includes(1), `sleeps: ${t.clock.pendingSleeps()}`);
  assertSent(t, 2);
  await t.clock.advance(1);
  await untilState(t, "wamid.RETRYAFTER1", "done");
  assert.deepEqual(t.sent.map((s) => s.at - start), [0, 0, 2_000]);
});

Deno.test("a throttle that outlasts the client's retries is rescheduled by the worker after Retry-After", async () => {
  await using t = await setup();
  // 120 s is past the client's 60 s budget: it gives up at once and the worker takes over.
  t.fake.script(READ_OK, { error: 130429, retryAfter: "120" });
  const start = t.clock.now();
  await post(t, delivery({ [PHONE_ID]: [text("wamid.LATER1", "hello")] }));

  await untilState(t, "wamid.LATER1", "retrying");
  const retrying = await record(t, "wamid.LATER1");
  assert.equal(retrying?.dueAt, start + 120_000);
  assert.match(retrying?.lastError ?? "", /^echo: Cannot send the echo reply \(throttled\)/);
  assert.equal(await replyRecord(t, "wamid.LATER1"), null);

  await t.clock.advance(119_000);
  await untilWorkerCaughtUp(t);
  // Not due yet, so not claimed by the round at this time: no run has sent anything.
  assert.equal((await record(t, "wamid.LATER1"))?.state, "retrying");
  assert.equal(t.server.app.worker.running(), 0);
  assertSent(t, 2, "nothing sent before Retry-After");
  await advanceUntil(
    t.clock,
    async () => (await record(t, "wamid.LATER1"))?.state === "done",
    "done",
  );
  assert.equal(t.fake.requests.length, 4, "a second mark-as-read, then the reply");
  assert.ok(t.sent[2]!.at - start >= 120_000);
  assert.equal((await replyRecord(t, "wamid.LATER1"))?.messageId, "wamid.FAKE000001");
});

Deno.test("131047 (outside the 24-hour window) is not retried: the event is dead with the category", async () => {
  await using t = await setup();
  t.fake.script(READ_OK, { error: 131047, details: "More than 24 hours have passed" });
  await post(t, delivery({ [PHONE_ID]: [text("wamid.WINDOW1", "hello")] }));
  await untilState(t, "wamid.WINDOW1", "dead");

  const dead = await record(t, "wamid.WINDOW1");
  assert.equal(dead?.attempts, 1);
  assert.match(
    dead?.lastError ?? "",
    /^echo: Cannot send the echo reply \(recipient, not retried\): .*131047.*Re-engagement message/,
  );
  assertSent(t, 2);
  assert.equal(await replyRecord(t, "wamid.WINDOW1"), null);
});

Deno.test("190 (bad token) is not retried: one refused call, an error line, no token in any log", async () => {
  const badToken = "EAAG-expired-secret-token-0123";
  await using t = await setup({ env: { WHATSAPP_TOKEN: badToken } });
  await post(t, delivery({ [PHONE_ID]: [text("wamid.AUTH1", "Very private words")] }));
  await untilState(t, "wamid.AUTH1", "dead");

  const dead = await record(t, "wamid.AUTH1");
  assert.equal(dead?.attempts, 1);
  assert.match(dead?.lastError ?? "", /\(auth, not retried\).*190/);
  assertSent(t, 1, "the mark-as-read was refused; no reply was tried");
  const refused = t.server.logs.lines.filter((l) =>
    l.level === "error" && l.msg === "graph call refused: access token or permission"
  );
  assert.equal(refused.length, 1);
  assert.equal(refused[0]!.code, 190);
  assert.equal(t.server.logs.text().includes(badToken), false, "the token is never logged");
  assert.equal(t.server.logs.text().includes("Very private words"), false);
});

Deno.test("a reply that times out is sent once more by the worker, and its record keeps the unknown send", async () => {
  await using t = await setup({ env: { GRAPH_TIMEOUT_MS: "1000" } });
  t.fake.script(READ_OK, { delayMs: Infinity });
  const start = t.clock.now();
  await post(t, delivery({ [PHONE_ID]: [text("wamid.SLOW1", "hello")] }));

  await t.fake.waitForRequests(2);
  await t.clock.advance(1_000);
  await untilState(t, "wamid.SLOW1", "retrying");
  assert.equal(retriesLogged(t).length, 0, "the client does not send it again by itself");
  assert.deepEqual(await replyRecord(t, "wamid.SLOW1"), {
    outcome: "unknown",
    phoneNumberId: PHONE_ID,
    unknownSends: 1,
  });
  assert.match(
    (await record(t, "wamid.SLOW1"))?.lastError ?? "",
    /^echo: Cannot send the echo reply \(unknown_outcome, sent again 1 more time\(s\) at most\)/,
  );
  await advanceUntil(
    t.clock,
    async () => (await record(t, "wamid.SLOW1"))?.state === "done",
    "done",
  );

  assert.deepEqual(t.sent.map((s) => s.body.type ?? s.body.status), [
    "read",
    "text",
    "read",
    "text",
  ]);
  assert.ok(t.sent[3]!.at - start > 1_000, "sent again by the worker's retry");
  assert.deepEqual(await replyRecord(t, "wamid.SLOW1"), {
    messageId: "wamid.FAKE000001",
    phoneNumberId: PHONE_ID,
    unknownSends: 1,
  });
});

Deno.test("several numbers behind one callback: each reply uses its number's token", async () => {
  const otherToken = "other-number-token";
  await using t = await setup({
    env: { WHATSAPP_TOKEN: "", WHATSAPP_TOKENS: `${OTHER_PHONE_ID}:${otherToken}` },
    fakeTokens: { [OTHER_PHONE_ID]: otherToken },
  });
  await post(
    t,
    delivery({
      [OTHER_PHONE_ID]: [text("wamid.OTHER1", "hello")],
      [PHONE_ID]: [text("wamid.NOTOKEN1", "hello")],
    }),
  );
  await untilState(t, "wamid.OTHER1", "done");
  await untilState(t, "wamid.NOTOKEN1", "dead");

  assertSent(t, 2);
  assert.deepEqual(
    t.fake.requests.map((r) => [r.path, r.headers.authorization]),
    [
      [`/v26.0/${OTHER_PHONE_ID}/messages`, `Bearer ${otherToken}`],
      [`/v26.0/${OTHER_PHONE_ID}/messages`, `Bearer ${otherToken}`],
    ],
    "nothing is sent for a number without a token",
  );
  assert.match(
    (await record(t, "wamid.NOTOKEN1"))?.lastError ?? "",
    new RegExp(`\\(auth, not retried\\): No access token for phone number id "${PHONE_ID}"`),
  );
});

Deno.test("GRAPH_MESSAGES_PER_SECOND paces the calls of one number by the clock", async () => {
  await using t = await setup({ env: { GRAPH_MESSAGES_PER_SECOND: "2" } });
  const start = t.clock.now();
  await post(
    t,
    delivery({
      [PHONE_ID]: [
        text("wamid.PACE1", "one", { from: "5511999990001" }),
        text("wamid.PACE2", "two", { from: "5511999990002" }),
      ],
    }),
  );
  await t.fake.waitForRequests(2);
  // The two replies wait for the pacer's next tokens, 500 ms and 1 s away by the clock.
  await waitFor(
    () => [500, 1_000].every((ms) => t.clock.pendingSleeps().includes(ms)),
    "the replies waiting for tokens",
  );
  assertSent(t, 2, "a burst of 2, then one call every 500 ms");
  await advanceUntil(
    t.clock,
    async () => {
      const records = await Promise.all([record(t, "wamid.PACE1"), record(t, "wamid.PACE2")]);
      return records.every((r) => r?.state === "done");
    },
    "both answered",
    10,
  );
  // Two mark-as-reads and two replies: two calls at once, then the third and fourth tokens.
  assert.deepEqual(t.sent.map((s) => s.at - start).sort((a, b) => a - b), [0, 0, 500, 1_000]);
});

// ---- Sends whose outcome is unknown: a slow or dropping Graph API ----

/** A server standing in for Graph: the late-answering fake, or one that drops connections. */
interface GraphStandIn {
  url: string;
  /** Requests that reached it; `undefined` for an address nothing listens on. */
  requests?: unknown[];
  accepted: string[];
  close(): Promise<void>;
}

interface UnknownOutcomeHarness extends AsyncDisposable {
  graph: GraphStandIn;
  server: TestServer;
  clock: ManualClock;
  /** How many requests the app's Graph API client started. */
  started: () => number;
}

async function setupWith(
  graph: GraphStandIn,
  env: Record<string, string> = {},
): Promise<UnknownOutcomeHarness> {
  const clock = new ManualClock();
  let started = 0;
  const server = await startTestServer({
    clock,
    random: () => 0.5,
    env: {
      ECHO_REPLIES: "true",
      WHATSAPP_TOKEN: FAKE_TOKEN,
      GRAPH_API_BASE_URL: graph.url,
      GRAPH_TIMEOUT_MS: "1000",
      ...env,
    },
    fetch: (input, init) => {
      started += 1;
      return fetch(input, init);
    },
  });
  return {
    graph,
    server,
    clock,
    started: () => started,
    async [Symbol.asyncDispose]() {
      await server[Symbol.asyncDispose]();
      await graph.close();
    },
  };
}

/**
 * Runs the clock forward, one pending sleep at a time, until event `wamid` is done or dead. Before
 * each step every request the client started has reached the stand-in, so that no timeout fires
 * on a request still on its way (it would then never count as accepted).
 */
async function runUntilSettled(t: UnknownOutcomeHarness, wamid: string): Promise<EventRecord> {
  const { requests } = t.graph;
  const haveArrived = (): boolean => requests === undefined || requests.length === t.started();
  for (;;) {
    const current = (await t.server.store.getEvent(`message:${wamid}`))?.record;
    if (current?.state === "done" || current?.state === "dead") return current;
    await waitFor(haveArrived, "requests reach the Graph API");
    // Checked again with no await between it and the step: nothing can start in between.
    if (!haveArrived()) continue;
    await t.clock.advance(t.clock.pendingSleeps()[0] ?? 0);
  }
}

async function postText(t: UnknownOutcomeHarness, wamid: string, body = "hello"): Promise<void> {
  const response = await postDelivery(
    t.server.origin,
    delivery({ [PHONE_ID]: [text(wamid, body)] }),
  );
  assert.equal(response.status, 200);
  await response.body?.cancel();
}

/** `GET /admin/events/{id}` of the message's event. */
async function adminView(
  t: UnknownOutcomeHarness,
  wamid: string,
): Promise<{ lastError?: string; replies?: Record<string, unknown> }> {
  const id = encodeURIComponent(`message:${wamid}`);
  const response = await fetch(`${t.server.origin}/admin/events/${id}`, {
    headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
  });
  assert.equal(response.status, 200);
  return await response.json();
}

const UNKNOWN_AFTER_TWO: ReplyRecord = {
  outcome: "unknown",
  phoneNumberId: PHONE_ID,
  unknownSends: 2,
};

for (
  const [label, env] of [
    ["the defaults", {}],
    ["RETRY_MAX_ATTEMPTS=3", { RETRY_MAX_ATTEMPTS: "3" }],
  ] as const
) {
  Deno.test(`a Graph API that accepts each send but answers after GRAPH_TIMEOUT_MS gets 2 replies, not more (${label})`, async () => {
    const fake = startFakeGraphApi();
    fake.answerLate(Infinity);
    await using t = await setupWith(fake, env);
    await postText(t, "wamid.LATE1");

    const settled = await runUntilSettled(t, "wamid.LATE1");
    assert.equal(fake.accepted.length, 2, "the first send and once more");
    assert.equal(settled.state, "dead");
    assert.equal(settled.attempts, 2);
    assert.match(
      settled.lastError ?? "",
      /^echo: Cannot send the echo reply: 2 send\(s\) ended with an unknown outcome .*not sent again/,
    );
    assert.deepEqual(await replyRecord(t, "wamid.LATE1"), UNKNOWN_AFTER_TWO);
    const view = await adminView(t, "wamid.LATE1");
    assert.deepEqual(view.replies, { echo: UNKNOWN_AFTER_TWO });

    // A replay finds the limit reached: nothing more is sent, and the reason stays.
    const replay = await fetch(
      `${t.server.origin}/admin/events/${encodeURIComponent("message:wamid.LATE1")}/replay`,
      { method: "POST", headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` } },
    );
    assert.equal(replay.status, 202);
    await replay.body?.cancel();
    const replayed = await runUntilSettled(t, "wamid.LATE1");
    assert.equal(replayed.state, "dead");
    assert.equal(fake.accepted.length, 2);
  });

  Deno.test(`a connection lost after each request was written gets 2 replies, not more (${label})`, async () => {
    const dropping = startDroppingGraphApi();
    await using t = await setupWith(dropping, env);
    await postText(t, "wamid.DROP1");

    const settled = await runUntilSettled(t, "wamid.DROP1");
    assert.equal(dropping.accepted.length, 2, "the first send and once more");
    assert.equal(settled.state, "dead");
    assert.deepEqual(await replyRecord(t, "wamid.DROP1"), UNKNOWN_AFTER_TWO);
  });
}

Deno.test("a refused connection sent nothing: the client and the worker keep retrying, the count goes back", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${(closed.addr as Deno.NetAddr).port}`;
  closed.close();
  await using t = await setupWith(
    { url, accepted: [], close: () => Promise.resolve() },
    { RETRY_MAX_ATTEMPTS: "2" },
  );
  await postText(t, "wamid.REFUSED1");

  const settled = await runUntilSettled(t, "wamid.REFUSED1");
  assert.equal(settled.state, "dead");
  assert.equal(settled.attempts, 2);
  // Per run: the read receipt and the reply, each tried 5 times by the client.
  assert.equal(t.started(), 2 * (5 + 5));
  assert.match(settled.lastError ?? "", /^echo: Cannot connect to the Graph API: fetch failed/);
  assert.equal(await replyRecord(t, "wamid.REFUSED1"), null);
});

Deno.test("a run that finds 2 unknown sends (a process died during the last) sends nothing and ends dead", async () => {
  const fake = startFakeGraphApi();
  await using t = await setupWith(fake);
  await putReplyRecord(t, "wamid.DIED1", UNKNOWN_AFTER_TWO);
  await postText(t, "wamid.DIED1");

  const settled = await runUntilSettled(t, "wamid.DIED1");
  assert.equal(settled.state, "dead");
  assert.equal(settled.attempts, 1);
  assert.equal(fake.requests.length, 0, "no read receipt, no reply");
  assert.match(settled.lastError ?? "", /2 send\(s\) ended with an unknown outcome/);
});

Deno.test("a Graph error quoting the message text puts it in no log line and not in lastError", async () => {
  const secret = "my PIN is 4711 and my secret words";
  const fake = startFakeGraphApi();
  fake.script(
    READ_OK,
    { error: 131000, message: `(#131000) Something went wrong with "${secret}"`, details: secret },
    {
      error: 131026,
      message: `(#131026) Cannot deliver "${secret}"`,
      details: `Message "${secret}" is undeliverable`,
    },
  );
  await using t = await setupWith(fake);
  await postText(t, "wamid.LEAK1", secret);

  const settled = await runUntilSettled(t, "wamid.LEAK1");
  assert.equal(settled.state, "dead");
  assert.equal(fake.requests.length, 3, "read, the 131000 retried by the client, the 131026");
  assert.match(
    settled.lastError ?? "",
    /^echo: Cannot send the echo reply \(recipient, not retried\): Graph API answered HTTP 400 with error 131026 \(recipient\): Message undeliverable$/,
  );
  const warned = t.server.logs.lines.filter((l) => l.msg === "graph call will be retried");
  assert.equal(warned.length, 1, "the 131000 was logged at warn");
  assert.equal(warned[0]!.code, 131000);
  assert.equal(t.server.logs.text().includes(secret), false, "the text is in no log line");
  for (const entry of settled.history) assert.equal(entry.error?.includes(secret), false);
  const view = await adminView(t, "wamid.LEAK1");
  assert.equal(view.lastError?.includes(secret), false);
});
