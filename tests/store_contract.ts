/**
 * The contract suite every {@linkcode Store} passes unchanged: each promise of `src/store/store.ts`
 * as a test, through the interface alone (no key, row or entry format), on logical time (the `now`
 * values passed in, never the wall clock), with events parsed from real delivery payloads.
 *
 * A store's test file calls {@linkcode storeContract} once with a function that opens a fresh,
 * empty store for one test and closes it after (`tests/kv_store_test.ts` does it for Deno KV).
 *
 * @module
 */
import { messagesDelivery } from "./deliveries.ts";
import assert from "node:assert/strict";
import { parseDelivery, type WebhookEvent } from "../src/events/events.ts";
import {
  type ClaimedEvent,
  type ClaimedJob,
  type ClaimJobsOptions,
  type ClaimOptions,
  type EventPage,
  type EventRecord,
  type EventSummary,
  InvalidCursorError,
  type JobOutcome,
  type JobRecord,
  type ListEventsOptions,
  type MessageStatusRecord,
  type ReplyOf,
  type ReplyRecord,
  type RunOutcome,
  type Store,
  type StoreOptions,
} from "../src/store/store.ts";
import { firstFixtureEvent, fixtureEvents } from "./fixtures/catalog.ts";

/** Opens a fresh, empty store for one test; `close` lets go of it and of what it left behind. */
export type OpenStore = (options: StoreOptions) => Promise<{
  store: Store;
  close(): Promise<void>;
}>;

/** Logical time the tests start at, ms since the epoch: nothing depends on the wall clock. */
const T0 = 1_000_000;
const SECOND_MS = 1_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** The lease the tests' claims take. */
const LEASE_MS = 30 * SECOND_MS;
/** The service's defaults: event ids remembered 8 days, records kept 7. */
const DEFAULT_OPTIONS: StoreOptions = {
  dedupTtlMs: 8 * DAY_MS,
  retentionMs: 7 * DAY_MS,
  leaseMs: LEASE_MS,
};
/** A short retention, for the expiry tests: records live an hour. */
const SHORT_OPTIONS: StoreOptions = {
  dedupTtlMs: HOUR_MS,
  retentionMs: HOUR_MS,
  leaseMs: LEASE_MS,
};
/** Larger than Deno KV's 64 KiB value limit, in UTF-16 and in UTF-8 alike. */
const LARGE_TEXT_CHARS = 200_000;
/** Pages followed at most by {@linkcode _listAll} before it calls the listing endless. */
const MAX_PAGES = 100;

/** How one contract test is set up. */
interface ContractTestOptions {
  /** The store's options, over {@linkcode DEFAULT_OPTIONS}. */
  options?: Partial<StoreOptions>;
  /** Set only with a `// <store> bug: …` comment saying what the store gets wrong. */
  ignore?: boolean;
}

/**
 * Registers the contract's tests, named `${name} store: <promise>`. Each test opens its own store
 * with `open` and closes it when done, passed or failed.
 */
export function storeContract(name: string, open: OpenStore): void {
  const test = (
    promise: string,
    fn: (store: Store) => Promise<void>,
    setup: ContractTestOptions = {},
  ): void => {
    Deno.test({
      name: `${name} store: ${promise}`,
      ignore: setup.ignore ?? false,
      fn: async () => {
        const { store, close } = await open({ ...DEFAULT_OPTIONS, ...setup.options });
        try {
          await fn(store);
        } finally {
          await close();
        }
      },
    });
  };

  // --- Recording ------------------------------------------------------------------------------

  test("recordEvents records new events of every kind and getEvent reads each back whole", async (store) => {
    const events = [
      ...fixtureEvents("batched_mixed"),
      ...fixtureEvents("field_account_update"),
      ...fixtureEvents("foreign_object"),
    ];
    assert.deepEqual(
      new Set(events.map((e) => e.kind)),
      new Set(["message", "status", "change", "unknown"]),
    );
    const outcome = await store.recordEvents(events, { now: T0 });
    assert.deepEqual(_sorted(outcome.recorded), _sorted(_ids(events)));
    assert.deepEqual(outcome.duplicates, []);
    assert.deepEqual(outcome.leased, []);
    for (const event of events) {
      const stored = await store.getEvent(event.id);
      assert.ok(stored, `event "${event.id}" is stored`);
      assert.deepEqual(stored.event, event);
      const { record } = stored;
      assert.equal(record.id, event.id);
      assert.equal(record.kind, event.kind);
      assert.equal(record.state, "pending");
      assert.equal(record.attempts, 0);
      assert.equal(record.receivedAt, T0);
      assert.equal(record.dueAt, T0);
      assert.ok(
        record.expiresAt >= T0 + DEFAULT_OPTIONS.dedupTtlMs,
        "kept as long as the dedup TTL",
      );
      assert.deepEqual(record.completedHandlers, []);
      assert.deepEqual(record.history, []);
      assert.equal(record.lastError, undefined);
    }
  });

  test("getEvent returns null for an id never recorded", async (store) => {
    await store.recordEvents(_textEvents([1]), { now: T0 });
    assert.equal(await store.getEvent(_textEvent(2).id), null);
  });

  test("recordEvents reports an id recorded twice as a duplicate, keeping the first record", async (store) => {
    const [a, b, c] = _textEvents([1, 2, 3]) as [WebhookEvent, WebhookEvent, WebhookEvent];
    const first = await store.recordEvents([a, b], { now: T0 });
    assert.deepEqual(_sorted(first.recorded), _sorted([a.id, b.id]));
    const second = await store.recordEvents([b, c], { now: T0 + SECOND_MS });
    assert.deepEqual(second.recorded, [c.id]);
    assert.deepEqual(second.duplicates, [b.id]);
    assert.equal((await _record(store, b.id)).receivedAt, T0, "the first recording stays");
  });

  test("recordEvents reports an id given twice in one call once as recorded, once as a duplicate", async (store) => {
    const [a, b] = _textEvents([1, 2]) as [WebhookEvent, WebhookEvent];
    const outcome = await store.recordEvents([a, b, a], { now: T0 });
    assert.deepEqual(_sorted(outcome.recorded), _sorted([a.id, b.id]));
    assert.deepEqual(outcome.duplicates, [a.id]);
    const claims = await store.claimDue(_claimAt(T0));
    assert.deepEqual(_sorted(_claimedIds(claims)), _sorted([a.id, b.id]), "each runs once");
  });

  test("concurrent recordEvents calls with overlapping ids record each id exactly once", async (store) => {
    const calls = [
      _textEvents(_range(1, 12)),
      _textEvents(_range(6, 18)),
      _textEvents([..._range(15, 25), 1, 12]),
      _textEvents([3, 3, 20, 26]),
    ];
    const outcomes = await Promise.all(
      calls.map((events) => store.recordEvents(events, { now: T0 })),
    );
    outcomes.forEach((outcome, i) => {
      assert.deepEqual(
        _sorted([...outcome.recorded, ...outcome.duplicates]),
        _sorted(_ids(calls[i]!)),
        `call ${i}: every event recorded or a duplicate`,
      );
    });
    const recorded = outcomes.flatMap((outcome) => outcome.recorded);
    assert.deepEqual(_sorted(recorded), _sorted(_ids(_textEvents(_range(1, 26)))));
    const claims = await store.claimDue(_claimAt(T0, { limit: 100 }));
    assert.equal(claims.length, 26, "each recorded event runs once");
  });

  test("recordEvents records a delivery of more than ten events, each read back whole", async (store) => {
    const events = _textEvents(_range(1, 25));
    assert.equal(events.length, 25);
    const outcome = await store.recordEvents(events, { now: T0 });
    assert.deepEqual(_sorted(outcome.recorded), _sorted(_ids(events)));
    for (const event of events) assert.deepEqual((await store.getEvent(event.id))?.event, event);
    const claims = await store.claimDue(_claimAt(T0, { limit: 100 }));
    assert.deepEqual(_sorted(_claimedIds(claims)), _sorted(_ids(events)));
  });

  test("recordEvents records an event larger than 64 KiB, read back whole by getEvent and claimDue", async (store) => {
    // Non-ASCII text: its UTF-8 bytes outnumber its characters, and a split may fall inside one.
    const text = "Olá, ação 🎉 ".repeat(LARGE_TEXT_CHARS / 12).slice(0, LARGE_TEXT_CHARS);
    const [large] = _textEvents([1], () => text);
    assert.ok(large && JSON.stringify(large).length > LARGE_TEXT_CHARS);
    const outcome = await store.recordEvents([large], { now: T0 });
    assert.deepEqual(outcome.recorded, [large.id]);
    assert.deepEqual((await store.getEvent(large.id))?.event, large);
    const [claim] = await store.claimDue(_claimAt(T0));
    assert.deepEqual(claim?.event, large);
    assert.deepEqual((await store.recordEvents([large], { now: T0 + 1 })).duplicates, [large.id]);
  });

  test("recordEvents records a delivery of twelve 100 KB events, each read back whole", async (store) => {
    const events = _textEvents(_range(1, 12), (n) => `${n} `.padEnd(100_000, "x"));
    const outcome = await store.recordEvents(events, { now: T0 });
    assert.deepEqual(_sorted(outcome.recorded), _sorted(_ids(events)));
    for (const event of events) assert.deepEqual((await store.getEvent(event.id))?.event, event);
  });

  // --- Leased recording -----------------------------------------------------------------------

  test("recordEvents with a lease returns the first lease.count events leased, unclaimable until lease.until; the rest are due now", async (store) => {
    const events = _textEvents([1, 2, 3, 4, 5]);
    const now = T0 + SECOND_MS;
    const until = now + LEASE_MS;
    const outcome = await store.recordEvents(events, { now, lease: { count: 2, until } });
    assert.deepEqual(_sorted(outcome.recorded), _sorted(_ids(events)));
    assert.deepEqual(outcome.duplicates, []);
    assert.deepEqual(_claimedIds(outcome.leased), _ids(events.slice(0, 2)), "the first two");
    for (const [i, leased] of outcome.leased.entries()) {
      assert.deepEqual(leased.event, events[i]);
      assert.equal(leased.record.id, leased.event.id);
      assert.equal(leased.record.attempts, 0);
      assert.equal(leased.lease.until, until);
    }
    const due = await store.claimDue(_claimAt(now, { leaseUntil: until + LEASE_MS }));
    assert.deepEqual(_sorted(_claimedIds(due)), _sorted(_ids(events.slice(2))));
    assert.deepEqual(await store.claimDue(_claimAt(until - 1)), [], "leased until lease.until");
    const expired = await store.claimDue(_claimAt(until + 1));
    assert.deepEqual(
      _sorted(_claimedIds(expired)),
      _sorted(_ids(events.slice(0, 2))),
      "due once the lease ran out (the others' leases end later)",
    );
  });

  test(
    "recordEvents with a lease leases those of the first lease.count events that are new",
    async (store) => {
      const [e0, e1, e2, e3] = _textEvents([0, 1, 2, 3]) as [
        WebhookEvent,
        WebhookEvent,
        WebhookEvent,
        WebhookEvent,
      ];
      await store.recordEvents([e0], { now: T0 });
      const now = T0 + SECOND_MS;
      const until = now + LEASE_MS;
      const outcome = await store.recordEvents([e0, e1, e2, e3], {
        now,
        lease: { count: 2, until },
      });
      assert.deepEqual(outcome.duplicates, [e0.id]);
      assert.deepEqual(_sorted(outcome.recorded), _sorted([e1.id, e2.id, e3.id]));
      // The first two events are leased if new: e0 is a duplicate, so only e1.
      assert.deepEqual(_claimedIds(outcome.leased), [e1.id], "the new ones of the first two");
      const due = await store.claimDue(_claimAt(now));
      assert.deepEqual(_sorted(_claimedIds(due)), _sorted([e0.id, e2.id, e3.id]), "e0 from before");
    },
  );

  test("an event recorded leased is settled under that lease like a claimed one", async (store) => {
    const [event] = _textEvents([1]);
    const until = T0 + LEASE_MS;
    const { leased } = await store.recordEvents([event!], { now: T0, lease: { count: 1, until } });
    assert.equal(leased.length, 1);
    assert.equal(await store.settle(leased[0]!, _done(T0, T0 + 5)), true);
    assert.equal((await _record(store, event!.id)).state, "done");
    assert.deepEqual(await store.claimDue(_claimAt(until + 1)), [], "never runs again");
  });

  // --- Claiming -------------------------------------------------------------------------------

  test("claimDue claims due events oldest due first, each leased until leaseUntil", async (store) => {
    const events = _textEvents([1, 2, 3, 4]);
    for (const [i, event] of events.entries()) {
      await store.recordEvents([event], { now: T0 + i * SECOND_MS });
    }
    const now = T0 + 2 * SECOND_MS;
    const claims = await store.claimDue(_claimAt(now));
    assert.deepEqual(_claimedIds(claims), _ids(events.slice(0, 3)), "the fourth is due later");
    for (const [i, claim] of claims.entries()) {
      assert.deepEqual(claim.event, events[i]);
      assert.equal(claim.record.id, claim.event.id);
      assert.equal(claim.record.attempts, 0);
      assert.equal(claim.lease.until, now + LEASE_MS);
    }
    assert.deepEqual(await store.claimDue(_claimAt(now)), [], "none is claimed twice");
  });

  test("claimDue never gives one event to two concurrent callers", async (store) => {
    const events = _textEvents(_range(1, 20));
    await store.recordEvents(events.slice(0, 10), { now: T0 });
    await store.recordEvents(events.slice(10), { now: T0 });
    const rounds = await Promise.all(
      [1, 2, 3].map(() => store.claimDue(_claimAt(T0, { limit: 20 }))),
    );
    const claimed = rounds.flatMap(_claimedIds);
    assert.equal(new Set(claimed).size, claimed.length, `claimed twice: ${claimed.join(", ")}`);
    const rest = await store.claimDue(_claimAt(T0, { limit: 20 }));
    const all = [...claimed, ..._claimedIds(rest)];
    assert.deepEqual(_sorted(all), _sorted(_ids(events)), "each event claimed exactly once");
  });

  test("claimDue does not claim a leased event before leaseUntil, and claims it again once the lease ran out", async (store) => {
    const [event] = _textEvents([1]);
    await store.recordEvents([event!], { now: T0 });
    const leaseUntil = T0 + LEASE_MS;
    assert.equal((await store.claimDue(_claimAt(T0, { leaseUntil }))).length, 1);
    assert.deepEqual(await store.claimDue(_claimAt(T0)), []);
    assert.deepEqual(await store.claimDue(_claimAt(leaseUntil - 1)), []);
    const again = await store.claimDue(_claimAt(leaseUntil + 1));
    assert.deepEqual(_claimedIds(again), [event!.id]);
    assert.equal(again[0]!.lease.until, leaseUntil + 1 + LEASE_MS);
    assert.deepEqual(again[0]!.event, event);
  });

  test("claimDue leaves alone the events isRunning says the caller runs", async (store) => {
    const [running, other] = _textEvents([1, 2]) as [WebhookEvent, WebhookEvent];
    const until = T0 + LEASE_MS;
    await store.recordEvents([running], { now: T0, lease: { count: 1, until } });
    await store.recordEvents([other], { now: T0 });
    const now = until + 1; // the lease ran out while its run goes on
    const isRunning = (id: string): boolean => id === running.id;
    const claims = await store.claimDue(_claimAt(now, { isRunning }));
    assert.deepEqual(_claimedIds(claims), [other.id]);
    const later = await store.claimDue(_claimAt(now));
    assert.deepEqual(_claimedIds(later), [running.id], "claimable by one that does not run it");
  });

  test("claimDue claims at most limit events", async (store) => {
    const events = _textEvents(_range(1, 5));
    await store.recordEvents(events, { now: T0 });
    const first = await store.claimDue(_claimAt(T0, { limit: 2 }));
    assert.equal(first.length, 2);
    const rest = await store.claimDue(_claimAt(T0, { limit: 10 }));
    assert.deepEqual(_sorted([..._claimedIds(first), ..._claimedIds(rest)]), _sorted(_ids(events)));
  });

  test("claimDue claims no more than room() allows", async (store) => {
    const events = _textEvents(_range(1, 5));
    await store.recordEvents(events, { now: T0 });
    assert.deepEqual(await store.claimDue(_claimAt(T0, { room: () => 0 })), []);
    const first = await store.claimDue(_claimAt(T0, { room: () => 3 }));
    assert.equal(first.length, 3);
    const rest = await store.claimDue(_claimAt(T0));
    assert.deepEqual(_sorted([..._claimedIds(first), ..._claimedIds(rest)]), _sorted(_ids(events)));
  });

  // --- Leases ---------------------------------------------------------------------------------

  test("extendLease moves the lease's end: the event is not claimable until the new end", async (store) => {
    const [event] = _textEvents([1]);
    await store.recordEvents([event!], { now: T0 });
    const [claim] = await store.claimDue(_claimAt(T0));
    const until = T0 + 10 * LEASE_MS;
    assert.equal(await store.extendLease(claim!.lease, until), true);
    assert.equal(claim!.lease.until, until);
    assert.deepEqual(await store.claimDue(_claimAt(T0 + LEASE_MS + 1)), [], "past the old end");
    assert.deepEqual(await store.claimDue(_claimAt(until - 1)), []);
    assert.deepEqual(_claimedIds(await store.claimDue(_claimAt(until + 1))), [event!.id]);
  });

  test("extendLease returns false once another caller claimed the events after the lease ran out", async (store) => {
    const [event] = _textEvents([1]);
    await store.recordEvents([event!], { now: T0 });
    const [lost] = await store.claimDue(_claimAt(T0));
    const now = T0 + LEASE_MS + 1;
    const [taken] = await store.claimDue(_claimAt(now));
    assert.ok(taken, "claimed again once the lease ran out");
    assert.equal(await store.extendLease(lost!.lease, now + 10 * LEASE_MS), false);
    assert.equal(
      await store.extendLease(taken.lease, now + 2 * LEASE_MS),
      true,
      "the new one holds",
    );
    assert.deepEqual(await store.claimDue(_claimAt(now + LEASE_MS + 1)), []);
  });

  // --- Settling -------------------------------------------------------------------------------

  test("settle done: the event is done with one attempt in its history and is not claimed again", async (store) => {
    const [event] = _textEvents([1]);
    await store.recordEvents([event!], { now: T0 });
    const [claim] = await store.claimDue(_claimAt(T0));
    const outcome: RunOutcome = {
      state: "done",
      startedAt: T0 + 10,
      endedAt: T0 + 60,
      completedHandlers: ["log", "echo"],
    };
    assert.equal(await store.settle(claim!, outcome), true);
    const record = await _record(store, event!.id);
    assert.equal(record.state, "done");
    assert.equal(record.attempts, 1);
    assert.deepEqual(record.history, [{ at: T0 + 10, ms: 50 }]);
    assert.deepEqual(record.completedHandlers, ["log", "echo"]);
    assert.equal(record.dueAt, null);
    assert.equal(record.lastError, undefined);
    assert.equal(record.receivedAt, T0);
    assert.deepEqual(await store.claimDue(_claimAt(T0 + 10 * LEASE_MS)), []);
    const page = await store.listEvents({ state: "done", limit: 10 });
    assert.deepEqual(page.events.map((e) => [e.id, e.state, e.attempts]), [[event!.id, "done", 1]]);
  });

  test("settle retrying: the event is claimable again from retryAt, not before, with its completed handlers kept", async (store) => {
    const [event] = _textEvents([1]);
    await store.recordEvents([event!], { now: T0 });
    const [claim] = await store.claimDue(_claimAt(T0));
    const retryAt = T0 + 60 * SECOND_MS;
    const error = 'echo: Graph API answered 503 "Service unavailable"';
    assert.equal(
      await store.settle(claim!, _retrying(T0, retryAt, { error, completedHandlers: ["log"] })),
      true,
    );
    const record = await _record(store, event!.id);
    assert.equal(record.state, "retrying");
    assert.equal(record.attempts, 1);
    assert.equal(record.dueAt, retryAt);
    assert.equal(record.lastError, error);
    assert.deepEqual(record.completedHandlers, ["log"]);
    assert.deepEqual(record.history, [{ at: T0, ms: 5, error }]);
    assert.deepEqual(await store.claimDue(_claimAt(retryAt - 1)), []);
    const [retry] = await store.claimDue(_claimAt(retryAt));
    assert.equal(retry?.record.id, event!.id);
    assert.deepEqual(retry.record.completedHandlers, ["log"], "a retry runs only the others");
    assert.equal(retry.record.attempts, 1);
    assert.deepEqual(retry.event, event);

    assert.equal(await store.settle(retry, _done(retryAt, retryAt + 5, ["log", "echo"])), true);
    const done = await _record(store, event!.id);
    assert.equal(done.state, "done");
    assert.equal(done.attempts, 2);
    assert.deepEqual(done.history, [{ at: T0, ms: 5, error }, { at: retryAt, ms: 5 }]);
    assert.deepEqual(done.completedHandlers, ["log", "echo"]);
  });

  test("settle done after a failed run clears the record's lastError", async (store) => {
    const [event] = _textEvents([1]);
    await store.recordEvents([event!], { now: T0 });
    const [claim] = await store.claimDue(_claimAt(T0));
    const retryAt = T0 + 60 * SECOND_MS;
    await store.settle(claim!, _retrying(T0, retryAt, { error: "echo: timed out" }));
    const [retry] = await store.claimDue(_claimAt(retryAt));
    assert.equal(await store.settle(retry!, _done(retryAt, retryAt + 5)), true);
    const done = await _record(store, event!.id);
    assert.equal(done.state, "done");
    assert.equal(done.lastError, undefined, "a run that succeeds clears the earlier error");
    const [summary] = (await store.listEvents({ limit: 10 })).events;
    assert.equal(summary?.lastError, undefined);
  });

  test("retrying events are claimed in the order their retries are due", async (store) => {
    const events = _textEvents([1, 2, 3]);
    await store.recordEvents(events, { now: T0 });
    const claims = await store.claimDue(_claimAt(T0));
    const retryAt: Record<string, number> = {
      [events[0]!.id]: T0 + 30 * SECOND_MS,
      [events[1]!.id]: T0 + 10 * SECOND_MS,
      [events[2]!.id]: T0 + 20 * SECOND_MS,
    };
    for (const claim of claims) {
      assert.equal(await store.settle(claim, _retrying(T0, retryAt[claim.record.id]!)), true);
    }
    const now = T0 + 40 * SECOND_MS;
    const [first] = await store.claimDue(_claimAt(now, { limit: 1 }));
    assert.equal(first?.record.id, events[1]!.id, "the retry due first");
    const rest = await store.claimDue(_claimAt(now));
    assert.deepEqual(_claimedIds(rest), [events[2]!.id, events[0]!.id]);
  });

  test("settle dead: the event is listed as a dead letter, and replayDeadLetters brings it back", async (store) => {
    const [event, other] = _textEvents([1, 2]) as [WebhookEvent, WebhookEvent];
    await store.recordEvents([event, other], { now: T0 });
    const claims = await store.claimDue(_claimAt(T0));
    const error = "echo: Graph API answered 400 (code 131009): parameter value is not valid";
    for (const claim of claims) {
      const outcome = claim.record.id === event.id
        ? _dead(T0, { error, completedHandlers: ["log"] })
        : _done(T0, T0 + 5);
      assert.equal(await store.settle(claim, outcome), true);
    }
    const record = await _record(store, event.id);
    assert.equal(record.state, "dead");
    assert.equal(record.dueAt, null);
    assert.equal(record.lastError, error);
    assert.equal(record.attempts, 1);
    const dead = await store.listEvents({ state: "dead", limit: 10 });
    assert.deepEqual(dead.events.map((e) => [e.id, e.state, e.lastError]), [[
      event.id,
      "dead",
      error,
    ]]);
    assert.deepEqual(await store.claimDue(_claimAt(T0 + DAY_MS)), [], "a dead letter does not run");

    const now = T0 + HOUR_MS;
    assert.equal(await store.replayDeadLetters(now), 1);
    const replayed = await _record(store, event.id);
    assert.equal(replayed.state, "pending");
    assert.equal(replayed.attempts, 0);
    assert.equal(replayed.dueAt, now);
    assert.deepEqual(replayed.completedHandlers, []);
    assert.deepEqual((await store.listEvents({ state: "dead", limit: 10 })).events, []);
    assert.equal(await store.replayDeadLetters(now), 0, "no dead letter is left");
    assert.deepEqual(_claimedIds(await store.claimDue(_claimAt(now))), [event.id]);
  });

  test("settle after the lease was lost returns false and stores nothing; the new holder's settle wins", async (store) => {
    const [event] = _textEvents([1]);
    await store.recordEvents([event!], { now: T0 });
    const [lost] = await store.claimDue(_claimAt(T0));
    const now = T0 + LEASE_MS + 1;
    const [holder] = await store.claimDue(_claimAt(now));
    assert.ok(holder);

    assert.equal(await store.settle(lost!, _done(T0, now, ["log", "echo"])), false);
    const unchanged = await _record(store, event!.id);
    assert.equal(unchanged.state, "processing", "still leased to the new holder");
    assert.equal(unchanged.attempts, 0);
    assert.deepEqual(unchanged.history, []);
    assert.deepEqual(unchanged.completedHandlers, []);

    const retryAt = now + HOUR_MS;
    assert.equal(
      await store.settle(holder, _retrying(now, retryAt, { error: "echo: timed out" })),
      true,
    );
    const settled = await _record(store, event!.id);
    assert.equal(settled.state, "retrying");
    assert.equal(settled.attempts, 1);
    assert.equal(settled.dueAt, retryAt);
    assert.equal(await store.settle(lost!, _done(T0, now)), false, "still lost later");
    assert.equal((await _record(store, event!.id)).state, "retrying");
  });

  test("settle stores each event of one claim on its own, under their shared lease", async (store) => {
    const events = _textEvents([1, 2, 3]);
    await store.recordEvents(events, { now: T0 });
    const claims = await store.claimDue(_claimAt(T0));
    assert.equal(claims.length, 3);
    const [a, b, c] = claims as [ClaimedEvent, ClaimedEvent, ClaimedEvent];
    assert.equal(await store.settle(a, _done(T0, T0 + 5)), true);
    const until = T0 + 4 * LEASE_MS;
    assert.equal(await store.extendLease(b.lease, until), true, "the rest still hold the lease");
    assert.equal(await store.settle(b, _retrying(T0, T0 + HOUR_MS)), true);
    assert.deepEqual(await store.claimDue(_claimAt(until - 1)), [], "c is still leased");
    assert.equal(await store.settle(c, _dead(T0)), true);
    const states = await Promise.all(
      [a, b, c].map(async (claim) => (await _record(store, claim.record.id)).state),
    );
    assert.deepEqual(states, ["done", "retrying", "dead"]);
  });

  // --- State while leased ---------------------------------------------------------------------

  test("listEvents filters by time of reception, both ends included", async (store) => {
    const [early, middle, late] = _textEvents([1, 2, 3]);
    await store.recordEvents([early!], { now: T0 });
    await store.recordEvents([middle!], { now: T0 + 10 });
    await store.recordEvents([late!], { now: T0 + 20 });
    const only = await store.listEvents({ receivedFrom: T0 + 10, receivedTo: T0 + 10, limit: 10 });
    assert.deepEqual(only.events.map((e) => e.id), [middle!.id]);
    const from = await store.listEvents({ receivedFrom: T0 + 10, limit: 10 });
    assert.deepEqual(from.events.map((e) => e.id), [late!.id, middle!.id]);
    const to = await store.listEvents({ receivedTo: T0 + 10, limit: 10 });
    assert.deepEqual(to.events.map((e) => e.id), [middle!.id, early!.id]);
  });

  test("listEvents filters by field, type, business number and party, each exactly", async (store) => {
    const [text] = _textEvents([1]);
    const change = firstFixtureEvent("field_account_update", "change");
    await store.recordEvents([text!, change], { now: T0 });
    const ids = async (options: Omit<ListEventsOptions, "limit">) =>
      (await store.listEvents({ ...options, limit: 10 })).events.map((e) => e.id);
    assert.equal(text!.kind, "message");
    assert.deepEqual(await ids({ type: "text" }), [text!.id]);
    assert.deepEqual(await ids({ type: "image" }), []);
    assert.deepEqual(await ids({ party: "5511999990000" }), [text!.id]);
    assert.deepEqual(await ids({ party: "551199999" }), []);
    assert.deepEqual(await ids({ field: "account_update" }), [change.id]);
    assert.deepEqual(
      await ids({ businessNumber: text!.kind === "message" ? text!.phoneNumberId : "" }),
      [text!.id],
    );
    assert.deepEqual(await ids({ field: "account_update", type: "text" }), []);
  });

  test("listEvents filters by the state of an event's delivery jobs", async (store) => {
    const [first, second] = _textEvents([1, 2]);
    await store.recordEvents([first!, second!], { now: T0, destinationsFor: () => ["erp"] });
    const [claim] = await store.claimJobs("erp", _claimJobsAt(T0, { limit: 1 }));
    assert.ok(await store.settleJob(claim!, _jobDead(T0, "erp answered 400")));
    const dead = await store.listEvents({ jobState: "dead", limit: 10 });
    assert.deepEqual(dead.events.map((e) => e.id), [claim!.job.eventId]);
    const pending = await store.listEvents({ jobState: "pending", limit: 10 });
    assert.deepEqual(
      pending.events.map((e) => e.id),
      [first!.id, second!.id].filter((id) => id !== claim!.job.eventId),
    );
    assert.deepEqual((await store.listEvents({ jobState: "delivered", limit: 10 })).events, []);
  });

  test("an event shows as processing in getEvent and listEvents while it is leased", async (store) => {
    const [claimed, leased, waiting] = _textEvents([1, 2, 3]) as [
      WebhookEvent,
      WebhookEvent,
      WebhookEvent,
    ];
    await store.recordEvents([claimed], { now: T0 });
    await store.recordEvents([leased], { now: T0 + 1, lease: { count: 1, until: T0 + LEASE_MS } });
    await store.recordEvents([waiting], { now: T0 + 2 });
    const [claim] = await store.claimDue(_claimAt(T0, { limit: 1 }));
    assert.equal(claim?.record.id, claimed.id);

    assert.equal((await _record(store, claimed.id)).state, "processing");
    assert.equal((await _record(store, leased.id)).state, "processing");
    assert.equal((await _record(store, waiting.id)).state, "pending");
    const processing = await store.listEvents({ state: "processing", limit: 10 });
    assert.deepEqual(processing.events.map((e) => e.id), [leased.id, claimed.id]);
    const all = await store.listEvents({ limit: 10 });
    assert.deepEqual(all.events.map((e) => e.state), ["pending", "processing", "processing"]);

    assert.equal(await store.settle(claim, _done(T0, T0 + 5)), true);
    assert.equal((await _record(store, claimed.id)).state, "done");
  });

  // --- Bringing forward -----------------------------------------------------------------------

  test("bringForward makes due at now the events waiting beyond latestDueAt, at most limit", async (store) => {
    const events = _textEvents([1, 2, 3, 4]);
    const [near, ...far] = events as [WebhookEvent, ...WebhookEvent[]];
    await store.recordEvents(events, { now: T0 });
    const farAt = T0 + 365 * DAY_MS;
    const nearAt = T0 + HOUR_MS;
    for (const claim of await store.claimDue(_claimAt(T0))) {
      const at = claim.record.id === near.id ? nearAt : farAt;
      assert.equal(await store.settle(claim, _retrying(T0, at)), true);
    }
    const now = T0 + SECOND_MS;
    assert.deepEqual(await store.claimDue(_claimAt(now)), []);
    const latestDueAt = now + DAY_MS;
    assert.equal(await store.bringForward({ now, latestDueAt, limit: 2 }), 2);
    const first = await store.claimDue(_claimAt(now));
    assert.equal(first.length, 2);
    assert.equal(await store.bringForward({ now, latestDueAt, limit: 10 }), 1);
    const second = await store.claimDue(_claimAt(now));
    assert.deepEqual(_sorted([..._claimedIds(first), ..._claimedIds(second)]), _sorted(_ids(far)));
    for (const claim of [...first, ...second]) {
      assert.equal(await store.settle(claim, _done(now, now + 5)), true);
    }
    assert.equal(await store.bringForward({ now, latestDueAt, limit: 10 }), 0);
    assert.equal((await _record(store, near.id)).dueAt, nearAt, "due before latestDueAt: left");
    assert.deepEqual(_claimedIds(await store.claimDue(_claimAt(nearAt))), [near.id]);
  });

  // --- Replaying ------------------------------------------------------------------------------

  test("replayEvent returns not_found for an id never recorded", async (store) => {
    await store.recordEvents(_textEvents([1]), { now: T0 });
    assert.deepEqual(await store.replayEvent(_textEvent(2).id, T0), { status: "not_found" });
  });

  test("replayEvent returns busy while the event is leased", async (store) => {
    const [claimed, leased] = _textEvents([1, 2]) as [WebhookEvent, WebhookEvent];
    await store.recordEvents([claimed], { now: T0 });
    await store.recordEvents([leased], { now: T0, lease: { count: 1, until: T0 + LEASE_MS } });
    const [claim] = await store.claimDue(_claimAt(T0));
    assert.equal(claim?.record.id, claimed.id);
    assert.deepEqual(await store.replayEvent(claimed.id, T0 + 1), { status: "busy" });
    assert.deepEqual(await store.replayEvent(leased.id, T0 + 1), { status: "busy" });
    assert.equal(await store.settle(claim, _done(T0, T0 + 5)), true, "the lease still holds");
    assert.equal((await _record(store, claimed.id)).attempts, 1);
  });

  test("replayEvent puts an event back to pending with a fresh retry schedule, its runs kept in the summary's attempts", async (store) => {
    const [event] = _textEvents([1]);
    await store.recordEvents([event!], { now: T0 });
    const [claim] = await store.claimDue(_claimAt(T0));
    await store.settle(claim!, _done(T0, T0 + 5, ["log", "echo"]));
    const now = T0 + HOUR_MS;
    const result = await store.replayEvent(event!.id, now);
    assert.equal(result.status, "replayed");
    const expected = {
      state: "pending",
      attempts: 0,
      replayedAttempts: 1,
      dueAt: now,
      completedHandlers: [],
      historyLength: 1,
    };
    const view = (record: EventRecord) => ({
      state: record.state,
      attempts: record.attempts,
      replayedAttempts: record.replayedAttempts,
      dueAt: record.dueAt,
      completedHandlers: record.completedHandlers,
      historyLength: record.history.length,
    });
    assert.deepEqual(view(result.record), expected);
    assert.deepEqual(view(await _record(store, event!.id)), expected);
    assert.deepEqual(_summaryView(await store.listEvents({ limit: 10 })), [[
      event!.id,
      "pending",
      1,
    ]]);

    const [again] = await store.claimDue(_claimAt(now));
    assert.deepEqual(again?.record.completedHandlers, [], "every handler runs again");
    assert.equal(again.record.attempts, 0);
    await store.settle(again, _retrying(now, now + HOUR_MS, { error: "echo: timed out" }));
    const record = await _record(store, event!.id);
    assert.equal(record.attempts, 1, "the retry schedule counts from the replay");
    assert.deepEqual(_summaryView(await store.listEvents({ limit: 10 })), [[
      event!.id,
      "retrying",
      2,
    ]]);
  });

  test("replayEvent of a dead letter removes it from the dead letters", async (store) => {
    const [event] = _textEvents([1]);
    await store.recordEvents([event!], { now: T0 });
    const [claim] = await store.claimDue(_claimAt(T0));
    await store.settle(claim!, _dead(T0, { error: "echo: rejected" }));
    assert.equal((await store.listEvents({ state: "dead", limit: 10 })).events.length, 1);
    const result = await store.replayEvent(event!.id, T0 + 1);
    assert.equal(result.status, "replayed");
    assert.deepEqual((await store.listEvents({ state: "dead", limit: 10 })).events, []);
    assert.equal(await store.replayDeadLetters(T0 + 2), 0);
    assert.deepEqual(_claimedIds(await store.claimDue(_claimAt(T0 + 1))), [event!.id]);
  });

  test("replayEvent of a waiting event makes it due at now", async (store) => {
    const [event] = _textEvents([1]);
    await store.recordEvents([event!], { now: T0 });
    const [claim] = await store.claimDue(_claimAt(T0));
    await store.settle(claim!, _retrying(T0, T0 + DAY_MS));
    const now = T0 + SECOND_MS;
    assert.equal((await store.replayEvent(event!.id, now)).status, "replayed");
    const [replayed] = await store.claimDue(_claimAt(now));
    assert.equal(replayed?.record.id, event!.id);
    assert.equal(await store.settle(replayed, _done(now, now + 5)), true);
    assert.deepEqual(
      await store.claimDue(_claimAt(T0 + DAY_MS + 1)),
      [],
      "not again at the old time",
    );
  });

  // --- Listing --------------------------------------------------------------------------------

  test("listEvents lists events newest first, with their kind, state, attempts and receivedAt", async (store) => {
    const events = fixtureEvents("batched_mixed");
    for (const [i, event] of events.entries()) {
      await store.recordEvents([event], { now: T0 + i * SECOND_MS });
    }
    const page = await store.listEvents({ limit: 100 });
    assert.equal(page.cursor, undefined);
    const expected = events.map((event, i): EventSummary => ({
      id: event.id,
      kind: event.kind,
      state: "pending",
      attempts: 0,
      receivedAt: new Date(T0 + i * SECOND_MS).toISOString(),
    })).reverse();
    assert.deepEqual(page.events, expected);
  });

  test("listEvents filters by state and by kind, newest first", async (store) => {
    const events = fixtureEvents("batched_mixed");
    for (const [i, event] of events.entries()) {
      await store.recordEvents([event], { now: T0 + i * SECOND_MS });
    }
    const now = T0 + HOUR_MS;
    const claims = await store.claimDue(_claimAt(now, { limit: 100 }));
    const byId = new Map(claims.map((claim) => [claim.record.id, claim]));
    const kinds = events.map((e) => e.kind);
    // Messages die, statuses retry, the rest are done.
    const error = "echo: rejected";
    for (const event of events) {
      const outcome = event.kind === "message"
        ? _dead(now, { error })
        : event.kind === "status"
        ? _retrying(now, now + DAY_MS, { error })
        : _done(now, now + 5);
      assert.equal(await store.settle(byId.get(event.id)!, outcome), true);
    }
    const newestFirst = [...events].reverse();
    const idsWhere = (match: (e: WebhookEvent) => boolean) => _ids(newestFirst.filter(match));

    const dead = await store.listEvents({ state: "dead", limit: 100 });
    assert.deepEqual(dead.events.map((e) => e.id), idsWhere((e) => e.kind === "message"));
    assert.ok(
      dead.events.every((e) => e.state === "dead" && e.lastError === error && e.attempts === 1),
    );
    const done = await store.listEvents({ state: "done", limit: 100 });
    assert.deepEqual(done.events.map((e) => e.id), idsWhere((e) => e.kind === "change"));
    assert.ok(done.events.every((e) => e.lastError === undefined));
    const statuses = await store.listEvents({ kind: "status", limit: 100 });
    assert.deepEqual(statuses.events.map((e) => e.id), idsWhere((e) => e.kind === "status"));
    assert.ok(statuses.events.every((e) => e.state === "retrying" && e.lastError === error));
    const none = await store.listEvents({ kind: "message", state: "done", limit: 100 });
    assert.deepEqual(none, { events: [] });
    const both = await store.listEvents({ kind: "status", state: "retrying", limit: 100 });
    assert.equal(both.events.length, kinds.filter((k) => k === "status").length);
    assert.deepEqual((await store.listEvents({ state: "pending", limit: 100 })).events, []);
  });

  test("listEvents returns at most limit events, and cursors continue without repeat or gap to a last page without one", async (store) => {
    const events = _textEvents(_range(1, 7));
    for (const [i, event] of events.entries()) {
      await store.recordEvents([event], { now: T0 + i * SECOND_MS });
    }
    const newestFirst = _ids(events).reverse();
    const first = await store.listEvents({ limit: 3 });
    assert.deepEqual(first.events.map((e) => e.id), newestFirst.slice(0, 3));
    assert.ok(first.cursor, "more follow");
    const { ids, pages } = await _listAll(store, { limit: 3 });
    assert.deepEqual(ids, newestFirst);
    assert.ok(pages.every((page) => page.events.length <= 3));
    assert.equal(pages.at(-1)!.cursor, undefined);
  });

  test("listEvents gives no cursor with the page that ends on the last event", async (store) => {
    const events = _textEvents(_range(1, 6));
    for (const [i, event] of events.entries()) {
      await store.recordEvents([event], { now: T0 + i * SECOND_MS });
    }
    const first = await store.listEvents({ limit: 3 });
    assert.ok(first.cursor);
    const second = await store.listEvents({ limit: 3, cursor: first.cursor });
    assert.deepEqual(second.events.map((e) => e.id), _ids(events.slice(0, 3)).reverse());
    assert.equal(second.cursor, undefined, "no event follows");
    const whole = await store.listEvents({ limit: 6 });
    assert.equal(whole.events.length, 6);
    assert.equal(whole.cursor, undefined);
  });

  test("listEvents cursors continue a filtered listing, also over events recorded together", async (store) => {
    const events = _textEvents(_range(1, 12));
    // Recorded in three deliveries of four: pages cross the events of one call.
    for (let i = 0; i < 3; i++) {
      await store.recordEvents(events.slice(4 * i, 4 * i + 4), { now: T0 + i * SECOND_MS });
    }
    const claims = await store.claimDue(_claimAt(T0 + HOUR_MS, { limit: 100 }));
    const deadIds = new Set(_ids(events).filter((_, i) => i % 3 !== 0));
    for (const claim of claims) {
      const isDead = deadIds.has(claim.record.id);
      await store.settle(
        claim,
        isDead ? _dead(T0 + HOUR_MS) : _done(T0 + HOUR_MS, T0 + HOUR_MS + 1),
      );
    }
    const all = await store.listEvents({ limit: 100 });
    assert.deepEqual(_sorted(all.events.map((e) => e.id)), _sorted(_ids(events)));
    for (const limit of [1, 2, 3, 5]) {
      const { ids } = await _listAll(store, { state: "dead", limit });
      assert.deepEqual(
        ids,
        all.events.map((e) => e.id).filter((id) => deadIds.has(id)),
        `limit ${limit}`,
      );
    }
    for (const limit of [1, 4, 7]) {
      const { ids } = await _listAll(store, { limit });
      assert.deepEqual(ids, all.events.map((e) => e.id), `limit ${limit}`);
    }
  });

  test("listEvents throws InvalidCursorError for a cursor it did not produce", async (store) => {
    await store.recordEvents(_textEvents([1, 2, 3]), { now: T0 });
    for (const cursor of ["not a cursor", "eyJ4IjoxfQ", "AAAA", "{}"]) {
      await assert.rejects(
        () => store.listEvents({ limit: 2, cursor }),
        InvalidCursorError,
        cursor,
      );
    }
  });

  // --- Message statuses -----------------------------------------------------------------------

  test("advanceMessageStatus moves a message forward only: sent, delivered, read; a late sent is ignored", async (store) => {
    const wamid = "wamid.HBgNNTUxMTk5OTk5MDAwMBEGABIYOUT012AA==";
    const at = (status: MessageStatusRecord["status"], updatedAt: number): MessageStatusRecord => ({
      id: wamid,
      status,
      updatedAt,
    });
    assert.equal(await store.advanceMessageStatus(at("sent", T0), DAY_MS), true);
    assert.deepEqual(await store.getMessageStatus(wamid), at("sent", T0));
    assert.equal(await store.advanceMessageStatus(at("delivered", T0 + 1), DAY_MS), true);
    assert.equal(await store.advanceMessageStatus(at("read", T0 + 2), DAY_MS), true);
    assert.equal(await store.advanceMessageStatus(at("sent", T0 + 3), DAY_MS), false);
    assert.equal(await store.advanceMessageStatus(at("delivered", T0 + 4), DAY_MS), false);
    assert.equal(await store.advanceMessageStatus(at("read", T0 + 5), DAY_MS), false, "a repeat");
    assert.deepEqual(await store.getMessageStatus(wamid), at("read", T0 + 2));
    assert.equal(await store.advanceMessageStatus(at("played", T0 + 6), DAY_MS), true);
    assert.deepEqual(await store.getMessageStatus(wamid), at("played", T0 + 6));
  });

  test("advanceMessageStatus: failed replaces any status, keeps its errors, and nothing replaces it", async (store) => {
    const { status } = firstFixtureEvent("status_failed", "status");
    assert.ok(status.errors && status.errors.length > 0);
    const wamid = status.id;
    assert.equal(
      await store.advanceMessageStatus({ id: wamid, status: "read", updatedAt: T0 }, DAY_MS),
      true,
    );
    const failed: MessageStatusRecord = {
      id: wamid,
      status: "failed",
      updatedAt: T0 + 1,
      errors: status.errors,
    };
    assert.equal(await store.advanceMessageStatus(failed, DAY_MS), true);
    for (const late of ["sent", "delivered", "read", "played", "failed"] as const) {
      const next: MessageStatusRecord = { id: wamid, status: late, updatedAt: T0 + 2 };
      assert.equal(await store.advanceMessageStatus(next, DAY_MS), false, late);
    }
    assert.deepEqual(await store.getMessageStatus(wamid), failed);
  });

  test("concurrent advanceMessageStatus calls keep the furthest status", async (store) => {
    const wamids = _range(1, 5).map((n) => `wamid.CONCURRENT${n}`);
    const order = ["sent", "read", "delivered", "played", "sent", "delivered"] as const;
    await Promise.all(
      wamids.flatMap((id) =>
        order.map((status, i) =>
          store.advanceMessageStatus({ id, status, updatedAt: T0 + i }, DAY_MS)
        )
      ),
    );
    for (const id of wamids) {
      assert.deepEqual(await store.getMessageStatus(id), {
        id,
        status: "played",
        updatedAt: T0 + 3,
      });
    }
    const results = await Promise.all(
      ["failed", "read", "failed"].map((status, i) =>
        store.advanceMessageStatus(
          { id: "wamid.RACE", status: status as "failed" | "read", updatedAt: T0 + i },
          DAY_MS,
        )
      ),
    );
    assert.equal(results.filter((changed) => changed).length >= 1, true);
    assert.equal((await store.getMessageStatus("wamid.RACE"))?.status, "failed");
  });

  test("getMessageStatus returns null for a message never seen", async (store) => {
    await store.advanceMessageStatus({ id: "wamid.KNOWN", status: "sent", updatedAt: T0 }, DAY_MS);
    assert.equal(await store.getMessageStatus("wamid.UNKNOWN"), null);
  });

  // --- Conversation windows -------------------------------------------------------------------

  test("openWindow opens a conversation's window and getWindow reads when it closes", async (store) => {
    const of = { business: "106540000000002", user: "5511999990000" };
    assert.equal(await store.getWindow(of), null, "no window before a message");
    assert.equal(await store.openWindow(of, { closesAt: T0 + DAY_MS, now: T0 }), true);
    assert.deepEqual(await store.getWindow(of), { closesAt: T0 + DAY_MS });
  });

  test("openWindow extends a window to a later close and never moves it backwards", async (store) => {
    const of = { business: "106540000000002", user: "BR.1502576394655843" };
    assert.equal(await store.openWindow(of, { closesAt: T0 + DAY_MS, now: T0 }), true);
    assert.equal(await store.openWindow(of, { closesAt: T0 + 2 * DAY_MS, now: T0 }), true);
    assert.equal(
      await store.openWindow(of, { closesAt: T0 + DAY_MS + HOUR_MS, now: T0 + 3 * HOUR_MS }),
      false,
      "an older message arriving late",
    );
    assert.equal(await store.openWindow(of, { closesAt: T0 + 2 * DAY_MS, now: T0 }), false);
    assert.deepEqual(await store.getWindow(of), { closesAt: T0 + 2 * DAY_MS });
  });

  test("openWindow keeps each business number and user apart", async (store) => {
    const a = { business: "106540000000002", user: "5511999990000" };
    await store.openWindow(a, { closesAt: T0 + DAY_MS, now: T0 });
    assert.equal(await store.getWindow({ ...a, business: "106540000000003" }), null);
    assert.equal(await store.getWindow({ ...a, user: "5511999990001" }), null);
    // Parts that would collide if joined into one text.
    assert.equal(
      await store.getWindow({ business: "1065400000000025", user: "511999990000" }),
      null,
    );
  });

  test("openWindow: concurrent openings of one window keep the latest close", async (store) => {
    const of = { business: "106540000000002", user: "5511999990000" };
    const closes = _range(1, 20).map((n) => T0 + DAY_MS + n * SECOND_MS);
    const results = await Promise.all(
      closes.toReversed().map((closesAt) => store.openWindow(of, { closesAt, now: T0 })),
    );
    assert.ok(results.includes(true));
    assert.deepEqual(await store.getWindow(of), { closesAt: T0 + DAY_MS + 20 * SECOND_MS });
  });

  test("openWindow keeps a closed window for a while but not one closed long before now", async (store) => {
    const recent = { business: "106540000000002", user: "5511999990000" };
    assert.equal(await store.openWindow(recent, { closesAt: T0, now: T0 + HOUR_MS }), true);
    assert.deepEqual(await store.getWindow(recent), { closesAt: T0 });
    const old = { business: "106540000000002", user: "5511999990001" };
    assert.equal(await store.openWindow(old, { closesAt: T0, now: T0 + 30 * DAY_MS }), false);
    assert.equal(await store.getWindow(old), null);
  });

  test("openWindow ignores ids no store can key, and getWindow finds nothing for them", async (store) => {
    const long = { business: "106540000000002", user: "x".repeat(257) };
    assert.equal(await store.openWindow(long, { closesAt: T0 + DAY_MS, now: T0 }), false);
    assert.equal(await store.getWindow(long), null);
    const empty = { business: "", user: "5511999990000" };
    assert.equal(await store.openWindow(empty, { closesAt: T0 + DAY_MS, now: T0 }), false);
    assert.equal(await store.getWindow(empty), null);
  });

  // --- Reply records --------------------------------------------------------------------------

  test("swapReply from null wins once for two runs racing for one reply", async (store) => {
    const of: ReplyOf = { handler: "echo", inboundId: "wamid.INBOUND1" };
    assert.equal(await store.getReply(of), null);
    const mine: ReplyRecord = {
      outcome: "unknown",
      phoneNumberId: "106540000000002",
      unknownSends: 1,
    };
    const theirs: ReplyRecord = {
      outcome: "unknown",
      phoneNumberId: "106540000000003",
      unknownSends: 1,
    };
    const results = await Promise.all([
      store.swapReply(of, null, mine, DAY_MS),
      store.swapReply(of, null, theirs, DAY_MS),
    ]);
    assert.equal(results.filter((won) => won).length, 1, `results: ${results}`);
    assert.deepEqual(await store.getReply(of), results[0] ? mine : theirs);
  });

  test("swapReply from one expected record wins once for two runs racing to replace it", async (store) => {
    const of: ReplyOf = { handler: "echo", inboundId: "wamid.INBOUND1" };
    const unknown: ReplyRecord = {
      outcome: "unknown",
      phoneNumberId: "106540000000002",
      unknownSends: 1,
    };
    assert.equal(await store.swapReply(of, null, unknown, DAY_MS), true);
    const next = (unknownSends: number): ReplyRecord => ({ ...unknown, unknownSends });
    const results = await Promise.all([
      store.swapReply(of, unknown, next(2), DAY_MS),
      store.swapReply(of, { ...unknown }, next(3), DAY_MS),
      store.swapReply(of, unknown, null, DAY_MS),
    ]);
    assert.equal(results.filter((won) => won).length, 1, `results: ${results}`);
    const winner = [next(2), next(3), null][results.indexOf(true)];
    assert.deepEqual(await store.getReply(of), winner);
  });

  test("swapReply replaces a record only while it is still the expected one", async (store) => {
    const of: ReplyOf = { handler: "echo", inboundId: "wamid.INBOUND1" };
    const unknown: ReplyRecord = {
      outcome: "unknown",
      phoneNumberId: "106540000000002",
      unknownSends: 1,
    };
    const sent: ReplyRecord = {
      outcome: "sent",
      messageId: "wamid.REPLY1",
      phoneNumberId: "106540000000002",
      unknownSends: 1,
    };
    assert.equal(await store.swapReply(of, null, unknown, DAY_MS), true);
    assert.equal(await store.swapReply(of, null, sent, DAY_MS), false, "not absent any more");
    const stale: ReplyRecord = { ...unknown, unknownSends: 2 };
    assert.equal(await store.swapReply(of, stale, sent, DAY_MS), false, "stale expected");
    assert.deepEqual(await store.getReply(of), unknown);
    const sameValue: ReplyRecord = {
      outcome: "unknown",
      phoneNumberId: "106540000000002",
      unknownSends: 1,
    };
    assert.equal(await store.swapReply(of, sameValue, sent, DAY_MS), true, "compared by value");
    assert.deepEqual(await store.getReply(of), sent);
    assert.equal(await store.swapReply(of, unknown, sent, DAY_MS), false, "the old value is stale");
  });

  test("swapReply compares the expected record by value, whatever the order of its fields", async (store) => {
    const of: ReplyOf = { handler: "echo", inboundId: "wamid.INBOUND1" };
    const stored: ReplyRecord = {
      outcome: "sent",
      messageId: "wamid.REPLY1",
      phoneNumberId: "106540000000002",
    };
    assert.equal(await store.swapReply(of, null, stored, DAY_MS), true);
    const reordered: ReplyRecord = {
      phoneNumberId: "106540000000002",
      messageId: "wamid.REPLY1",
      outcome: "sent",
    };
    assert.equal(await store.swapReply(of, reordered, null, DAY_MS), true);
    assert.equal(await store.getReply(of), null);
  });

  test("swapReply to null removes the record, and a swap from null succeeds again", async (store) => {
    const of: ReplyOf = { handler: "echo", inboundId: "wamid.INBOUND1" };
    const sent: ReplyRecord = {
      outcome: "sent",
      messageId: "wamid.REPLY1",
      phoneNumberId: "106540000000002",
    };
    assert.equal(await store.swapReply(of, null, sent, DAY_MS), true);
    assert.equal(await store.swapReply(of, sent, null, DAY_MS), true);
    assert.equal(await store.getReply(of), null);
    assert.equal(await store.swapReply(of, sent, null, DAY_MS), false, "already removed");
    const again: ReplyRecord = {
      outcome: "unknown",
      phoneNumberId: "106540000000002",
      unknownSends: 1,
    };
    assert.equal(await store.swapReply(of, null, again, DAY_MS), true);
    assert.deepEqual(await store.getReply(of), again);
  });

  test("reply records are kept per handler and per inbound message", async (store) => {
    const sent = (messageId: string): ReplyRecord => ({
      outcome: "sent",
      messageId,
      phoneNumberId: "106540000000002",
    });
    const keys: ReplyOf[] = [
      { handler: "echo", inboundId: "wamid.INBOUND1" },
      { handler: "echo", inboundId: "wamid.INBOUND2" },
      { handler: "welcome", inboundId: "wamid.INBOUND1" },
    ];
    for (const [i, of] of keys.entries()) {
      assert.equal(await store.swapReply(of, null, sent(`wamid.REPLY${i}`), DAY_MS), true);
    }
    for (const [i, of] of keys.entries()) {
      assert.deepEqual(await store.getReply(of), sent(`wamid.REPLY${i}`));
    }
    assert.equal(await store.getReply({ handler: "welcome", inboundId: "wamid.INBOUND2" }), null);
  });

  // --- Operations -----------------------------------------------------------------------------

  test("queueFigures counts events due and due later, the oldest due one's age and the next due time", async (store) => {
    assert.deepEqual(await store.queueFigures(T0, 1_000), { due: 0, later: 0, oldestDueAgeMs: 0 });
    const [a, b, leased, retried] = _textEvents([1, 2, 3, 4]) as [
      WebhookEvent,
      WebhookEvent,
      WebhookEvent,
      WebhookEvent,
    ];
    await store.recordEvents([retried], { now: T0 });
    const [claim] = await store.claimDue(_claimAt(T0));
    const retryAt = T0 + 20 * SECOND_MS;
    await store.settle(claim!, _retrying(T0, retryAt));
    await store.recordEvents([a], { now: T0 + SECOND_MS });
    await store.recordEvents([b], { now: T0 + 3 * SECOND_MS });
    const leaseUntil = T0 + 50 * SECOND_MS;
    await store.recordEvents([leased], {
      now: T0 + 3 * SECOND_MS,
      lease: { count: 1, until: leaseUntil },
    });

    const now = T0 + 5 * SECOND_MS;
    const figures = await store.queueFigures(now, 1_000);
    assert.equal(figures.due, 2);
    assert.equal(figures.later, 2);
    assert.equal(figures.oldestDueAgeMs, 4 * SECOND_MS);

    await store.claimDue(_claimAt(now, { leaseUntil: now + 60 * SECOND_MS }));
    assert.deepEqual(await store.queueFigures(now, 1_000), {
      due: 0,
      later: 4,
      oldestDueAgeMs: 0,
      nextDueAt: retryAt,
    });
  });

  test("probe resolves on a working store, which has a name", async (store) => {
    await store.probe(T0);
    await store.probe(T0 + 1);
    assert.equal(typeof store.name, "string");
    assert.ok(store.name.length > 0);
  });

  // --- Expiry ---------------------------------------------------------------------------------

  test(
    "purgeExpired removes events whose records expired: gone from getEvent and listEvents",
    async (store) => {
      const events = _textEvents([1, 2]);
      await store.recordEvents(events, { now: T0 });
      for (const claim of await store.claimDue(_claimAt(T0))) {
        assert.equal(await store.settle(claim, _done(T0, T0 + 5)), true);
      }
      const later = T0 + 2 * HOUR_MS;
      const [young] = _textEvents([3]);
      await store.recordEvents([young!], { now: later });
      const expired = later + HOUR_MS - 1; // past the old ones' hour, within the young one's
      assert.equal(await store.purgeExpired(expired, 100), 2);
      for (const event of events) assert.equal(await store.getEvent(event.id), null);
      assert.deepEqual((await store.listEvents({ limit: 10 })).events.map((e) => e.id), [
        young!.id,
      ]);
      assert.deepEqual((await store.getEvent(young!.id))?.event, young);
      assert.equal(await store.purgeExpired(expired, 100), 0);
      assert.deepEqual(await store.replayEvent(events[0]!.id, expired), { status: "not_found" });
    },
    { options: SHORT_OPTIONS },
  );

  test("purgeExpired removes at most limit events per call", async (store) => {
    const events = _textEvents([1, 2, 3]);
    for (const [i, event] of events.entries()) await store.recordEvents([event], { now: T0 + i });
    for (const claim of await store.claimDue(_claimAt(T0 + 10))) {
      await store.settle(claim, _done(T0 + 10, T0 + 15));
    }
    const now = T0 + 3 * HOUR_MS;
    assert.equal(await store.purgeExpired(now, 2), 2);
    assert.equal((await store.listEvents({ limit: 10 })).events.length, 1);
    assert.equal(await store.purgeExpired(now, 2), 1);
    assert.deepEqual((await store.listEvents({ limit: 10 })).events, []);
  }, { options: SHORT_OPTIONS });

  test(
    "a re-delivery of an event purged after expiry is recorded anew, not as a duplicate",
    async (store) => {
      const [event] = _textEvents([1]);
      await store.recordEvents([event!], { now: T0 });
      const [claim] = await store.claimDue(_claimAt(T0));
      await store.settle(claim!, _done(T0, T0 + 5));
      const now = T0 + 3 * HOUR_MS;
      assert.equal(await store.purgeExpired(now, 100), 1);
      const outcome = await store.recordEvents([event!], { now });
      assert.deepEqual(outcome, { recorded: [event!.id], duplicates: [], leased: [] });
      const record = await _record(store, event!.id);
      assert.equal(record.state, "pending");
      assert.equal(record.attempts, 0);
      assert.equal(record.receivedAt, now);
      assert.deepEqual(record.history, []);
      assert.deepEqual(_claimedIds(await store.claimDue(_claimAt(now))), [event!.id]);
    },
    { options: SHORT_OPTIONS },
  );

  test(
    "purgeExpired removes an expired event's delivery jobs too: none listed, counted or claimed",
    async (store) => {
      const [event] = _textEvents([1]);
      await store.recordEvents([event!], { now: T0, destinationsFor: () => ["crm", "erp"] });
      const [retrying] = await store.claimJobs("erp", { now: T0, limit: 1, leaseUntil: T0 + 10 });
      assert.equal(
        await store.settleJob(retrying!, _jobRetrying(T0, T0 + 30 * 60_000)),
        true,
        "one job waits for a retry, the other is still pending",
      );
      const expired = T0 + 3 * HOUR_MS;
      assert.equal(await store.purgeExpired(expired, 100), 1);
      assert.deepEqual(await store.getJobs(event!.id), []);
      for (const destination of ["crm", "erp"]) {
        const figures = await store.jobFigures(destination, { now: expired, limit: 100 });
        assert.equal(figures.due + figures.later, 0, `${destination}: nothing left waiting`);
        assert.deepEqual((await store.listJobs(destination, { limit: 10 })).jobs, []);
        const claims = await store.claimJobs(destination, {
          now: expired,
          limit: 10,
          leaseUntil: expired + 10,
        });
        assert.deepEqual(claims, []);
      }
    },
    { options: SHORT_OPTIONS },
  );

  // --- Delivery jobs --------------------------------------------------------------------------

  test("recordEvents with destinationsFor writes one pending job per destination, due at now", async (store) => {
    const events = _textEvents([1, 2, 3]);
    const destinationsFor = (event: WebhookEvent): string[] =>
      event.id === events[1]!.id ? ["crm"] : ["crm", "warehouse"];
    const outcome = await store.recordEvents(events, { now: T0, destinationsFor });
    assert.deepEqual(_sorted(outcome.recorded), _sorted(_ids(events)));
    for (const event of events) {
      const jobs = await store.getJobs(event.id);
      assert.deepEqual(jobs.map((job) => job.destination), destinationsFor(event));
      const expiresAt = (await _record(store, event.id)).expiresAt;
      for (const job of jobs) {
        assert.deepEqual(job, {
          eventId: event.id,
          destination: job.destination,
          state: "pending",
          attempts: 0,
          dueAt: T0,
          createdAt: T0,
          expiresAt,
          history: [],
        });
      }
    }
  });

  test("recordEvents writes no jobs for a duplicate, even when destinationsFor names others", async (store) => {
    const [a, b] = _textEvents([1, 2]) as [WebhookEvent, WebhookEvent];
    await store.recordEvents([a], { now: T0, destinationsFor: () => ["crm"] });
    const outcome = await store.recordEvents([a, b], {
      now: T0 + SECOND_MS,
      destinationsFor: () => ["crm", "warehouse"],
    });
    assert.deepEqual(outcome.duplicates, [a.id]);
    assert.deepEqual(_jobsView(await store.getJobs(a.id)), [["crm", "pending", T0]]);
    assert.deepEqual(_jobsView(await store.getJobs(b.id)), [
      ["crm", "pending", T0 + SECOND_MS],
      ["warehouse", "pending", T0 + SECOND_MS],
    ]);
  });

  test("recordEvents without destinationsFor, or with none for an event, writes no jobs", async (store) => {
    const [a, b, c] = _textEvents([1, 2, 3]) as [WebhookEvent, WebhookEvent, WebhookEvent];
    await store.recordEvents([a], { now: T0 });
    await store.recordEvents([b, c], {
      now: T0,
      destinationsFor: (event) => event.id === b.id ? [] : ["crm"],
    });
    assert.deepEqual(await store.getJobs(a.id), []);
    assert.deepEqual(await store.getJobs(b.id), []);
    assert.deepEqual(_jobsView(await store.getJobs(c.id)), [["crm", "pending", T0]]);
    assert.deepEqual(await store.getJobs(_textEvent(9).id), [], "an unknown event has none");
  });

  test("recordEvents writes a destination named twice for an event as one job", async (store) => {
    const [event] = _textEvents([1]);
    await store.recordEvents([event!], { now: T0, destinationsFor: () => ["crm", "crm"] });
    assert.deepEqual(_jobsView(await store.getJobs(event!.id)), [["crm", "pending", T0]]);
  });

  test("recordEvents records twelve events of 60 destinations each, every job written", async (store) => {
    // 12 events with 60 jobs each are more writes than one commit may hold.
    const destinations = _range(1, 60).map((n) => `destination-${n}`);
    const events = _textEvents(_range(1, 12));
    const outcome = await store.recordEvents(events, {
      now: T0,
      destinationsFor: () => destinations,
    });
    assert.deepEqual(_sorted(outcome.recorded), _sorted(_ids(events)));
    for (const event of events) {
      const jobs = await store.getJobs(event.id);
      assert.deepEqual(jobs.map((job) => job.destination), destinations);
    }
  });

  test("concurrent recordEvents calls with destinations write each new event's jobs once", async (store) => {
    const calls = [
      _textEvents(_range(1, 12)),
      _textEvents(_range(6, 18)),
      _textEvents([3, 18, 19]),
    ];
    const destinationsFor = (): string[] => ["crm", "warehouse"];
    const outcomes = await Promise.all(
      calls.map((events) => store.recordEvents(events, { now: T0, destinationsFor })),
    );
    const recorded = outcomes.flatMap((outcome) => outcome.recorded);
    assert.deepEqual(_sorted(recorded), _sorted(_ids(_textEvents(_range(1, 19)))));
    for (const id of recorded) {
      assert.deepEqual(_jobsView(await store.getJobs(id)), [
        ["crm", "pending", T0],
        ["warehouse", "pending", T0],
      ]);
    }
    for (const destination of ["crm", "warehouse"]) {
      const claims = await store.claimJobs(destination, _claimJobsAt(T0));
      assert.deepEqual(_sorted(_jobIds(claims)), _sorted(recorded), `each ${destination} job once`);
    }
  });

  test("claimJobs claims a destination's due jobs oldest due first, delivering until leaseUntil, each with its event", async (store) => {
    const events = _textEvents([1, 2, 3, 4]);
    for (const [i, event] of events.entries()) {
      await store.recordEvents([event], {
        now: T0 + i * SECOND_MS,
        destinationsFor: () => ["crm", "warehouse"],
      });
    }
    const now = T0 + 2 * SECOND_MS;
    const claims = await store.claimJobs("crm", _claimJobsAt(now));
    assert.deepEqual(_jobIds(claims), _ids(events.slice(0, 3)), "the fourth is due later");
    for (const [i, claim] of claims.entries()) {
      assert.deepEqual(claim.event, events[i]);
      assert.equal(claim.job.destination, "crm");
      assert.equal(claim.job.state, "delivering");
      assert.equal(claim.job.attempts, 0);
      assert.equal(claim.lease.until, now + LEASE_MS);
    }
    assert.deepEqual(await store.claimJobs("crm", _claimJobsAt(now)), [], "none claimed twice");
    assert.deepEqual(
      _jobsView(await store.getJobs(events[0]!.id)),
      [["crm", "delivering", now + LEASE_MS], ["warehouse", "pending", T0]],
      "the other destination's job waits on its own",
    );
    const other = await store.claimJobs("warehouse", _claimJobsAt(now, { limit: 2 }));
    assert.deepEqual(_jobIds(other), _ids(events.slice(0, 2)), "at most limit");
    assert.deepEqual(await store.claimJobs("nowhere", _claimJobsAt(now)), []);
  });

  test("claimJobs never gives one job to two concurrent callers", async (store) => {
    const events = _textEvents(_range(1, 25));
    await store.recordEvents(events, { now: T0, destinationsFor: () => ["crm"] });
    const rounds = await Promise.all(
      [1, 2, 3].map(() => store.claimJobs("crm", _claimJobsAt(T0, { limit: 25 }))),
    );
    const claimed = rounds.flatMap(_jobIds);
    assert.equal(new Set(claimed).size, claimed.length, `claimed twice: ${claimed.join(", ")}`);
    const rest = await store.claimJobs("crm", _claimJobsAt(T0, { limit: 25 }));
    const all = [...claimed, ..._jobIds(rest)];
    assert.deepEqual(_sorted(all), _sorted(_ids(events)), "each job claimed exactly once");
  });

  test("claimJobs does not claim a leased job before leaseUntil, and claims it again once the lease ran out", async (store) => {
    const [event] = _textEvents([1]);
    await store.recordEvents([event!], { now: T0, destinationsFor: () => ["crm"] });
    const leaseUntil = T0 + LEASE_MS;
    assert.equal((await store.claimJobs("crm", _claimJobsAt(T0, { leaseUntil }))).length, 1);
    assert.deepEqual(await store.claimJobs("crm", _claimJobsAt(leaseUntil - 1)), []);
    const again = await store.claimJobs("crm", _claimJobsAt(leaseUntil + 1));
    assert.deepEqual(_jobIds(again), [event!.id]);
    assert.equal(again[0]!.lease.until, leaseUntil + 1 + LEASE_MS);
    assert.deepEqual(again[0]!.event, event);
  });

  test("extendJobLease moves the lease's end, and returns false once the job was claimed again", async (store) => {
    const [event] = _textEvents([1]);
    await store.recordEvents([event!], { now: T0, destinationsFor: () => ["crm"] });
    const [claim] = await store.claimJobs("crm", _claimJobsAt(T0));
    const until = T0 + 3 * LEASE_MS;
    assert.equal(await store.extendJobLease(claim!.lease, until), true);
    assert.equal(claim!.lease.until, until);
    assert.deepEqual(await store.claimJobs("crm", _claimJobsAt(T0 + LEASE_MS + 1)), []);
    const [taken] = await store.claimJobs("crm", _claimJobsAt(until + 1));
    assert.ok(taken, "claimed again once the extended lease ran out");
    assert.equal(await store.extendJobLease(claim!.lease, until + 10 * LEASE_MS), false);
    assert.equal(await store.settleJob(taken, _delivered(until + 1, until + 9)), true);
  });

  test("settleJob delivered: one attempt in its history, never claimed again", async (store) => {
    const [event] = _textEvents([1]);
    await store.recordEvents([event!], { now: T0, destinationsFor: () => ["crm"] });
    const [claim] = await store.claimJobs("crm", _claimJobsAt(T0));
    assert.equal(await store.settleJob(claim!, _delivered(T0 + 10, T0 + 60)), true);
    const [job] = await store.getJobs(event!.id);
    assert.equal(job?.state, "delivered");
    assert.equal(job?.attempts, 1);
    assert.equal(job?.dueAt, null);
    assert.deepEqual(job?.history, [{ at: T0 + 10, ms: 50 }]);
    assert.equal(job?.lastError, undefined);
    assert.deepEqual(await store.claimJobs("crm", _claimJobsAt(T0 + 10 * LEASE_MS)), []);
    assert.equal(await store.settleJob(claim!, _delivered(T0, T0 + 70)), false, "settles once");
  });

  test("settleJob returns false and stores nothing once the lease was lost", async (store) => {
    const [event] = _textEvents([1]);
    await store.recordEvents([event!], { now: T0, destinationsFor: () => ["crm"] });
    const [lost] = await store.claimJobs("crm", _claimJobsAt(T0));
    const now = T0 + LEASE_MS + 1;
    const [taken] = await store.claimJobs("crm", _claimJobsAt(now));
    assert.ok(taken, "claimed again once the lease ran out");
    assert.equal(await store.settleJob(lost!, _jobDead(T0, "crm answered 400")), false);
    const [job] = await store.getJobs(event!.id);
    assert.equal(job?.state, "delivering");
    assert.equal(job?.attempts, 0);
    assert.deepEqual(job?.history, []);
    assert.equal(await store.settleJob(taken, _jobRetrying(now, now + 60 * SECOND_MS)), true);
    assert.equal((await store.getJobs(event!.id))[0]?.state, "retrying");
  });

  test("settleJob of many jobs at once stores each, and refuses only the one whose lease was lost", async (store) => {
    const events = _textEvents(_range(1, 12));
    await store.recordEvents(events.slice(0, 1), { now: T0, destinationsFor: () => ["crm"] });
    await store.recordEvents(events.slice(1), { now: T0 + 1, destinationsFor: () => ["crm"] });
    const [lost] = await store.claimJobs("crm", { now: T0, limit: 1, leaseUntil: T0 + 10 });
    const now = T0 + 20; // the first lease ran out: it is claimed again with the others
    const claims = await store.claimJobs("crm", { now, limit: 12, leaseUntil: now + LEASE_MS });
    assert.equal(claims.length, 12);
    // The lost one among the others: a store that commits them together must not fail them all.
    const settling = claims.map((claim) => store.settleJob(claim, _delivered(now, now + 5)));
    settling.splice(6, 0, store.settleJob(lost!, _delivered(T0, T0 + 30)));
    const settled = await Promise.all(settling);
    assert.deepEqual(settled, settled.map((_, i) => i !== 6));
    for (const event of events) {
      const [job] = await store.getJobs(event.id);
      assert.equal(job?.state, "delivered", event.id);
      assert.equal(job?.attempts, 1, `${event.id}: the lost settle stored nothing`);
    }
  });

  test("settleJob retrying: the job is due again from retryAt, in due order with the others", async (store) => {
    const events = _textEvents([1, 2, 3]);
    await store.recordEvents(events.slice(0, 2), { now: T0, destinationsFor: () => ["crm"] });
    const claims = await store.claimJobs("crm", _claimJobsAt(T0));
    const error = 'crm answered 503 "Service unavailable"';
    assert.equal(
      await store.settleJob(claims[0]!, _jobRetrying(T0, T0 + 90 * SECOND_MS, error)),
      true,
    );
    assert.equal(await store.settleJob(claims[1]!, _jobRetrying(T0, T0 + 30 * SECOND_MS)), true);
    await store.recordEvents([events[2]!], {
      now: T0 + 60 * SECOND_MS,
      destinationsFor: () => ["crm"],
    });
    const [job] = await store.getJobs(events[0]!.id);
    assert.equal(job?.state, "retrying");
    assert.equal(job?.attempts, 1);
    assert.equal(job?.dueAt, T0 + 90 * SECOND_MS);
    assert.equal(job?.lastError, error);
    assert.deepEqual(job?.history, [{ at: T0, ms: 5, error }]);
    assert.deepEqual(await store.claimJobs("crm", _claimJobsAt(T0 + 30 * SECOND_MS - 1)), []);
    const due = await store.claimJobs("crm", _claimJobsAt(T0 + 90 * SECOND_MS));
    assert.deepEqual(_jobIds(due), [events[1]!.id, events[2]!.id, events[0]!.id], "due order");
    assert.equal(due[2]!.job.attempts, 1);
  });

  test("settleJob dead: the job is dead with its error and not claimed again", async (store) => {
    const [event] = _textEvents([1]);
    await store.recordEvents([event!], { now: T0, destinationsFor: () => ["crm"] });
    const [claim] = await store.claimJobs("crm", _claimJobsAt(T0));
    assert.equal(await store.settleJob(claim!, _jobDead(T0, "crm answered 400")), true);
    const [job] = await store.getJobs(event!.id);
    assert.equal(job?.state, "dead");
    assert.equal(job?.dueAt, null);
    assert.equal(job?.lastError, "crm answered 400");
    assert.deepEqual(await store.claimJobs("crm", _claimJobsAt(T0 + DAY_MS)), []);
  });

  test("claimJobs reads back whole the event of a job larger than 64 KiB", async (store) => {
    const text = "Olá, ação 🎉 ".repeat(LARGE_TEXT_CHARS / 12).slice(0, LARGE_TEXT_CHARS);
    const [large] = _textEvents([1], () => text);
    await store.recordEvents([large!], { now: T0, destinationsFor: () => ["crm", "warehouse"] });
    for (const destination of ["crm", "warehouse"]) {
      const [claim] = await store.claimJobs(destination, _claimJobsAt(T0));
      assert.deepEqual(claim?.event, large);
      assert.equal(await store.settleJob(claim!, _delivered(T0, T0 + 5)), true);
    }
    assert.deepEqual((await store.getJobs(large!.id)).map((job) => job.state), [
      "delivered",
      "delivered",
    ]);
  });

  test("replayDeadJobs puts a destination's dead jobs back to pending with a fresh schedule, and only its own", async (store) => {
    const events = _textEvents([1, 2, 3]);
    await store.recordEvents(events, { now: T0, destinationsFor: () => ["crm", "warehouse"] });
    for (const destination of ["crm", "warehouse"]) {
      for (const claim of await store.claimJobs(destination, _claimJobsAt(T0, { limit: 2 }))) {
        assert.equal(await store.settleJob(claim, _jobDead(T0, "answered 400")), true);
      }
    }
    const now = T0 + HOUR_MS;
    assert.equal(await store.replayDeadJobs("crm", now), 2);
    const [crm, warehouse] = await store.getJobs(events[0]!.id);
    assert.equal(crm?.state, "pending");
    assert.equal(crm?.dueAt, now);
    assert.equal(crm?.attempts, 0);
    assert.equal(crm?.history.length, 1, "its history is kept");
    assert.equal(warehouse?.state, "dead", "another destination's dead job stays dead");
    const claims = await store.claimJobs("crm", _claimJobsAt(now));
    assert.deepEqual(_sorted(_jobIds(claims)), _sorted(_ids(events)));
    for (const claim of claims) {
      assert.equal(await store.settleJob(claim, _delivered(now, now + 5)), true);
    }
    assert.equal(await store.replayDeadJobs("crm", now + 10), 0, "none is dead any more");
  });

  test("replayJob is busy while a lease lasts, replays once it ran out, and the old lease then stores nothing", async (store) => {
    const [event] = _textEvents([1]);
    await store.recordEvents([event!], { now: T0, destinationsFor: () => ["crm"] });
    assert.deepEqual(await store.replayJob("crm", _textEvent(2).id, T0), { status: "not_found" });
    assert.deepEqual(await store.replayJob("warehouse", event!.id, T0), { status: "not_found" });
    const [claim] = await store.claimJobs("crm", _claimJobsAt(T0));
    assert.deepEqual(await store.replayJob("crm", event!.id, T0 + LEASE_MS - 1), {
      status: "busy",
    });
    const now = T0 + LEASE_MS + 1;
    const result = await store.replayJob("crm", event!.id, now);
    assert.equal(result.status, "replayed");
    assert.equal(await store.settleJob(claim!, _delivered(T0, now)), false, "the lease was lost");
    const [again] = await store.claimJobs("crm", _claimJobsAt(now));
    assert.deepEqual(_jobIds(again ? [again] : []), [event!.id]);
    assert.deepEqual(await store.claimJobs("crm", _claimJobsAt(now + LEASE_MS - 1)), [], "once");
    assert.equal(await store.settleJob(again!, _delivered(now, now + 5)), true);
    const replayed = await store.replayJob("crm", event!.id, now + 10);
    assert.equal(replayed.status, "replayed", "a delivered job is replayed too");
    assert.equal((await store.claimJobs("crm", _claimJobsAt(now + 10))).length, 1);
  });

  test("listJobs lists a destination's jobs newest first, filtered by state, with cursors that neither repeat nor skip", async (store) => {
    const events = _textEvents(_range(1, 7));
    for (const [i, event] of events.entries()) {
      await store.recordEvents([event], {
        now: T0 + i * SECOND_MS,
        destinationsFor: (e) => e.id === events[3]!.id ? ["warehouse"] : ["crm"],
      });
    }
    const claims = await store.claimJobs("crm", _claimJobsAt(T0 + HOUR_MS, { limit: 2 }));
    assert.equal(await store.settleJob(claims[0]!, _jobDead(T0 + HOUR_MS, "answered 400")), true);
    assert.equal(
      await store.settleJob(claims[1]!, _delivered(T0 + HOUR_MS, T0 + HOUR_MS + 5)),
      true,
    );
    const crmIds = _ids(events).filter((id) => id !== events[3]!.id).reverse();
    const all = await store.listJobs("crm", { limit: 10 });
    assert.deepEqual(all.jobs.map((job) => job.eventId), crmIds, "newest first, crm's only");
    assert.equal(all.cursor, undefined);
    const dead = await store.listJobs("crm", { state: "dead", limit: 10 });
    assert.deepEqual(dead.jobs.map((job) => [job.eventId, job.state]), [[events[0]!.id, "dead"]]);
    const pending = await store.listJobs("crm", { state: "pending", limit: 10 });
    assert.deepEqual(pending.jobs.map((job) => job.eventId), crmIds.slice(0, 4));
    const paged: string[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < MAX_PAGES; i++) {
      const page = await store.listJobs(
        "crm",
        cursor === undefined ? { limit: 2 } : {
          limit: 2,
          cursor,
        },
      );
      assert.ok(page.jobs.length <= 2);
      paged.push(...page.jobs.map((job) => job.eventId));
      cursor = page.cursor;
      if (cursor === undefined) break;
    }
    assert.deepEqual(paged, crmIds, "pages continue without repeat or gap");
    await assert.rejects(
      store.listJobs("crm", { limit: 2, cursor: "nonsense!" }),
      InvalidCursorError,
    );
  });

  test("jobFigures counts a destination's due and later jobs and the oldest due one's age", async (store) => {
    const events = _textEvents([1, 2, 3, 4]);
    for (const [i, event] of events.entries()) {
      await store.recordEvents([event], {
        now: T0 + i * SECOND_MS,
        destinationsFor: () => ["crm"],
      });
    }
    await store.recordEvents(_textEvents([5]), { now: T0, destinationsFor: () => ["warehouse"] });
    const [claim] = await store.claimJobs("crm", _claimJobsAt(T0, { limit: 1 }));
    assert.equal(await store.settleJob(claim!, _jobRetrying(T0, T0 + HOUR_MS)), true);
    const now = T0 + 10 * SECOND_MS;
    const [leased] = await store.claimJobs("crm", _claimJobsAt(now, { limit: 1 }));
    assert.ok(leased);
    assert.deepEqual(await store.jobFigures("crm", { now, limit: 100 }), {
      due: 2,
      later: 2,
      oldestDueAgeMs: 8 * SECOND_MS,
    });
    assert.deepEqual(await store.jobFigures("nowhere", { now, limit: 100 }), {
      due: 0,
      later: 0,
      oldestDueAgeMs: 0,
    });
  });

  test("replayJobs replays a destination's jobs matching a state, a kind and a time range, and only those", async (store) => {
    const texts = _textEvents(_range(1, 4));
    const status = firstFixtureEvent("status_failed", "status");
    const all = [...texts, status];
    for (const [i, event] of all.entries()) {
      await store.recordEvents([event], {
        now: T0 + i * SECOND_MS,
        destinationsFor: () => ["crm", "warehouse"],
      });
    }
    for (const destination of ["crm", "warehouse"]) {
      for (const claim of await store.claimJobs(destination, _claimJobsAt(T0 + HOUR_MS))) {
        assert.equal(await store.settleJob(claim, _jobDead(T0 + HOUR_MS, "answered 500")), true);
      }
    }
    const now = T0 + 2 * HOUR_MS;
    // Received T0+1s to T0+4s: texts 2-4 and the status; of those, messages only: texts 2-4.
    const options = {
      now,
      state: "dead" as const,
      kind: "message" as const,
      receivedFrom: T0 + SECOND_MS,
      receivedTo: T0 + 4 * SECOND_MS,
      limit: 100,
    };
    assert.deepEqual(await store.replayJobs("crm", { ...options, dryRun: true }), {
      matched: 3,
      replayed: 0,
      busy: 0,
    });
    assert.equal((await store.getJobs(texts[1]!.id))[0]?.state, "dead", "a dry run replays none");
    const { kind: _kind, ...anyKind } = options;
    assert.equal(
      (await store.replayJobs("crm", { ...anyKind, receivedTo: T0 + 3 * SECOND_MS, dryRun: true }))
        .matched,
      3,
      "both ends of the range are included: texts 2 to 4",
    );
    assert.deepEqual(await store.replayJobs("crm", options), { matched: 3, replayed: 3, busy: 0 });
    const states = async (destination: number): Promise<string[]> =>
      await Promise.all(
        all.map(async (event) => (await store.getJobs(event.id))[destination]!.state),
      );
    assert.deepEqual(await states(0), ["dead", "pending", "pending", "pending", "dead"]);
    assert.deepEqual(await states(1), ["dead", "dead", "dead", "dead", "dead"], "crm's only");
    const claims = await store.claimJobs("crm", _claimJobsAt(now));
    assert.deepEqual(_sorted(_jobIds(claims)), _sorted(_ids(texts.slice(1))));
    assert.deepEqual(await store.replayJobs("crm", { ...options, now: now + 1 }), {
      matched: 0,
      replayed: 0,
      busy: 0,
    }, "none of them is dead any more");
  });

  test("replayJobs leaves leased jobs alone as busy and continues with its cursor without repeat or gap", async (store) => {
    const events = _textEvents(_range(1, 5));
    for (const [i, event] of events.entries()) {
      await store.recordEvents([event], {
        now: T0 + i * SECOND_MS,
        destinationsFor: () => ["crm"],
      });
    }
    const [leased] = await store.claimJobs("crm", _claimJobsAt(T0 + HOUR_MS, { limit: 1 }));
    assert.ok(leased);
    const now = T0 + HOUR_MS + SECOND_MS;
    let outcome = await store.replayJobs("crm", { now, limit: 2 });
    const totals = { matched: outcome.matched, replayed: outcome.replayed, busy: outcome.busy };
    for (let i = 0; outcome.cursor !== undefined && i < MAX_PAGES; i++) {
      assert.ok(outcome.matched <= 2);
      outcome = await store.replayJobs("crm", { now, limit: 2, cursor: outcome.cursor });
      totals.matched += outcome.matched;
      totals.replayed += outcome.replayed;
      totals.busy += outcome.busy;
    }
    assert.equal(outcome.cursor, undefined, "the walk ends");
    assert.deepEqual(totals, { matched: 5, replayed: 4, busy: 1 });
    assert.equal(await store.settleJob(leased, _delivered(now, now + 5)), true, "still its own");
  });

  // --- Paused destinations --------------------------------------------------------------------

  test("pauseDestination keeps a destination paused, with its first reason, until resumeDestination", async (store) => {
    assert.deepEqual(await store.listPausedDestinations(), []);
    await store.pauseDestination({ destination: "crm", reason: "answered 410 Gone", since: T0 });
    await store.pauseDestination({
      destination: "crm",
      reason: "paused by an operator",
      since: T0 + 1,
    });
    await store.pauseDestination({
      destination: "warehouse",
      reason: "paused by an operator",
      since: T0 + 2,
    });
    const byName = (pauses: { destination: string }[]) =>
      [...pauses].sort((a, b) => a.destination.localeCompare(b.destination));
    assert.deepEqual(byName(await store.listPausedDestinations()), [
      { destination: "crm", reason: "answered 410 Gone", since: T0 },
      { destination: "warehouse", reason: "paused by an operator", since: T0 + 2 },
    ]);
    assert.equal(await store.resumeDestination("crm"), true);
    assert.equal(await store.resumeDestination("crm"), false, "it was no longer paused");
    assert.equal(await store.resumeDestination("nowhere"), false);
    assert.deepEqual(await store.listPausedDestinations(), [
      { destination: "warehouse", reason: "paused by an operator", since: T0 + 2 },
    ]);
  });
}

// --- Helpers ----------------------------------------------------------------------------------

/** Events of one delivery of text messages `wamid.CONTRACT<n>`, bodies from `bodyOf`, parsed. */
function _textEvents(
  numbers: readonly number[],
  bodyOf: (n: number) => string = (n) => `message ${n}`,
): WebhookEvent[] {
  const messages = numbers.map((n) => ({
    from: "5511999990000",
    id: _wamid(n),
    timestamp: String(1767225600 + n),
    type: "text",
    text: { body: bodyOf(n) },
  }));
  const delivery = messagesDelivery({
    contacts: [{ profile: { name: "Ana" }, wa_id: "5511999990000" }],
    messages,
  });
  const { events } = parseDelivery(delivery);
  assert.deepEqual(events.map((e) => e.kind), numbers.map(() => "message"));
  return events;
}

/** The event of text message `n`, as {@linkcode _textEvents} parses it. */
function _textEvent(n: number): WebhookEvent {
  return _textEvents([n])[0]!;
}

function _wamid(n: number): string {
  return `wamid.HBgNNTUxMTk5OTk5MDAwMBUCABIYCONTRACT${String(n).padStart(4, "0")}AA==`;
}

/** The integers `from` to `to`, both included. */
function _range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function _ids(events: readonly WebhookEvent[]): string[] {
  return events.map((event) => event.id);
}

function _claimedIds(claims: readonly ClaimedEvent[]): string[] {
  return claims.map((claim) => claim.record.id);
}

function _sorted(ids: readonly string[]): string[] {
  return [...ids].sort();
}

/** Claim options at `now`: up to 100 events, leased {@linkcode LEASE_MS}. */
function _claimAt(now: number, options: Partial<ClaimOptions> = {}): ClaimOptions {
  return { now, limit: 100, leaseUntil: now + LEASE_MS, ...options };
}

/** A successful run from `startedAt` to `endedAt`. */
function _done(startedAt: number, endedAt: number, completedHandlers = ["log"]): RunOutcome {
  return { state: "done", startedAt, endedAt, completedHandlers };
}

/** A failed run that started at `startedAt`, ran 5 ms, and retries at `retryAt`. */
function _retrying(
  startedAt: number,
  retryAt: number,
  { error = "echo: failed", completedHandlers = [] as string[] } = {},
): RunOutcome {
  return {
    state: "retrying",
    startedAt,
    endedAt: startedAt + 5,
    completedHandlers,
    error,
    retryAt,
  };
}

/** A run that started at `startedAt`, ran 5 ms, and gave up. */
function _dead(
  startedAt: number,
  { error = "echo: failed for good", completedHandlers = [] as string[] } = {},
): RunOutcome {
  return { state: "dead", startedAt, endedAt: startedAt + 5, completedHandlers, error };
}

/** Event `id`'s record; fails when it is unknown. */
async function _record(store: Store, id: string): Promise<EventRecord> {
  const stored = await store.getEvent(id);
  assert.ok(stored, `event "${id}" is stored`);
  return stored.record;
}

/** Claim-jobs options at `now`: up to 100 jobs, leased {@linkcode LEASE_MS}. */
function _claimJobsAt(now: number, options: Partial<ClaimJobsOptions> = {}): ClaimJobsOptions {
  return { now, limit: 100, leaseUntil: now + LEASE_MS, ...options };
}

function _jobIds(claims: readonly ClaimedJob[]): string[] {
  return claims.map((claim) => claim.job.eventId);
}

/** A delivery attempt from `startedAt` to `endedAt` that was delivered. */
function _delivered(startedAt: number, endedAt: number): JobOutcome {
  return { state: "delivered", startedAt, endedAt };
}

/** A failed attempt that started at `startedAt`, ran 5 ms, and retries at `retryAt`. */
function _jobRetrying(startedAt: number, retryAt: number, error = "crm answered 503"): JobOutcome {
  return { state: "retrying", startedAt, endedAt: startedAt + 5, error, retryAt };
}

/** An attempt that started at `startedAt`, ran 5 ms, and gave up. */
function _jobDead(startedAt: number, error: string): JobOutcome {
  return { state: "dead", startedAt, endedAt: startedAt + 5, error };
}

/** Jobs as `[destination, state, dueAt]` lines. */
function _jobsView(jobs: readonly JobRecord[]): [string, string, number | null][] {
  return jobs.map((job) => [job.destination, job.state, job.dueAt]);
}

/** A page as `[id, state, attempts]` lines. */
function _summaryView(page: EventPage): [string, string, number][] {
  return page.events.map((e) => [e.id, e.state, e.attempts]);
}

/** Every page of a listing, following cursors; fails if it never ends or repeats an event. */
async function _listAll(
  store: Store,
  options: Omit<ListEventsOptions, "cursor">,
): Promise<{ ids: string[]; pages: EventPage[] }> {
  const pages: EventPage[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < MAX_PAGES; i++) {
    const page = await store.listEvents(cursor === undefined ? options : { ...options, cursor });
    pages.push(page);
    if (page.cursor === undefined) {
      const ids = pages.flatMap((p) => p.events.map((e) => e.id));
      assert.equal(new Set(ids).size, ids.length, `an event listed twice: ${ids.join(", ")}`);
      return { ids, pages };
    }
    cursor = page.cursor;
  }
  throw new Error(`Listing did not end within ${MAX_PAGES} pages`);
}
