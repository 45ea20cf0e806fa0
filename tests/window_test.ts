/**
 * The 24-hour customer-service window end to end: signed deliveries to the app on a real loopback
 * server, the worker, the window tracker, the handler context, the fake Graph API and the admin
 * route. Time is a `ManualClock` (2026-01-01T00:00:00Z) shared by the worker and the client.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Dispatcher } from "../src/dispatch/dispatcher.ts";
import { WindowClosedError, type WindowState } from "../src/dispatch/conversation_window.ts";
import { PermanentError } from "../src/dispatch/handler_errors.ts";
import { ManualClock } from "../src/ops/clock.ts";
import type { EventRecord } from "../src/store/event_record.ts";
import { FAKE_TOKEN, type FakeGraphApi, startFakeGraphApi } from "./fake_graph_api.ts";
import {
  postDelivery,
  startTestServer,
  TEST_ADMIN_TOKEN,
  type TestServer,
  waitFor,
} from "./support.ts";

const WABA = "102290000000001";
const PHONE_ID = "106540000000002";
const USER_PHONE = "5511999990000";
const USER_BSUID = "BR.1502576394655843";
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** The manual clock's start, in Unix seconds: a message "sent now". */
const NOW_S = Date.UTC(2026, 0, 1) / 1000;

/** A text message `wamid` from the user (phone and BSUID), sent `ageS` seconds before now. */
function textDelivery(wamid: string, ageS: number, body = "Oi"): string {
  const message = {
    from: USER_PHONE,
    from_user_id: USER_BSUID,
    id: wamid,
    timestamp: String(NOW_S - ageS),
    type: "text",
    text: { body },
  };
  return JSON.stringify({
    object: "whatsapp_business_account",
    entry: [{
      id: WABA,
      changes: [{
        field: "messages",
        value: {
          messaging_product: "whatsapp",
          metadata: { display_phone_number: "15550001111", phone_number_id: PHONE_ID },
          contacts: [{ profile: { name: "Ana" }, wa_id: USER_PHONE, user_id: USER_BSUID }],
          messages: [message],
        },
      }],
    }],
  });
}

interface Harness extends AsyncDisposable {
  fake: FakeGraphApi;
  server: TestServer;
  clock: ManualClock;
}

async function setup(dispatcher = new Dispatcher()): Promise<Harness> {
  const fake = startFakeGraphApi();
  const clock = new ManualClock();
  const server = await startTestServer({
    clock,
    random: () => 0.5,
    dispatcher,
    env: { WHATSAPP_TOKEN: FAKE_TOKEN, GRAPH_API_BASE_URL: fake.url, RETRY_MAX_ATTEMPTS: "3" },
  });
  return {
    fake,
    server,
    clock,
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

async function settled(t: Harness, wamid: string): Promise<EventRecord> {
  let record: EventRecord | undefined;
  await waitFor(async () => {
    record = (await t.server.store.getEvent(`message:${wamid}`))?.record;
    return record?.state === "done" || record?.state === "dead";
  }, `message ${wamid} settled`);
  return record!;
}

function windowOf(t: Harness, user: string) {
  return t.server.store.getWindow({ business: PHONE_ID, user });
}

Deno.test("a user's message opens the window until 24 h after its timestamp, under the BSUID and the phone", async () => {
  await using t = await setup();
  await post(t, textDelivery("wamid.W1", 600)); // sent 10 minutes ago
  await settled(t, "wamid.W1");
  const closesAt = (NOW_S - 600) * 1000 + DAY_MS;
  assert.deepEqual(await windowOf(t, USER_BSUID), { closesAt });
  assert.deepEqual(await windowOf(t, USER_PHONE), { closesAt });
});

Deno.test("a later message extends the window; an older one arriving late never moves it back", async () => {
  await using t = await setup();
  await post(t, textDelivery("wamid.W2", 2 * HOUR_MS / 1000));
  await settled(t, "wamid.W2");
  await post(t, textDelivery("wamid.W3", 60));
  await settled(t, "wamid.W3");
  const extended = (NOW_S - 60) * 1000 + DAY_MS;
  assert.deepEqual(await windowOf(t, USER_BSUID), { closesAt: extended });
  await post(t, textDelivery("wamid.W4", HOUR_MS / 1000)); // older than W3, delivered after it
  await settled(t, "wamid.W4");
  assert.deepEqual(await windowOf(t, USER_BSUID), { closesAt: extended });
  assert.deepEqual(await windowOf(t, USER_PHONE), { closesAt: extended });
});

Deno.test("ctx.reply inside the window sends, and ctx.window says when it closes", async () => {
  const seen: WindowState[] = [];
  const bot = new Dispatcher().onMessage("text", async (ctx) => {
    seen.push(await ctx.window());
    await ctx.reply("hi");
  }, { name: "hi" });
  await using t = await setup(bot);
  await post(t, textDelivery("wamid.IN1", 23 * HOUR_MS / 1000)); // the window has an hour left
  assert.equal((await settled(t, "wamid.IN1")).state, "done");
  assert.equal(t.fake.requests.length, 1);
  assert.deepEqual((t.fake.requests[0]!.body as Record<string, unknown>).text, { body: "hi" });
  assert.deepEqual(seen, [{
    business: PHONE_ID,
    user: USER_BSUID,
    closesAt: (NOW_S - 23 * 3600) * 1000 + DAY_MS,
    isOpen: true,
  }]);
});

Deno.test("ctx.reply outside the window fails at once with WindowClosedError, and nothing reaches the Graph API", async () => {
  const errors: unknown[] = [];
  const bot = new Dispatcher().onMessage("text", async (ctx) => {
    try {
      await ctx.reply("too late");
    } catch (error) {
      errors.push(error);
      throw error;
    }
  }, { name: "late" });
  await using t = await setup(bot);
  await post(t, textDelivery("wamid.OUT1", 25 * HOUR_MS / 1000)); // an hour past the window
  const record = await settled(t, "wamid.OUT1");
  assert.equal(record.state, "dead", "dead-lettered at once: retrying cannot open the window");
  assert.equal(record.attempts, 1);
  assert.equal(errors.length, 1);
  const error = errors[0];
  assert.ok(error instanceof WindowClosedError);
  assert.ok(error instanceof PermanentError);
  assert.equal(error.business, PHONE_ID);
  assert.equal(error.user, USER_BSUID);
  assert.equal(error.closedAt, (NOW_S - 25 * 3600) * 1000 + DAY_MS);
  assert.match(error.message, /template/);
  assert.match(record.lastError ?? "", /customer-service window is closed .*template/);
  assert.deepEqual(t.fake.requests, [], "no request reached the Graph API");
  assert.equal(await t.server.store.getReply({ handler: "late", inboundId: "wamid.OUT1" }), null);
});

Deno.test("free-form sends through ctx.graph are checked, templates and read receipts are not", async () => {
  const outcomes: string[] = [];
  const bot = new Dispatcher().onMessage("text", async (ctx) => {
    const graph = ctx.graph!;
    const to = { phone: USER_PHONE };
    await graph.markAsRead(PHONE_ID, ctx.event.message.id);
    try {
      await graph.sendText(PHONE_ID, { to, text: "free-form" });
      outcomes.push("text sent");
    } catch (error) {
      outcomes.push(error instanceof WindowClosedError ? "text refused" : String(error));
    }
    try {
      await graph.sendMessage(PHONE_ID, {
        to: USER_PHONE,
        type: "image",
        image: { link: "https://example.com/a.png" },
      });
      outcomes.push("image sent");
    } catch (error) {
      outcomes.push(error instanceof WindowClosedError ? "image refused" : String(error));
    }
    await graph.sendMessage(PHONE_ID, {
      to: USER_PHONE,
      type: "template",
      template: { name: "order_update", language: { code: "pt_BR" } },
    });
    outcomes.push("template sent");
  }, { name: "sender" });
  await using t = await setup(bot);
  await post(t, textDelivery("wamid.OUT2", 2 * DAY_MS / 1000));
  assert.equal((await settled(t, "wamid.OUT2")).state, "done");
  assert.deepEqual(outcomes, ["text refused", "image refused", "template sent"]);
  const sent = t.fake.requests.map((request) => (request.body as Record<string, unknown>));
  assert.deepEqual(sent.map((body) => body.type ?? body.status), ["read", "template"]);
});

Deno.test("a window opened by an earlier message lets a later event's handler send free-form", async () => {
  const outcomes: string[] = [];
  const bot = new Dispatcher().onMessage("reaction", async (ctx) => {
    const state = await ctx.window({ user: USER_PHONE });
    outcomes.push(`open=${state.isOpen}`);
    await ctx.graph!.sendText(PHONE_ID, { to: USER_PHONE, text: "thanks" });
    outcomes.push("sent");
  }, { name: "thanks" });
  await using t = await setup(bot);
  await post(t, textDelivery("wamid.OPEN1", 60));
  await settled(t, "wamid.OPEN1");
  // A reaction from a day and a half ago (a late redelivery): the window the text opened counts.
  const reaction = textDelivery("wamid.REACT1", 36 * HOUR_MS / 1000).replace(
    '"type":"text","text":{"body":"Oi"}',
    '"type":"reaction","reaction":{"message_id":"wamid.X","emoji":"\\ud83d\\udc4d"}',
  );
  await post(t, reaction);
  assert.equal((await settled(t, "wamid.REACT1")).state, "done");
  assert.deepEqual(outcomes, ["open=true", "sent"]);
  assert.equal(t.fake.requests.length, 1);
});

Deno.test("GET /admin/conversations/{business}/{user}/window shows the window, by BSUID or phone", async () => {
  await using t = await setup();
  await post(t, textDelivery("wamid.ADM1", 3600));
  await settled(t, "wamid.ADM1");
  const closesAt = new Date((NOW_S - 3600) * 1000 + DAY_MS).toISOString();
  const read = async (user: string) => {
    const response = await fetch(
      `${t.server.origin}/admin/conversations/${PHONE_ID}/${encodeURIComponent(user)}/window`,
      { headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` } },
    );
    assert.equal(response.status, 200);
    return await response.json();
  };
  assert.deepEqual(await read(USER_BSUID), {
    business: PHONE_ID,
    user: USER_BSUID,
    isOpen: true,
    closesAt,
  });
  assert.deepEqual(await read(`+${USER_PHONE}`), {
    business: PHONE_ID,
    user: USER_PHONE,
    isOpen: true,
    closesAt,
  });
  assert.deepEqual(await read("5511000000000"), {
    business: PHONE_ID,
    user: "5511000000000",
    isOpen: false,
  });
  await t.clock.advance(DAY_MS);
  assert.equal((await read(USER_BSUID)).isOpen, false, "closed a day later, still shown");
  const anonymous = await fetch(
    `${t.server.origin}/admin/conversations/${PHONE_ID}/${USER_PHONE}/window`,
  );
  assert.equal(anonymous.status, 401);
  await anonymous.body?.cancel();
});
