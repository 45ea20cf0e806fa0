import assert from "node:assert/strict";
import type { MessageEvent } from "../src/events/events.ts";
import {
  getEvent,
  listEvents,
  MAX_SCAN_EVENTS,
  replayDeadLetters,
  replayEvent,
} from "../src/store/kv/event_log.ts";
import { InvalidCursorError, type ListEventsOptions } from "../src/store/store.ts";
import {
  deadLetterKey,
  domainRecord,
  eventKey,
  eventPartKey,
  type KvEventRecord as EventRecord,
  READY_PREFIX,
  readyKey,
} from "../src/store/kv/keys.ts";
import { openTempKv } from "./support.ts";
import { expirationMs, recordAll, RETENTION, setRecordState } from "./kv_records.ts";
import { firstFixtureEvent, fixtureEvents, textMessageEvent } from "./fixtures/catalog.ts";

const T0 = Date.UTC(2026, 0, 1);
const HOUR_MS = 3_600_000;

/** A text message event like the fixture's, with its own wamid. */
function messageEvent(n: number, text?: string): MessageEvent {
  return textMessageEvent(`wamid.HBgNTEST${String(n).padStart(4, "0")}AA==`, text);
}

async function readRecord(kv: Deno.Kv, id: string): Promise<EventRecord> {
  const entry = await kv.get<EventRecord>(eventKey(id));
  assert.ok(entry.value, `record of "${id}" exists`);
  return entry.value;
}

async function readyIds(kv: Deno.Kv): Promise<Deno.KvKey[]> {
  const keys: Deno.KvKey[] = [];
  for await (const entry of kv.list({ prefix: READY_PREFIX })) keys.push(entry.key);
  return keys;
}

/** Every page of a listing, following cursors; fails if it never ends. */
async function allPages(
  kv: Deno.Kv,
  options: Omit<ListEventsOptions, "cursor">,
): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let cursor: string | undefined;
  for (let pages = 1; pages <= 100; pages++) {
    const page = await listEvents(kv, cursor === undefined ? options : { ...options, cursor });
    ids.push(...page.events.map((event) => event.id));
    if (page.cursor === undefined) return { ids, pages };
    cursor = page.cursor;
  }
  throw new Error("listing never ended");
}

Deno.test("listEvents() lists newest first, with receivedAt as ISO and lastError when set", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  const message = firstFixtureEvent("message_text", "message");
  const status = firstFixtureEvent("status_delivered", "status");
  const change = firstFixtureEvent("field_account_update", "change");
  await recordAll(kv, [message], T0);
  await recordAll(kv, [status], T0 + 1_000);
  await recordAll(kv, [change], T0 + 2_000);
  await setRecordState(kv, status.id, "dead", { now: T0, attempts: 8, lastError: "echo: boom" });

  const page = await listEvents(kv, { limit: 10 });
  assert.deepEqual(page, {
    events: [
      {
        id: change.id,
        kind: "change",
        state: "pending",
        attempts: 0,
        receivedAt: "2026-01-01T00:00:02.000Z",
      },
      {
        id: status.id,
        kind: "status",
        state: "dead",
        attempts: 8,
        receivedAt: "2026-01-01T00:00:01.000Z",
        lastError: "echo: boom",
      },
      {
        id: message.id,
        kind: "message",
        state: "pending",
        attempts: 0,
        receivedAt: "2026-01-01T00:00:00.000Z",
      },
    ],
  });
});

Deno.test("listEvents() filters by state and by kind, together or alone", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  const events = fixtureEvents("batched_mixed"); // 4 messages, 4 statuses, 1 change
  for (const [i, event] of events.entries()) await recordAll(kv, [event], T0 + i);
  const statuses = events.filter((e) => e.kind === "status");
  await setRecordState(kv, statuses[0]!.id, "done", { now: T0 });
  await setRecordState(kv, statuses[2]!.id, "done", { now: T0 });
  await setRecordState(kv, events[0]!.id, "done", { now: T0 });

  const done = await listEvents(kv, { state: "done", limit: 100 });
  assert.deepEqual(done.events.map((e) => e.id), [statuses[2]!.id, statuses[0]!.id, events[0]!.id]);
  const doneStatuses = await listEvents(kv, { state: "done", kind: "status", limit: 100 });
  assert.deepEqual(doneStatuses.events.map((e) => e.id), [statuses[2]!.id, statuses[0]!.id]);
  const changes = await listEvents(kv, { kind: "change", limit: 100 });
  assert.deepEqual(changes.events.map((e) => e.kind), ["change"]);
  const pendingMessages = await listEvents(kv, { kind: "message", state: "pending", limit: 100 });
  assert.equal(pendingMessages.events.length, 3);
  assert.deepEqual(await listEvents(kv, { kind: "unknown", limit: 100 }), { events: [] });
});

Deno.test("listEvents() pages by cursor through every event once, newest first, ties included", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  // 25 events, recorded 3 at a time with the same receivedAt, so pages split inside a tie.
  const events = Array.from({ length: 25 }, (_, n) => messageEvent(n));
  for (let i = 0; i < events.length; i += 3) {
    await recordAll(kv, events.slice(i, i + 3), T0 + i * 1_000);
  }
  const newestFirst = (await listEvents(kv, { limit: 1000 })).events.map((e) => e.id);
  assert.equal(newestFirst.length, 25);
  assert.equal(new Set(newestFirst).size, 25);

  for (const limit of [1, 4, 7, 10, 24, 25]) {
    const { ids, pages } = await allPages(kv, { limit });
    assert.deepEqual(ids, newestFirst, `limit ${limit}`);
    assert.equal(pages, Math.ceil(25 / limit), `limit ${limit}: no empty last page`);
  }
});

Deno.test("listEvents() with a rare filter gives a cursor exactly when another match follows", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  const events = Array.from({ length: 60 }, (_, n) => messageEvent(n));
  for (const [i, event] of events.entries()) await recordAll(kv, [event], T0 + i);
  // Dead: the 3 oldest and the 2 newest.
  const deadIds = [59, 58, 2, 1, 0].map((n) => events[n]!.id);
  for (const id of deadIds) await setRecordState(kv, id, "dead", { now: T0, lastError: "x: y" });

  const first = await listEvents(kv, { state: "dead", limit: 2 });
  assert.deepEqual(first.events.map((e) => e.id), deadIds.slice(0, 2));
  assert.ok(first.cursor);
  // 55 pending events lie between: the next page walks past them instead of coming back empty.
  const second = await listEvents(kv, { state: "dead", limit: 2, cursor: first.cursor });
  assert.deepEqual(second.events.map((e) => e.id), deadIds.slice(2, 4));
  assert.ok(second.cursor);
  const last = await listEvents(kv, { state: "dead", limit: 2, cursor: second.cursor });
  assert.deepEqual(last.events.map((e) => e.id), deadIds.slice(4));
  assert.equal(last.cursor, undefined, "the last page");
  // Exactly full last page: no cursor either.
  const full = await listEvents(kv, { state: "dead", limit: 3, cursor: first.cursor });
  assert.deepEqual(full.events.map((e) => e.id), deadIds.slice(2));
  assert.equal(full.cursor, undefined);
  // Nothing matches: an empty page, no cursor.
  assert.deepEqual(await listEvents(kv, { state: "retrying", limit: 1 }), { events: [] });

  const { ids, pages } = await allPages(kv, { state: "dead", limit: 2 });
  assert.deepEqual(ids, deadIds);
  assert.equal(pages, 3);
});

Deno.test("listEvents() reads at most MAX_SCAN_EVENTS events per call, then resumes after them", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  // One intake commit per 500 events keeps recording quick; the oldest event is done.
  const count = MAX_SCAN_EVENTS + 20;
  const events = Array.from({ length: count }, (_, n) => messageEvent(n));
  for (let i = 0; i < count; i += 500) await recordAll(kv, events.slice(i, i + 500), T0 + i);
  const oldest = events[0]!.id;
  await setRecordState(kv, oldest, "done", { now: T0 });

  const first = await listEvents(kv, { state: "done", limit: 1 });
  assert.deepEqual(first.events, [], "the budget ran out before the match");
  assert.ok(first.cursor, "more may follow: the one exception to an empty page's no cursor");
  const second = await listEvents(kv, { state: "done", limit: 1, cursor: first.cursor });
  assert.deepEqual(second.events.map((e) => e.id), [oldest]);
  assert.equal(second.cursor, undefined);

  // Dead letters have an index of their own: one far behind the budget is found at once.
  await setRecordState(kv, oldest, "dead", { now: T0, lastError: "x: y" });
  const dead = await listEvents(kv, { state: "dead", limit: 1 });
  assert.deepEqual(dead.events.map((e) => e.id), [oldest]);
  assert.equal(dead.cursor, undefined);
});

Deno.test("listEvents() shows no lastError once a run succeeded, and counts every run", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  const event = messageEvent(1);
  await recordAll(kv, [event], T0);
  // A retry that succeeded: the worker keeps the failed run's error in the record.
  await setRecordState(kv, event.id, "done", {
    now: T0,
    attempts: 2,
    replayedAttempts: 3,
    lastError: "echo: timeout",
  });
  const [summary] = (await listEvents(kv, { limit: 10 })).events;
  assert.equal(summary?.state, "done");
  assert.equal(summary?.attempts, 5);
  assert.equal(summary && "lastError" in summary, false);
});

Deno.test("listEvents() skips timeline entries whose record has expired", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  const events = Array.from({ length: 5 }, (_, n) => messageEvent(n));
  for (const [i, event] of events.entries()) await recordAll(kv, [event], T0 + i);
  await kv.delete(eventKey(events[3]!.id));
  await kv.delete(eventKey(events[1]!.id));

  const page = await listEvents(kv, { limit: 10 });
  assert.deepEqual(page.events.map((e) => e.id), [4, 2, 0].map((n) => events[n]!.id));
  assert.equal(page.cursor, undefined);
});

Deno.test("listEvents() keeps one timeline entry per commit, and reads the older one-id entries", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  const events = Array.from({ length: 8 }, (_, n) => messageEvent(n));
  // Events 0-2 were recorded by an older version: one timeline entry each, the id as a string.
  await recordAll(kv, events.slice(0, 3), T0);
  for await (const entry of kv.list({ prefix: ["timeline"] })) await kv.delete(entry.key);
  for (const [i, event] of events.slice(0, 3).entries()) {
    await kv.set(["timeline", T0 + i, event.id], event.id);
  }
  await recordAll(kv, events.slice(3), T0 + 10);
  const entries = [];
  for await (const entry of kv.list({ prefix: ["timeline"] })) entries.push(entry.value);
  assert.deepEqual(entries.at(-1), events.slice(3).map((e) => e.id), "one entry for 5 events");

  const newestFirst = events.map((e) => e.id).reverse();
  assert.deepEqual((await allPages(kv, { limit: 2 })).ids, newestFirst);
  // A cursor of an older version, `[receivedAt, id]`, continues after that entry.
  const oldCursor = btoa(JSON.stringify([T0 + 2, events[2]!.id]))
    .replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  const rest = await listEvents(kv, { limit: 10, cursor: oldCursor });
  assert.deepEqual(rest.events.map((e) => e.id), [events[1]!.id, events[0]!.id]);
});

Deno.test("listEvents() rejects a cursor it did not produce", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  for (const cursor of ["not a cursor", "e30", btoa("[1]"), "%%%"]) {
    await assert.rejects(listEvents(kv, { limit: 10, cursor }), InvalidCursorError, cursor);
  }
});

Deno.test("getEvent() returns the record and the event; null for an unknown id", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  const status = firstFixtureEvent("status_delivered", "status");
  await recordAll(kv, [status], T0);

  const stored = await getEvent(kv, status.id);
  assert.ok(stored);
  assert.deepEqual(stored.event, status);
  assert.equal(stored.record.state, "pending");
  assert.deepEqual(stored.record.history, []);
  assert.equal(await getEvent(kv, "status:wamid.nothing:sent:1"), null);
});

Deno.test("getEvent() reads back whole an event stored in parts", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  // 150 000 characters of multi-byte text: several 60 KiB parts, split inside characters.
  const large = messageEvent(1, "ação ✓ ".repeat(21_500));
  await recordAll(kv, [large], T0);
  const raw = await readRecord(kv, large.id);
  assert.equal(raw.event, undefined);
  assert.ok((raw.parts ?? 0) >= 3, `stored in ${raw.parts} parts`);
  assert.ok((await kv.get(eventPartKey(large.id, 0))).value);

  const stored = await getEvent(kv, large.id);
  assert.ok(stored);
  assert.deepEqual(stored.event, large);
});

Deno.test("replayEvent() puts a done event back to pending, due now, with every handler to run", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  const event = messageEvent(1);
  await recordAll(kv, [event], T0);
  const history = [{ at: T0 + 10, ms: 5 }];
  const done = await setRecordState(kv, event.id, "done", {
    now: T0 + 20,
    attempts: 1,
    completedHandlers: ["log", "echo"],
    history,
  });
  assert.deepEqual(await readyIds(kv), []);

  const now = T0 + HOUR_MS;
  const result = await replayEvent(kv, event.id, now);
  const expected: EventRecord = {
    ...done,
    state: "pending",
    dueAt: now,
    attempts: 0,
    replayedAttempts: 1,
    completedHandlers: [],
  };
  // The result holds the domain record: the stored one without KV's fields (the inline event).
  assert.deepEqual(result, { status: "replayed", record: domainRecord(expected) });
  assert.deepEqual(await readRecord(kv, event.id), expected);
  assert.deepEqual(await readyIds(kv), [readyKey(now, event.id)]);
  assert.equal((await kv.get(readyKey(now, event.id))).value, event.id);
});

Deno.test("replayEvent() of a dead event removes its dead letter, keeps its error and history, restarts attempts", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  const event = firstFixtureEvent("status_delivered", "status");
  await recordAll(kv, [event], T0);
  const dead = await setRecordState(kv, event.id, "dead", {
    now: T0,
    attempts: 8,
    lastError: "echo: Graph API answered 500",
    history: [{ at: T0, ms: 3, error: "echo: Graph API answered 500" }],
  });
  assert.ok((await kv.get(deadLetterKey(dead.receivedAt, event.id))).versionstamp);

  const now = T0 + 2 * HOUR_MS;
  const result = await replayEvent(kv, event.id, now);
  assert.equal(result.status, "replayed");
  const replayed = await readRecord(kv, event.id);
  assert.deepEqual(replayed, {
    ...dead,
    state: "pending",
    dueAt: now,
    attempts: 0,
    replayedAttempts: 8,
    completedHandlers: [],
  });
  assert.equal(replayed.lastError, "echo: Graph API answered 500");
  assert.equal((await kv.get(deadLetterKey(dead.receivedAt, event.id))).versionstamp, null);
  assert.deepEqual(await readyIds(kv), [readyKey(now, event.id)]);
  // The listing counts the 8 runs; a second replay adds the runs since the first.
  const [listed] = (await listEvents(kv, { limit: 1 })).events;
  assert.equal(listed?.attempts, 8);
  assert.equal(listed?.lastError, "echo: Graph API answered 500", "not done: the error stands");
  await setRecordState(kv, event.id, "dead", { now, attempts: 2, lastError: "echo: again" });
  await replayEvent(kv, event.id, now + 1);
  const again = await readRecord(kv, event.id);
  assert.equal(again.attempts, 0, "a fresh retry schedule");
  assert.equal(again.replayedAttempts, 10);
});

Deno.test("events recorded together share a ready entry; one taken out of it is processing", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  const events = [0, 1, 2].map((n) => messageEvent(n));
  await recordAll(kv, events, T0);
  const [entry, ...others] = await Array.fromAsync(kv.list({ prefix: READY_PREFIX }));
  assert.equal(others.length, 0, "one ready entry for the commit");
  assert.deepEqual(entry!.value, events.map((e) => e.id));
  for (const event of events) assert.equal((await readRecord(kv, event.id)).readyId, entry!.key[2]);

  await setRecordState(kv, events[1]!.id, "processing", { now: T0, dueAt: T0 + 15_000 });
  const states = await Promise.all(events.map((e) => getEvent(kv, e.id)));
  assert.deepEqual(states.map((stored) => stored?.record.state), [
    "pending",
    "processing",
    "pending",
  ]);
});

Deno.test("replayEvent() of an event waiting with others gives it its own entry, theirs stays", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  const events = [0, 1, 2].map((n) => messageEvent(n));
  await recordAll(kv, events, T0);
  const [shared] = await Array.fromAsync(kv.list({ prefix: READY_PREFIX }));
  const now = T0 + 5_000;

  const result = await replayEvent(kv, events[1]!.id, now);

  assert.equal(result.status, "replayed");
  assert.equal((await readRecord(kv, events[1]!.id)).readyId, undefined);
  const entries = await Array.fromAsync(kv.list({ prefix: READY_PREFIX }));
  assert.deepEqual(entries.map((e) => [e.key, e.value]), [
    [shared!.key, [events[0]!.id, events[2]!.id]],
    [readyKey(now, events[1]!.id), events[1]!.id],
  ]);
  const states = await Promise.all(events.map((e) => getEvent(kv, e.id)));
  assert.deepEqual(states.map((stored) => stored?.record.state), ["pending", "pending", "pending"]);
});

Deno.test("replayEvent() moves the ready entry of a retrying event to now", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  const event = messageEvent(1);
  await recordAll(kv, [event], T0);
  const later = T0 + 15 * 60_000;
  await setRecordState(kv, event.id, "retrying", {
    now: T0,
    dueAt: later,
    attempts: 3,
    completedHandlers: ["log"],
  });
  assert.deepEqual(await readyIds(kv), [readyKey(later, event.id)]);

  const now = T0 + 60_000;
  assert.equal((await replayEvent(kv, event.id, now)).status, "replayed");
  assert.deepEqual(await readyIds(kv), [readyKey(now, event.id)]);
  assert.deepEqual((await readRecord(kv, event.id)).completedHandlers, []);
});

Deno.test("replayEvent() keeps the record's expiry", async () => {
  await using temp = await openTempKv();
  const { kv, path } = temp;
  const event = messageEvent(1);
  // Real time here: Deno KV counts `expireIn` from its own clock.
  const recordedAt = Date.now();
  await recordAll(kv, [event], recordedAt);
  const before = expirationMs(path, ["events", event.id]);
  assert.ok(before !== null);
  await setRecordState(kv, event.id, "dead", { now: Date.now(), lastError: "x: y" });

  const result = await replayEvent(kv, event.id, Date.now());
  assert.equal(result.status, "replayed");
  const after = expirationMs(path, ["events", event.id]);
  assert.ok(after !== null, "the record still expires");
  assert.ok(Math.abs(after - before) < 1_000, `expiry moved by ${after - before} ms`);
  const stored = await readRecord(kv, event.id);
  assert.equal(stored.expiresAt, recordedAt + RETENTION.dedupTtlMs);
});

Deno.test("replayEvent() refuses an event a worker is handling, and changes nothing", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  const event = messageEvent(1);
  await recordAll(kv, [event], T0);
  const leaseEnd = T0 + 15_000;
  const processing = await setRecordState(kv, event.id, "processing", { now: T0, dueAt: leaseEnd });

  assert.deepEqual(await replayEvent(kv, event.id, T0 + 1_000), { status: "busy" });
  assert.deepEqual(await readRecord(kv, event.id), processing);
  assert.deepEqual(await readyIds(kv), [readyKey(leaseEnd, event.id)]);
});

Deno.test("replayEvent() answers not_found for an unknown or expired event", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  assert.deepEqual(await replayEvent(kv, "message:wamid.gone", T0), { status: "not_found" });
  assert.deepEqual(await readyIds(kv), []);
});

Deno.test("replayEvent() reads the record again when it changed between read and commit", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  const event = messageEvent(1);
  await recordAll(kv, [event], T0);
  await setRecordState(kv, event.id, "dead", { now: T0, lastError: "first" });
  // A Deno.Kv whose first read is followed by another writer's change to the record.
  let hasRaced = false;
  const racing = new Proxy(kv, {
    get(target, property) {
      if (property === "get") {
        return async (key: Deno.KvKey) => {
          const entry = await target.get<EventRecord>(key);
          if (!hasRaced && entry.value) {
            hasRaced = true;
            await target.set(key, { ...entry.value, lastError: "second" }, { expireIn: HOUR_MS });
          }
          return entry;
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });

  const result = await replayEvent(racing, event.id, T0 + 1);
  assert.ok(hasRaced);
  assert.equal(result.status, "replayed");
  const stored = await readRecord(kv, event.id);
  assert.equal(stored.state, "pending");
  assert.equal(stored.lastError, "second", "the replay was built from the changed record");
});

Deno.test("replayDeadLetters() replays every dead letter and drops those whose record expired", async () => {
  await using temp = await openTempKv();
  const { kv } = temp;
  const events = Array.from({ length: 14 }, (_, n) => messageEvent(n));
  for (const [i, event] of events.entries()) await recordAll(kv, [event], T0 + i);
  const dead = events.slice(0, 12).map((e) => e.id);
  for (const id of dead) await setRecordState(kv, id, "dead", { now: T0, lastError: "x: y" });
  await setRecordState(kv, events[12]!.id, "done", { now: T0 });
  // A dead letter left behind by a record that expired.
  await kv.delete(eventKey(dead[5]!));

  const now = T0 + HOUR_MS;
  assert.equal(await replayDeadLetters(kv, now), 11);
  for await (const entry of kv.list({ prefix: ["dead"] })) assert.fail(`left ${String(entry.key)}`);
  const pending = await listEvents(kv, { state: "pending", limit: 100 });
  assert.equal(pending.events.length, 12); // 11 replayed + the one never handled
  assert.equal((await readRecord(kv, events[12]!.id)).state, "done");
  const ready = (await readyIds(kv)).filter((key) => key[1] === now).map((key) => key[2]);
  assert.deepEqual(new Set(ready), new Set(dead.filter((id) => id !== dead[5])));
  assert.equal(await replayDeadLetters(kv, now), 0);
});
