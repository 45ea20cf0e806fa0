import assert from "node:assert/strict";
import { createAdminHandlers } from "../src/admin/events.ts";
import { ManualClock } from "../src/ops/clock.ts";
import type { MessageEvent } from "../src/events/events.ts";
import type { EventState } from "../src/store/event_record.ts";
import {
  deadLetterKey,
  eventKey,
  type KvEventRecord as EventRecord,
  READY_PREFIX,
  readyKey,
} from "../src/store/kv/keys.ts";
import {
  advanceUntil,
  captureLogs,
  kvStore,
  openTempKv,
  postDelivery,
  startTestServer,
  TEST_ADMIN_TOKEN,
  waitFor,
} from "./support.ts";
import { textsDelivery } from "./deliveries.ts";
import { Dispatcher } from "../src/dispatch/dispatcher.ts";
import { recordAll, RETENTION, setRecordState } from "./kv_records.ts";
import { fixtureEvents, textMessageEvent } from "./fixtures/catalog.ts";
import { serveService } from "./route_server.ts";

const T0 = Date.UTC(2026, 0, 1);
const HOUR_MS = 3_600_000;
const WRONG_TOKEN = "wrong-admin-token-9876543210";
const AUTH = { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

/**
 * The admin handlers at their paths in the route table, on a real socket over a temp KV, with
 * errors answered as the app does.
 */
interface AdminServer extends AsyncDisposable {
  origin: string;
  kv: Deno.Kv;
  clock: ManualClock;
  logs: ReturnType<typeof captureLogs>;
  /** How many times `onReplay` was called. */
  wakes: () => number;
}

async function startAdminServer(
  adminToken: string | undefined,
): Promise<AdminServer> {
  const temp = await openTempKv();
  const clock = new ManualClock(T0);
  let wakes = 0;
  const server = serveService({
    admin: createAdminHandlers({
      store: kvStore(temp.kv),
      adminToken,
      clock,
      onReplay: () => wakes++,
    }),
  });
  return {
    origin: server.origin,
    kv: temp.kv,
    clock,
    logs: server.logs,
    wakes: () => wakes,
    async [Symbol.asyncDispose]() {
      await server[Symbol.asyncDispose]();
      await temp[Symbol.asyncDispose]();
    },
  };
}

async function call(
  server: AdminServer,
  method: string,
  path: string,
  headers: Record<string, string> = AUTH,
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const response = await fetch(`${server.origin}${path}`, { method, headers });
  const body = await response.json();
  return { status: response.status, headers: response.headers, body };
}

/** A text message event like the fixture's, with its own wamid (base64: may hold `/` and `+`). */
function messageEvent(n: number | string, text?: string): MessageEvent {
  return textMessageEvent(`wamid.HBgN${String(n).padStart(4, "0")}AA==`, text);
}

/** Moves a record to `state` the way the worker does, at test time `T0`. */
function setState(
  kv: Deno.Kv,
  id: string,
  state: EventState,
  fields: Partial<EventRecord> = {},
): Promise<EventRecord> {
  return setRecordState(kv, id, state, { now: T0, ...fields });
}

async function readRecord(kv: Deno.Kv, id: string): Promise<EventRecord> {
  const entry = await kv.get<EventRecord>(eventKey(id));
  assert.ok(entry.value);
  return entry.value;
}

async function readyKeys(kv: Deno.Kv): Promise<Deno.KvKey[]> {
  const keys: Deno.KvKey[] = [];
  for await (const entry of kv.list({ prefix: READY_PREFIX })) keys.push(entry.key);
  return keys;
}

const ROUTES: [string, string][] = [
  ["GET", "/admin/events"],
  ["GET", `/admin/events/${encodeURIComponent("message:wamid.X==")}`],
  ["POST", `/admin/events/${encodeURIComponent("message:wamid.X==")}/replay`],
  ["POST", "/admin/dead-letters/replay"],
];

Deno.test("admin routes answer 404, as if absent, when no admin token is configured", async () => {
  await using server = await startAdminServer(undefined);
  for (const [method, path] of ROUTES) {
    for (const headers of [AUTH, {}]) {
      const response = await call(server, method, path, headers);
      assert.equal(response.status, 404, `${method} ${path}`);
      assert.equal(response.headers.get("WWW-Authenticate"), null);
    }
  }
});

Deno.test("admin routes answer 401 with WWW-Authenticate to a missing or wrong token", async () => {
  await using server = await startAdminServer(TEST_ADMIN_TOKEN);
  const rejected: Record<string, string>[] = [
    {},
    { Authorization: `Bearer ${WRONG_TOKEN}` },
    { Authorization: `Bearer ${TEST_ADMIN_TOKEN}x` },
    { Authorization: `Bearer ${TEST_ADMIN_TOKEN.slice(0, -1)}` },
    { Authorization: `Basic ${btoa(`admin:${TEST_ADMIN_TOKEN}`)}` },
    { Authorization: TEST_ADMIN_TOKEN },
    { Authorization: "Bearer" },
  ];
  for (const [method, path] of ROUTES) {
    for (const headers of rejected) {
      const response = await call(server, method, path, headers);
      assert.equal(response.status, 401, `${method} ${path} with ${JSON.stringify(headers)}`);
      assert.match(response.headers.get("WWW-Authenticate") ?? "", /^Bearer realm=/);
      assert.match(String(response.body.error), /^Cannot authenticate: /);
    }
  }
  const missing = await call(server, "GET", "/admin/events", {});
  assert.equal(missing.body.error, `Cannot authenticate: header "Authorization" is missing`);
  // The scheme is case-insensitive (RFC 7235).
  const lowercase = await call(server, "GET", "/admin/events", {
    Authorization: `bearer ${TEST_ADMIN_TOKEN}`,
  });
  assert.equal(lowercase.status, 200);
});

Deno.test("GET /admin/events lists newest first and filters by state and kind", async () => {
  await using server = await startAdminServer(TEST_ADMIN_TOKEN);
  const { kv } = server;
  const events = fixtureEvents("batched_mixed"); // 4 messages, 4 statuses, 1 change
  for (const [i, event] of events.entries()) await recordAll(kv, [event], T0 + i * 1_000);
  const failed = events.find((e) => e.kind === "status")!;
  await setState(kv, failed.id, "dead", { attempts: 8, lastError: "echo: boom" });

  const all = await call(server, "GET", "/admin/events");
  assert.equal(all.status, 200);
  const listed = all.body.events as Record<string, unknown>[];
  assert.deepEqual(listed.map((e) => e.id), events.map((e) => e.id).reverse());
  assert.equal(all.body.cursor, undefined);
  assert.deepEqual(listed.at(-1), {
    id: events[0]!.id,
    kind: "message",
    state: "pending",
    attempts: 0,
    receivedAt: "2026-01-01T00:00:00.000Z",
  });

  const dead = await call(server, "GET", "/admin/events?state=dead");
  assert.deepEqual(dead.body.events, [{
    id: failed.id,
    kind: "status",
    state: "dead",
    attempts: 8,
    receivedAt: new Date(T0 + events.indexOf(failed) * 1_000).toISOString(),
    lastError: "echo: boom",
  }]);
  const changes = await call(server, "GET", "/admin/events?kind=change");
  assert.deepEqual((changes.body.events as { kind: string }[]).map((e) => e.kind), ["change"]);
  const pendingStatuses = await call(
    server,
    "GET",
    "/admin/events?kind=status&state=pending&limit=10",
  );
  assert.equal((pendingStatuses.body.events as unknown[]).length, 3);
  const empty = await call(server, "GET", "/admin/events?state=&kind=");
  assert.equal(
    (empty.body.events as unknown[]).length,
    events.length,
    "empty parameters are ignored",
  );
});

Deno.test("GET /admin/events pages by cursor with no duplicates or gaps, filtered or not", async () => {
  await using server = await startAdminServer(TEST_ADMIN_TOKEN);
  const { kv } = server;
  const events = Array.from({ length: 23 }, (_, n) => messageEvent(n));
  for (let i = 0; i < events.length; i += 2) await recordAll(kv, events.slice(i, i + 2), T0 + i);
  for (let n = 0; n < events.length; n += 3) await setState(kv, events[n]!.id, "done");
  const newestFirst = (await call(server, "GET", "/admin/events?limit=1000")).body.events as {
    id: string;
    state: string;
  }[];
  assert.equal(newestFirst.length, 23);

  for (
    const query of [
      "limit=5",
      "limit=1",
      "limit=3&state=done",
      "limit=1&state=pending&kind=message",
    ]
  ) {
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const path = `/admin/events?${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const page = await call(server, "GET", path);
      assert.equal(page.status, 200, `${query}: ${JSON.stringify(page.body)}`);
      seen.push(...(page.body.events as { id: string }[]).map((e) => e.id));
      cursor = page.body.cursor as string | undefined;
      pages++;
    } while (cursor !== undefined && pages < 100);
    assert.ok(pages > 1, `${query}: more than one page`);
    const state = new URLSearchParams(query).get("state");
    const expected = newestFirst.filter((e) => state === null || e.state === state).map((e) =>
      e.id
    );
    assert.deepEqual(seen, expected, query);
  }
});

Deno.test("GET /admin/events gives no cursor on the last page, nor on an empty one", async () => {
  await using server = await startAdminServer(TEST_ADMIN_TOKEN);
  const { kv } = server;
  const events = Array.from({ length: 30 }, (_, n) => messageEvent(n));
  for (const [i, event] of events.entries()) await recordAll(kv, [event], T0 + i);
  // The two newest are dead: after them, 28 events that do not match.
  for (const n of [29, 28]) await setState(kv, events[n]!.id, "dead", { lastError: "x: y" });

  const dead = await call(server, "GET", "/admin/events?state=dead&limit=2");
  assert.deepEqual(
    (dead.body.events as { id: string }[]).map((e) => e.id),
    [events[29]!.id, events[28]!.id],
  );
  assert.equal(dead.body.cursor, undefined, "the last page");
  const none = await call(server, "GET", "/admin/events?state=retrying&limit=1");
  assert.deepEqual(none.body, { events: [] }, "an empty page");
  // A full page followed by a match has one, and the page after it is the last.
  const first = await call(server, "GET", "/admin/events?state=dead&limit=1");
  assert.equal(typeof first.body.cursor, "string");
  const second = await call(
    server,
    "GET",
    `/admin/events?state=dead&limit=1&cursor=${first.body.cursor}`,
  );
  assert.deepEqual((second.body.events as { id: string }[]).map((e) => e.id), [events[28]!.id]);
  assert.equal(second.body.cursor, undefined);
});

Deno.test("a dead event replayed and then handled is done, with every run counted and no lastError", async () => {
  const clock = new ManualClock(T0);
  let isBroken = true;
  const dispatcher = new Dispatcher().on("message", () => {
    if (isBroken) throw new Error("boom");
  }, { name: "flaky" });
  await using server = await startTestServer({
    clock,
    dispatcher,
    random: () => 0,
    env: { RETRY_MAX_ATTEMPTS: "2", RETRY_BASE_DELAY_MS: "100" },
  });
  const id = "message:wamid.REPLAYED1";
  const response = await postDelivery(server.origin, textsDelivery(["wamid.REPLAYED1"]));
  await response.body?.cancel();
  const path = `/admin/events/${encodeURIComponent(id)}`;
  const get = async (url: string) =>
    await (await fetch(`${server.origin}${url}`, { headers: AUTH })).json();
  await advanceUntil(clock, async () => (await get(path)).state === "dead", "dead");
  const dead = await get(path);
  assert.equal(dead.attempts, 2);
  assert.equal(dead.lastError, "flaky: boom");

  isBroken = false;
  const replay = await fetch(`${server.origin}${path}/replay`, { method: "POST", headers: AUTH });
  assert.equal(replay.status, 202);
  await replay.body?.cancel();
  await waitFor(async () => (await get(path)).state === "done", "the replayed event done");

  const done = await get(path);
  assert.equal(done.attempts, 3);
  assert.equal("lastError" in done, false, JSON.stringify(done));
  assert.deepEqual(
    done.history.map((attempt: { error?: string }) => attempt.error ?? null),
    ["flaky: boom", "flaky: boom", null],
  );
  const listed = (await get("/admin/events?state=done")).events;
  assert.deepEqual(listed.map((e: { id: string }) => e.id), [id]);
  assert.equal(listed[0].attempts, 3);
  assert.equal("lastError" in listed[0], false);
});

Deno.test("GET /admin/events checks limit (1 to 1000, default 100), state, kind and cursor", async () => {
  await using server = await startAdminServer(TEST_ADMIN_TOKEN);
  const events = Array.from({ length: 101 }, (_, n) => messageEvent(n));
  await recordAll(server.kv, events, T0);

  const byDefault = await call(server, "GET", "/admin/events");
  assert.equal((byDefault.body.events as unknown[]).length, 100);
  assert.equal(typeof byDefault.body.cursor, "string");
  assert.equal(
    ((await call(server, "GET", "/admin/events?limit=1")).body.events as unknown[]).length,
    1,
  );
  const max = await call(server, "GET", "/admin/events?limit=1000");
  assert.equal((max.body.events as unknown[]).length, 101);
  assert.equal(max.body.cursor, undefined);

  for (const limit of ["0", "1001", "-1", "1.5", "abc", "1e3", "99999999999"]) {
    const response = await call(server, "GET", `/admin/events?limit=${encodeURIComponent(limit)}`);
    assert.equal(response.status, 400, `limit=${limit}`);
    assert.equal(
      response.body.error,
      `Cannot list events: "limit" must be an integer from 1 to 1000, got "${limit}"`,
    );
  }
  const state = await call(server, "GET", "/admin/events?state=failed");
  assert.equal(state.status, 400);
  assert.match(
    String(state.body.error),
    /"state" must be one of pending, processing, done, retrying, dead/,
  );
  const kind = await call(server, "GET", "/admin/events?kind=messages");
  assert.equal(kind.status, 400);
  assert.match(
    String(kind.body.error),
    /"kind" must be one of message, status, echo, change, unknown/,
  );
  const cursor = await call(server, "GET", "/admin/events?cursor=forged");
  assert.equal(cursor.status, 400);
  assert.match(String(cursor.body.error), /"cursor"/);
});

Deno.test("GET /admin/events/:id returns the record, its attempts and the typed event", async () => {
  await using server = await startAdminServer(TEST_ADMIN_TOKEN);
  const { kv } = server;
  const message = fixtureEvents("message_text")[0]!;
  const status = fixtureEvents("status_delivered")[0]!;
  const slashed = messageEvent("a+b/c"); // base64 wamids may hold "/" and "+"
  await recordAll(kv, [message, status, slashed], T0);
  await setState(kv, status.id, "retrying", {
    attempts: 1,
    dueAt: T0 + 1_500,
    lastError: "echo: timeout",
    completedHandlers: ["log"],
    history: [{ at: T0 + 100, ms: 42, error: "echo: timeout" }],
  });

  const response = await call(server, "GET", `/admin/events/${encodeURIComponent(status.id)}`);
  assert.equal(response.status, 200);
  assert.deepEqual(response.body, {
    id: status.id,
    kind: "status",
    state: "retrying",
    attempts: 1,
    receivedAt: "2026-01-01T00:00:00.000Z",
    dueAt: "2026-01-01T00:00:01.500Z",
    expiresAt: new Date(T0 + RETENTION.dedupTtlMs).toISOString(),
    completedHandlers: ["log"],
    lastError: "echo: timeout",
    history: [{ at: "2026-01-01T00:00:00.100Z", ms: 42, error: "echo: timeout" }],
    event: status,
    done: false, // its handlers wait for a retry
    jobCounts: { delivered: 0, dead: 0, waiting: 0 },
    jobs: [], // no destination declared
  });
  for (const event of [message, slashed]) {
    const found = await call(server, "GET", `/admin/events/${encodeURIComponent(event.id)}`);
    assert.equal(found.status, 200, event.id);
    assert.deepEqual(found.body.event, event);
  }
  // Ids are decoded once: ":" and "=" may also come unencoded.
  const raw = await call(server, "GET", `/admin/events/${status.id}`);
  assert.equal(raw.body.id, status.id);

  const unknown = await call(
    server,
    "GET",
    `/admin/events/${encodeURIComponent("message:wamid.none")}`,
  );
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.error, `Event "message:wamid.none" is unknown or has expired`);
  const doubleEncoded = await call(
    server,
    "GET",
    `/admin/events/${encodeURIComponent(encodeURIComponent(message.id))}`,
  );
  assert.equal(doubleEncoded.status, 404, "decoded once, not twice");
  const broken = await call(server, "GET", "/admin/events/message%3Awamid.%ZZ");
  assert.equal(broken.status, 400);
});

Deno.test("GET /admin/events/:id shows a dueAt no date can hold as null, not a 500", async () => {
  await using server = await startAdminServer(TEST_ADMIN_TOKEN);
  const parked = messageEvent(8);
  await recordAll(server.kv, [parked], T0);
  // As versions that did not cap delays stored a Retry-After of 400 nines.
  await setState(server.kv, parked.id, "retrying", { attempts: 1, dueAt: Infinity });

  const response = await call(server, "GET", `/admin/events/${encodeURIComponent(parked.id)}`);
  assert.equal(response.status, 200);
  assert.equal(response.body.dueAt, null);
  assert.equal(response.body.state, "retrying");
  assert.equal(response.body.attempts, 1);
});

Deno.test("GET /admin/events/:id reads back an event stored in parts", async () => {
  await using server = await startAdminServer(TEST_ADMIN_TOKEN);
  const large = messageEvent(7, "histórico ".repeat(12_000)); // ~130 KB of JSON
  await recordAll(server.kv, [large], T0);
  assert.ok((await readRecord(server.kv, large.id)).parts! > 1);

  const response = await call(server, "GET", `/admin/events/${encodeURIComponent(large.id)}`);
  assert.equal(response.status, 200);
  assert.deepEqual(response.body.event, large);
  assert.equal("parts" in response.body, false);
});

Deno.test("POST /admin/events/:id/replay puts a done or dead event back to pending and wakes the worker", async () => {
  await using server = await startAdminServer(TEST_ADMIN_TOKEN);
  const { kv, clock } = server;
  const done = fixtureEvents("message_text")[0]!;
  const dead = fixtureEvents("status_delivered")[0]!;
  await recordAll(kv, [done, dead], T0);
  await setState(kv, done.id, "done", { attempts: 1, completedHandlers: ["log", "echo"] });
  await setState(kv, dead.id, "dead", { attempts: 8, lastError: "echo: boom" });
  assert.deepEqual(await readyKeys(kv), []);
  await clock.advance(HOUR_MS);
  const now = clock.now();

  for (const event of [done, dead]) {
    const response = await call(
      server,
      "POST",
      `/admin/events/${encodeURIComponent(event.id)}/replay`,
    );
    assert.equal(response.status, 202);
    assert.deepEqual(response.body, { replayed: event.id });
    const stored = await readRecord(kv, event.id);
    assert.equal(stored.state, "pending");
    assert.equal(stored.dueAt, now);
    assert.deepEqual(stored.completedHandlers, []);
  }
  assert.equal((await readRecord(kv, dead.id)).lastError, "echo: boom");
  const replayedDead = await readRecord(kv, dead.id);
  assert.equal((await kv.get(deadLetterKey(replayedDead.receivedAt, dead.id))).versionstamp, null);
  assert.deepEqual(
    new Set(await readyKeys(kv)),
    new Set([readyKey(now, done.id), readyKey(now, dead.id)].map((key) => key)),
  );
  assert.equal(server.wakes(), 2);
});

Deno.test("POST /admin/events/:id/replay answers 409 while a worker handles the event, 404 when unknown", async () => {
  await using server = await startAdminServer(TEST_ADMIN_TOKEN);
  const { kv } = server;
  const event = messageEvent(1);
  await recordAll(kv, [event], T0);
  const processing = await setState(kv, event.id, "processing", { dueAt: T0 + 15_000 });

  const busy = await call(server, "POST", `/admin/events/${encodeURIComponent(event.id)}/replay`);
  assert.equal(busy.status, 409);
  assert.equal(busy.body.error, `Cannot replay event "${event.id}": a worker is handling it now`);
  assert.deepEqual(await readRecord(kv, event.id), processing);

  const unknown = await call(
    server,
    "POST",
    `/admin/events/${encodeURIComponent("message:wamid.none")}/replay`,
  );
  assert.equal(unknown.status, 404);
  assert.equal(server.wakes(), 0);
});

Deno.test("POST /admin/dead-letters/replay replays every dead letter", async () => {
  await using server = await startAdminServer(TEST_ADMIN_TOKEN);
  const { kv } = server;
  const events = Array.from({ length: 13 }, (_, n) => messageEvent(n));
  await recordAll(kv, events, T0);
  for (const event of events.slice(0, 11)) {
    await setState(kv, event.id, "dead", { lastError: "x: y" });
  }
  await setState(kv, events[11]!.id, "done");

  const response = await call(server, "POST", "/admin/dead-letters/replay");
  assert.equal(response.status, 202);
  assert.deepEqual(response.body, { replayed: 11 });
  const dead = await call(server, "GET", "/admin/events?state=dead");
  assert.deepEqual(dead.body.events, []);
  assert.equal((await readRecord(kv, events[11]!.id)).state, "done");
  assert.equal((await readyKeys(kv)).length, 12); // 11 replayed + 1 never handled
  assert.equal(server.wakes(), 1);

  const again = await call(server, "POST", "/admin/dead-letters/replay");
  assert.deepEqual(again.body, { replayed: 0 });
  assert.equal(server.wakes(), 1, "nothing to wake the worker for");
});

Deno.test("admin routes never log the admin token or a wrong one", async () => {
  await using server = await startAdminServer(TEST_ADMIN_TOKEN);
  const event = messageEvent(1);
  await recordAll(server.kv, [event], T0);
  await setState(server.kv, event.id, "dead", { lastError: "x: y" });
  const replay = `/admin/events/${encodeURIComponent(event.id)}/replay`;
  assert.equal((await call(server, "POST", replay)).status, 202);
  assert.equal((await call(server, "POST", "/admin/dead-letters/replay")).status, 202);
  assert.equal((await call(server, "GET", "/admin/events?limit=0")).status, 400);
  assert.equal(
    (await call(server, "GET", "/admin/events", { Authorization: `Bearer ${WRONG_TOKEN}` })).status,
    401,
  );
  assert.equal(
    (await call(server, "GET", "/admin/events", { Authorization: WRONG_TOKEN })).status,
    401,
  );

  const text = server.logs.text();
  assert.match(text, /event replayed/, "the test saw the logs");
  assert.match(text, /Cannot authenticate/);
  assert.equal(text.includes(TEST_ADMIN_TOKEN), false);
  assert.equal(text.includes(WRONG_TOKEN), false);
});
