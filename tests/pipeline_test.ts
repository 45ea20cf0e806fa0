/**
 * The durable pipeline end to end: record -> acknowledge -> worker -> dispatcher, over a real
 * loopback server and a temp-file Deno KV.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { ManualClock, systemClock } from "../src/ops/clock.ts";
import { Dispatcher } from "../src/dispatch/dispatcher.ts";
import { RetryLaterError } from "../src/dispatch/handler_errors.ts";
import { createWorker, type Reservation } from "../src/dispatch/worker.ts";
import { parseDelivery, type WebhookEvent } from "../src/events/events.ts";
import { silentLogger } from "../src/ops/log.ts";
import { eventKey, idsOfEntry, type KvEventRecord, READY_PREFIX } from "../src/store/kv/keys.ts";
import { commitGroup, MAX_EVENTS_PER_COMMIT, prepareEvent } from "../src/store/kv/record.ts";
import { writeParts } from "../src/store/kv/parts.ts";
import type { ClaimedEvent, RecordOutcome, Store } from "../src/store/store.ts";
import { FAKE_TOKEN, startFakeGraphApi } from "./fake_graph_api.ts";
import { expirationMs, setRecordState } from "./kv_records.ts";
import {
  advanceUntil,
  kvStore,
  openTempKv,
  postDelivery,
  startTestServer,
  TEST_ADMIN_TOKEN,
  waitFor,
} from "./support.ts";
import { messagesDelivery, textsDelivery } from "./deliveries.ts";

/** Counts handler runs per event id. */
function countingDispatcher(
  runs: Map<string, number>,
  fail: (id: string, attempt: number) => boolean = () => false,
): Dispatcher {
  return new Dispatcher().on("message", ({ event, attempt }) => {
    runs.set(event.id, (runs.get(event.id) ?? 0) + 1);
    if (fail(event.id, attempt)) throw new Error(`boom on attempt ${attempt}`);
  }, { name: "count" });
}

/** The Deno KV store over `kv` the tests record into and run workers on: records live long. */
function storeOn(kv: Deno.Kv, overrides: Parameters<typeof kvStore>[1] = {}): Store {
  return kvStore(kv, { dedupTtlMs: 1e9, retentionMs: 1e9, logger: silentLogger, ...overrides });
}

async function record(kv: Deno.Kv, id: string): Promise<KvEventRecord | null> {
  return (await kv.get<KvEventRecord>(eventKey(id))).value;
}

async function readyCount(kv: Deno.Kv): Promise<number> {
  let count = 0;
  for await (const _ of kv.list({ prefix: READY_PREFIX })) count++;
  return count;
}

async function allDone(kv: Deno.Kv, ids: string[]): Promise<boolean> {
  const records = await Promise.all(ids.map((id) => record(kv, id)));
  return records.every((r) => r?.state === "done");
}

Deno.test("the same delivery posted twice runs each event's handler once", async () => {
  const runs = new Map<string, number>();
  await using server = await startTestServer({ dispatcher: countingDispatcher(runs) });
  const body = textsDelivery(["wamid.TWICE1", "wamid.TWICE2"]);
  for (let i = 0; i < 2; i++) {
    const response = await postDelivery(server.origin, body);
    assert.equal(response.status, 200);
    await response.body?.cancel();
  }
  const ids = ["message:wamid.TWICE1", "message:wamid.TWICE2"];
  await waitFor(() => allDone(server.kv, ids), "both events done");
  assert.equal(await readyCount(server.kv), 0, "nothing is left to run");
  assert.deepEqual(Object.fromEntries(runs), { [ids[0]!]: 1, [ids[1]!]: 1 });
  assert.ok(server.logs.lines.some((l) => l.msg === "delivery recorded" && l.duplicates === 2));
});

Deno.test("the same delivery posted concurrently 20 times runs each handler once", async () => {
  const runs = new Map<string, number>();
  await using server = await startTestServer({ dispatcher: countingDispatcher(runs) });
  const wamids = Array.from({ length: 5 }, (_, i) => `wamid.CONC${i}`);
  const body = textsDelivery(wamids);
  const responses = await Promise.all(
    Array.from({ length: 20 }, () => postDelivery(server.origin, body)),
  );
  for (const response of responses) {
    assert.equal(response.status, 200);
    await response.body?.cancel();
  }
  const ids = wamids.map((w) => `message:${w}`);
  await waitFor(() => allDone(server.kv, ids), "all events done");
  assert.equal(await readyCount(server.kv), 0);
  assert.deepEqual([...runs.values()], [1, 1, 1, 1, 1]);
  assert.equal(runs.size, 5);
});

Deno.test("a handler failing twice then succeeding runs three times with growing delays", async () => {
  const clock = new ManualClock();
  const runs = new Map<string, number>();
  const dispatcher = countingDispatcher(runs, (_id, attempt) => attempt < 3);
  await using server = await startTestServer({
    clock,
    dispatcher,
    random: () => 0.5,
    env: { RETRY_BASE_DELAY_MS: "1000" },
  });
  const response = await postDelivery(server.origin, textsDelivery(["wamid.RETRY1"]));
  assert.equal(response.status, 200);
  await response.body?.cancel();
  const id = "message:wamid.RETRY1";
  const start = clock.now();

  // The delay after a failure is the record's dueAt minus the failure's time (`at + ms`).
  const delayAfter = (r: KvEventRecord | null, attempt: number): number => {
    const failed = r!.history[attempt - 1]!;
    return r!.dueAt! - (failed.at + failed.ms);
  };
  await waitFor(async () => (await record(server.kv, id))?.state === "retrying", "first failure");
  const afterFirst = await record(server.kv, id);
  assert.equal(delayAfter(afterFirst, 1), 750); // 1000/2 + 0.5 * 1000/2
  await advanceUntil(clock, async () => (await record(server.kv, id))?.attempts === 2, "attempt 2");
  const afterSecond = await record(server.kv, id);
  assert.equal(delayAfter(afterSecond, 2), 1500, "the delay doubled");
  await advanceUntil(clock, async () => (await record(server.kv, id))?.state === "done", "done");

  const done = await record(server.kv, id);
  assert.equal(runs.get(id), 3);
  assert.equal(done?.attempts, 3);
  const [first, second, third] = done!.history;
  assert.equal(first!.at, start);
  // No attempt ran before its delay had passed.
  assert.ok(second!.at >= afterFirst!.dueAt!, `second attempt at +${second!.at - start} ms`);
  assert.ok(third!.at >= afterSecond!.dueAt!, `third attempt at +${third!.at - start} ms`);
  assert.deepEqual(done?.history.map((h) => h.error !== undefined), [true, true, false]);
  assert.equal(afterSecond?.lastError, "count: boom on attempt 2");
  assert.equal(done?.lastError, undefined, "the run that succeeded cleared the last error");
});

Deno.test("a handler that always fails is dead-lettered with its error and can be replayed", async () => {
  const clock = new ManualClock();
  const runs = new Map<string, number>();
  let isBroken = true;
  const dispatcher = countingDispatcher(runs, () => isBroken);
  await using server = await startTestServer({
    clock,
    dispatcher,
    random: () => 0,
    env: { RETRY_MAX_ATTEMPTS: "3", RETRY_BASE_DELAY_MS: "100" },
  });
  const response = await postDelivery(server.origin, textsDelivery(["wamid.DEAD1"]));
  await response.body?.cancel();
  const id = "message:wamid.DEAD1";
  await advanceUntil(clock, async () => (await record(server.kv, id))?.state === "dead", "dead");
  const dead = await record(server.kv, id);
  assert.equal(dead?.attempts, 3);
  assert.equal(dead?.lastError, "count: boom on attempt 3");
  assert.equal(runs.get(id), 3);
  assert.ok(server.logs.lines.some((l) => l.msg === "event dead-lettered" && l.eventId === id));

  isBroken = false;
  const replay = await fetch(`${server.origin}/admin/dead-letters/replay`, {
    method: "POST",
    headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
  });
  assert.equal(replay.status, 202);
  assert.deepEqual(await replay.json(), { replayed: 1 });
  await waitFor(async () => (await record(server.kv, id))?.state === "done", "replayed event done");
  assert.equal(runs.get(id), 4);
});

Deno.test("one throwing handler in a 100-event batch leaves the 99 others done", async () => {
  const runs = new Map<string, number>();
  const wamids = Array.from({ length: 100 }, (_, i) => `wamid.BATCH${i}`);
  const dispatcher = countingDispatcher(runs, (id) => id === "message:wamid.BATCH42");
  await using server = await startTestServer({ dispatcher });
  const response = await postDelivery(server.origin, textsDelivery(wamids));
  assert.equal(response.status, 200);
  await response.body?.cancel();
  const others = wamids.filter((w) => w !== "wamid.BATCH42").map((w) => `message:${w}`);
  await waitFor(() => allDone(server.kv, others), "the 99 others done");
  assert.equal((await record(server.kv, "message:wamid.BATCH42"))?.state, "retrying");
  assert.equal(runs.size, 100);
});

Deno.test("a retry runs only the handlers that have not succeeded yet", async () => {
  const clock = new ManualClock();
  const calls: string[] = [];
  let failures = 1;
  const dispatcher = new Dispatcher()
    .on("message", () => void calls.push("audit"), { name: "audit" })
    .onMessage("text", ({ event }) => {
      calls.push(`reply:${event.message.text.body}`);
      if (failures-- > 0) throw new Error("flaky");
    }, { name: "reply" });
  await using temp = await openTempKv();
  const store = storeOn(temp.kv);
  const { events } = parseDelivery(JSON.parse(textsDelivery(["wamid.PART1"])));
  await store.recordEvents(events, { now: clock.now() });
  const worker = createWorker({
    store,
    dispatcher,
    logger: silentLogger,
    clock,
    random: () => 0,
    retry: { baseDelayMs: 10 },
  });
  worker.start();
  const id = "message:wamid.PART1";
  await waitFor(async () => (await record(temp.kv, id))?.state === "retrying", "first failure");
  await advanceUntil(clock, async () => (await record(temp.kv, id))?.state === "done", "done", 5);
  await worker.stop(1_000);
  assert.deepEqual(calls, ["audit", "reply:message 0", "reply:message 0"]);
  assert.deepEqual((await record(temp.kv, id))?.completedHandlers, ["audit", "reply"]);
});

Deno.test("slow handlers keep their leases: a second worker never runs them meanwhile", async () => {
  const clock = new ManualClock();
  await using temp = await openTempKv();
  const store = storeOn(temp.kv);
  // Twelve events: their leases are extended in two commits (ten, then two).
  const wamids = Array.from({ length: 12 }, (_, i) => `wamid.SLOW${i}`);
  const { events } = parseDelivery(JSON.parse(textsDelivery(wamids)));
  await store.recordEvents(events, { now: clock.now() });
  const runs = new Map<string, number>();
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const dispatcher = new Dispatcher().on("message", async ({ event }) => {
    runs.set(event.id, (runs.get(event.id) ?? 0) + 1);
    await finished;
  });
  const options = { store, dispatcher, logger: silentLogger, clock, leaseMs: 3_000 };
  const first = createWorker(options);
  const second = createWorker(options);
  first.start();
  await waitFor(() => runs.size === 12, "the first runs");
  second.start();
  // Ten lease lengths pass while the handlers run. Manual time must not outrun the extensions'
  // real KV commits, as it would if KV stalled for 10 s.
  for (let i = 0; i < 30; i++) {
    await clock.advance(1_000);
    await waitFor(async () => {
      for await (const entry of temp.kv.list({ prefix: READY_PREFIX })) {
        if ((entry.key[1] as number) < clock.now() + 1_000) return false;
      }
      return true;
    }, "every lease to be extended");
  }
  assert.deepEqual([...runs.values()], Array(12).fill(1));
  finish();
  await waitFor(async () => {
    const records = await Promise.all(events.map((event) => record(temp.kv, event.id)));
    return records.every((r) => r?.state === "done");
  }, "all done");
  await first.stop(1_000);
  await second.stop(1_000);
  assert.deepEqual([...runs.values()], Array(12).fill(1));
});

Deno.test("a lost lease aborts the run and its result is not stored", async () => {
  const clock = new ManualClock();
  await using temp = await openTempKv();
  const store = storeOn(temp.kv);
  const { events } = parseDelivery(JSON.parse(textsDelivery(["wamid.LOST1"])));
  await store.recordEvents(events, { now: clock.now() });
  const id = "message:wamid.LOST1";
  let aborted: unknown;
  const dispatcher = new Dispatcher().on("message", ({ signal }) =>
    new Promise<void>((resolve) => {
      signal.addEventListener("abort", () => {
        aborted = signal.reason;
        resolve();
      });
    }));
  const worker = createWorker({
    store,
    dispatcher,
    logger: silentLogger,
    clock,
    leaseMs: 3_000,
  });
  worker.start();
  await waitFor(() => worker.running() === 1, "the run");
  // Another worker takes the event over: its lease entry moves.
  let lease: Deno.KvEntry<string> | undefined;
  for await (const entry of temp.kv.list<string>({ prefix: READY_PREFIX })) lease = entry;
  await temp.kv.atomic().delete(lease!.key).set(["ready", clock.now() + 60_000, id], id).commit();
  await advanceUntil(clock, () => Promise.resolve(aborted !== undefined), "the abort", 500);
  await waitFor(() => worker.running() === 0, "the run to end");
  await worker.stop(1_000);
  assert.match(String(aborted), /Lease lost/);
  assert.equal((await record(temp.kv, id))?.state, "pending", "the result was not stored");
});

Deno.test("no more handlers run at once than the worker's concurrency", async () => {
  await using temp = await openTempKv();
  const store = storeOn(temp.kv);
  const wamids = Array.from({ length: 12 }, (_, i) => `wamid.CAP${i}`);
  const { events } = parseDelivery(JSON.parse(textsDelivery(wamids)));
  await store.recordEvents(events, { now: Date.now() });
  let running = 0;
  let most = 0;
  let done = 0;
  const dispatcher = new Dispatcher().on("message", async () => {
    most = Math.max(most, ++running);
    await new Promise((resolve) => setTimeout(resolve, 20));
    running--;
    done++;
  });
  const worker = createWorker({
    store,
    dispatcher,
    logger: silentLogger,
    clock: systemClock,
    concurrency: 3,
  });
  worker.start();
  // The intake takes free slots too, never more than are free.
  const reservation = worker.reserve(10);
  assert.ok(reservation.count <= 3);
  reservation.run([]);
  await waitFor(() => done === 12, "all handled");
  await worker.stop(1_000);
  assert.equal(most, 3);
});

Deno.test("events recorded leased run at once; those beyond the free slots wait in memory", async () => {
  const clock = new ManualClock();
  await using temp = await openTempKv();
  const store = storeOn(temp.kv);
  const { dispatcher, runs, counts, release } = gatedDispatcher();
  // Two slots, and four places in memory per slot.
  const worker = createWorker({
    store,
    dispatcher,
    logger: silentLogger,
    clock,
    concurrency: 2,
  });
  assert.equal(worker.reserve(5).count, 0, "no slots before the worker starts");
  worker.start();
  // Until a claim round has found nothing due, part of the slots is kept for due events and
  // nothing waits in memory.
  let reservation = worker.reserve(12);
  await waitFor(() => {
    if (reservation.count === 10) return true;
    assert.ok(reservation.count < 2, "only open slots while due events may wait");
    reservation.run([]);
    reservation = worker.reserve(12);
    return false;
  }, "the first claim round to find nothing due");
  assert.equal(worker.reserve(1).count, 0, "every slot and place is held");

  const wamids = Array.from({ length: 12 }, (_, i) => `wamid.HAND${i}`);
  const { events } = parseDelivery(JSON.parse(textsDelivery(wamids)));
  const until = clock.now() + 15_000;
  const outcome = await store.recordEvents(events, {
    now: clock.now(),
    lease: { count: reservation.count, until },
  });
  assert.equal(outcome.leased.length, 10, "ten leased, two due now");

  reservation.run(outcome.leased);
  await waitFor(() => counts.running === 2, "two runs");
  assert.equal(worker.running(), 2, "the other eight wait in memory");
  // With time standing still, the queued events run as slots free; then the claim loop takes the
  // two that were not leased.
  await waitFor(async () => {
    release();
    await new Promise((resolve) => setTimeout(resolve, 5));
    return runs.size === 10;
  }, "the ten leased events to run");
  await advanceUntil(clock, () => {
    release();
    return allDone(temp.kv, events.map((event) => event.id));
  }, "all done");
  await worker.stop(1_000);
  assert.equal(counts.most, 2);
  assert.deepEqual([...runs.values()], Array(12).fill(1));
  assert.equal(await readyCount(temp.kv), 0);
});

Deno.test("an event waiting in memory keeps its lease; a second worker never takes it", async () => {
  const clock = new ManualClock();
  await using temp = await openTempKv();
  const store = storeOn(temp.kv);
  const runs = new Map<string, number>();
  let finishFirst: () => void = () => {};
  const first = new Promise<void>((resolve) => (finishFirst = resolve));
  const dispatcher = new Dispatcher().on("message", async ({ event }) => {
    runs.set(event.id, (runs.get(event.id) ?? 0) + 1);
    if (event.id === "message:wamid.WAIT0") await first;
  });
  const options = { store, dispatcher, logger: silentLogger, clock, leaseMs: 3_000 };
  const { worker, reservation } = await workerWithSlots({ ...options, concurrency: 1 }, 2);
  // Two commits: the waiting event's lease is its own, not the running one's.
  const { outcome: running } = await recordLeased(temp.kv, clock, reservation, ["wamid.WAIT0"]);
  const { outcome: waiting } = await recordLeased(temp.kv, clock, reservation, ["wamid.WAIT1"]);
  reservation.run([...running.leased, ...waiting.leased]);
  await waitFor(() => runs.size === 1 && worker.running() === 1, "one run, one waiting");
  const second = createWorker(options);
  second.start();
  for (let i = 0; i < 12; i++) {
    await clock.advance(1_000);
    await waitFor(async () => {
      const entries = await readyEntries(temp.kv);
      return entries.length === 2 && entries.every(([dueAt]) => dueAt >= clock.now() + 1_000);
    }, "both leases to be extended");
  }
  assert.deepEqual([...runs.keys()], ["message:wamid.WAIT0"]);
  finishFirst();
  const ids = ["message:wamid.WAIT0", "message:wamid.WAIT1"];
  await waitFor(() => allDone(temp.kv, ids), "both done");
  await worker.stop(1_000);
  await second.stop(1_000);
  assert.deepEqual([...runs.values()], [1, 1]);
});

Deno.test("events waiting in memory when the worker stops run elsewhere once their lease ends", async () => {
  const clock = new ManualClock();
  await using temp = await openTempKv();
  const store = storeOn(temp.kv);
  // The handler runs until it is aborted.
  const dispatcher = new Dispatcher().on(
    "message",
    ({ signal }) =>
      new Promise<void>((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason))
      ),
  );
  const options = { store, dispatcher, logger: silentLogger, clock, concurrency: 1 };
  const { worker, reservation } = await workerWithSlots(options, 2);
  const wamids = ["wamid.STOP0", "wamid.STOP1"];
  const { outcome } = await recordLeased(temp.kv, clock, reservation, wamids);
  reservation.run(outcome.leased);
  await waitFor(() => worker.running() === 1, "one run, one waiting");
  await worker.stop(0); // the run is aborted and the waiting event left to its lease

  const runs = new Map<string, number>();
  const next = createWorker({ ...options, dispatcher: countingDispatcher(runs) });
  next.start();
  await clock.advance(reservation.until - clock.now() - 1_000);
  assert.equal(runs.size, 0, "not taken while the lease holds");
  const ids = wamids.map((w) => `message:${w}`);
  await advanceUntil(clock, () => allDone(temp.kv, ids), "both taken over");
  await next.stop(1_000);
  assert.deepEqual([...runs.values()], [1, 1]);
});

Deno.test("an event recorded leased by a process that died runs once its lease ends", async () => {
  const clock = new ManualClock();
  await using temp = await openTempKv();
  const store = storeOn(temp.kv);
  const { events } = parseDelivery(JSON.parse(textsDelivery(["wamid.ORPHAN1"])));
  const until = clock.now() + 15_000;
  const outcome = await store.recordEvents(events, {
    now: clock.now(),
    lease: { count: 1, until },
  });
  assert.equal(outcome.leased.length, 1, "recorded leased, then never run: its process died");
  await assertRunsOnceAfterLease(temp.kv, clock, "message:wamid.ORPHAN1", until);
});

Deno.test("an expired lease (a dead worker) makes the event claimable again", async () => {
  const clock = new ManualClock();
  await using temp = await openTempKv();
  const store = storeOn(temp.kv);
  const { events } = parseDelivery(JSON.parse(textsDelivery(["wamid.LEASE1"])));
  await store.recordEvents(events, { now: clock.now() });
  const id = "message:wamid.LEASE1";
  // Simulate a claim by a process that then died: the event sits in a lease at the lease's end.
  const leaseUntil = clock.now() + 15_000;
  await setRecordState(temp.kv, id, "processing", { now: clock.now(), dueAt: leaseUntil });
  await assertRunsOnceAfterLease(temp.kv, clock, id, leaseUntil);
});

/** Starts a worker: the event `id`, leased until `until` by a process that died, runs once then. */
async function assertRunsOnceAfterLease(
  kv: Deno.Kv,
  clock: ManualClock,
  id: string,
  until: number,
): Promise<void> {
  const runs = new Map<string, number>();
  const worker = createWorker({
    store: storeOn(kv),
    dispatcher: countingDispatcher(runs),
    logger: silentLogger,
    clock,
  });
  worker.start();
  await clock.advance(until - clock.now() - 1_000);
  assert.equal(runs.size, 0, "not taken while the lease holds");
  await advanceUntil(clock, async () => (await record(kv, id))?.state === "done", "taken over");
  assert.ok(clock.now() >= until);
  await worker.stop(1_000);
  assert.deepEqual([...runs.values()], [1]);
}

/** The ready entries as `[dueAt, event ids]`, in key order. */
async function readyEntries(kv: Deno.Kv): Promise<[number, string[]][]> {
  const entries: [number, string[]][] = [];
  for await (const entry of kv.list({ prefix: READY_PREFIX })) {
    entries.push([entry.key[1] as number, idsOfEntry(entry.value)]);
  }
  return entries;
}

Deno.test("a lease on several events shrinks as their results land; the slow one keeps it", async () => {
  const clock = new ManualClock();
  await using temp = await openTempKv();
  const store = storeOn(temp.kv);
  const wamids = ["wamid.GROUP0", "wamid.GROUP1", "wamid.GROUP2"];
  const ids = wamids.map((w) => `message:${w}`);
  const runs = new Map<string, number>();
  let finishSlow: () => void = () => {};
  const slow = new Promise<void>((resolve) => (finishSlow = resolve));
  const dispatcher = new Dispatcher().on("message", async ({ event }) => {
    runs.set(event.id, (runs.get(event.id) ?? 0) + 1);
    if (event.id === ids[2]) await slow;
  });
  const options = { store, dispatcher, logger: silentLogger, clock, leaseMs: 3_000 };
  const { worker: first, reservation } = await workerWithSlots({ ...options, concurrency: 3 }, 3);
  const { outcome } = await recordLeased(temp.kv, clock, reservation, wamids);
  assert.deepEqual(await readyEntries(temp.kv), [[reservation.until, ids]], "one entry for three");
  assert.equal(new Set(outcome.leased.map((leased) => leased.lease)).size, 1);

  reservation.run(outcome.leased);
  await waitFor(async () => (await allDone(temp.kv, ids.slice(0, 2))), "the two fast ones");
  assert.deepEqual((await readyEntries(temp.kv)).map(([, held]) => held), [[ids[2]]]);
  const second = createWorker(options);
  second.start();
  for (let i = 0; i < 12; i++) {
    await clock.advance(1_000);
    await waitFor(async () => {
      const [entry] = await readyEntries(temp.kv);
      return entry !== undefined && entry[0] >= clock.now() + 1_000;
    }, "the lease to be extended");
  }
  finishSlow();
  await waitFor(() => allDone(temp.kv, ids), "all done");
  await first.stop(1_000);
  await second.stop(1_000);
  assert.deepEqual([...runs.values()], [1, 1, 1]);
  assert.deepEqual(await readyEntries(temp.kv), []);
});

Deno.test("a claim takes what fits of a lease left by a dead process; the rest waits", async () => {
  const clock = new ManualClock();
  await using temp = await openTempKv();
  const store = storeOn(temp.kv);
  const wamids = Array.from({ length: 5 }, (_, i) => `wamid.SPLIT${i}`);
  const ids = wamids.map((w) => `message:${w}`);
  const { events } = parseDelivery(JSON.parse(textsDelivery(wamids)));
  // Recorded leased by a process that died before running them: one entry, due once it ends.
  const until = clock.now() + 1_000;
  await recordInOneCommit(temp.kv, events, { now: clock.now(), leaseUntil: until });
  await clock.advance(2_000);
  const { dispatcher, runs, counts, release } = gatedDispatcher();
  const worker = createWorker({
    store,
    dispatcher,
    logger: silentLogger,
    clock,
    concurrency: 2,
  });
  worker.start();
  await waitFor(() => counts.running === 2, "two runs");
  const entries = await readyEntries(temp.kv);
  assert.equal(entries.length, 2, "the claimed two under a new lease, three left due");
  assert.deepEqual(entries.flatMap(([, held]) => held).toSorted(), ids.toSorted());
  assert.ok(entries.some(([dueAt, held]) => dueAt === until && held.length === 3));
  // Each release lets the runs waiting at the gate finish; the claim loop takes the rest.
  await waitFor(async () => {
    release();
    await clock.advance(10);
    return await allDone(temp.kv, ids);
  }, "all done");
  await worker.stop(1_000);
  assert.equal(counts.most, 2);
  assert.deepEqual([...runs.values()], [1, 1, 1, 1, 1]);
  assert.deepEqual(await readyEntries(temp.kv), []);
});

/**
 * A dispatcher whose runs wait at a gate until `release()` lets every waiting run go on (later ones
 * wait at a new gate). It counts runs per event, and runs at once now and at most.
 */
function gatedDispatcher() {
  const runs = new Map<string, number>();
  const counts = { running: 0, most: 0 };
  let open: () => void = () => {};
  let gate = new Promise<void>((resolve) => (open = resolve));
  const dispatcher = new Dispatcher().on("message", async ({ event }) => {
    runs.set(event.id, (runs.get(event.id) ?? 0) + 1);
    counts.most = Math.max(counts.most, ++counts.running);
    await gate;
    counts.running--;
  });
  const release = (): void => {
    open();
    gate = new Promise<void>((resolve) => (open = resolve));
  };
  return { dispatcher, runs, counts, release };
}

/** Records a delivery of `wamids` leased to the worker holding `reservation`, as intake does. */
async function recordLeased(
  kv: Deno.Kv,
  clock: ManualClock,
  reservation: Reservation,
  wamids: string[],
): Promise<{ events: WebhookEvent[]; outcome: RecordOutcome }> {
  const { events } = parseDelivery(JSON.parse(textsDelivery(wamids)));
  const leased = await recordInOneCommit(kv, events, {
    now: clock.now(),
    leaseUntil: reservation.until,
  });
  return { events, outcome: { recorded: events.map((event) => event.id), duplicates: [], leased } };
}

/**
 * Records new `events` in one atomic commit, sharing one ready entry: with `leaseUntil`, leased to
 * the caller until then (one lease for all), and returns them as leased. The store's inbox commits
 * a lone event at once and gathers only those that arrive meanwhile, so a delivery's events may
 * land in several commits; the tests of a lease or an entry several events share write them so.
 */
async function recordInOneCommit(
  kv: Deno.Kv,
  events: readonly WebhookEvent[],
  options: { now: number; leaseUntil?: number },
): Promise<ClaimedEvent[]> {
  assert.ok(events.length <= MAX_EVENTS_PER_COMMIT, "the events fit one commit");
  const prepared = events.map((event) =>
    prepareEvent(event, { dedupTtlMs: 1e9, retentionMs: 1e9, ...options })
  );
  await Promise.all(prepared.map((event) => writeParts(kv, event)));
  const results = await commitGroup(kv, prepared);
  return prepared.map((event, i) => {
    const result = results[i];
    assert.equal(result?.state, "recorded", `${event.id} is new`);
    const { record, event: leasedEvent, bytes } = event;
    return result.lease ? [{ record, event: leasedEvent, lease: result.lease, bytes }] : [];
  }).flat();
}

/** Starts a worker on `kv` and waits until it can reserve `count` slots; returns both. */
async function workerWithSlots(
  options: Parameters<typeof createWorker>[0],
  count: number,
): Promise<{ worker: ReturnType<typeof createWorker>; reservation: Reservation }> {
  const worker = createWorker(options);
  worker.start();
  let reservation = worker.reserve(count);
  await waitFor(() => {
    if (reservation.count === count) return true;
    reservation.run([]);
    reservation = worker.reserve(count);
    return false;
  }, `${count} free slots`);
  return { worker, reservation };
}

Deno.test("a lost lease on several events aborts every run holding it, storing no result", async () => {
  const clock = new ManualClock();
  await using temp = await openTempKv();
  const store = storeOn(temp.kv);
  const wamids = ["wamid.LOSTG0", "wamid.LOSTG1", "wamid.LOSTG2"];
  const aborted = new Set<string>();
  const dispatcher = new Dispatcher().on(
    "message",
    ({ event, signal }) =>
      new Promise<void>((resolve) => {
        signal.addEventListener("abort", () => {
          aborted.add(event.id);
          resolve();
        });
      }),
  );
  const options = { store, dispatcher, logger: silentLogger, clock, leaseMs: 3_000 };
  const { worker, reservation } = await workerWithSlots({ ...options, concurrency: 3 }, 3);
  const { events, outcome } = await recordLeased(temp.kv, clock, reservation, wamids);
  reservation.run(outcome.leased);
  await waitFor(() => worker.running() === 3, "three runs");
  // Another worker takes the lease over: it moves the entry.
  const [lease] = await Array.fromAsync(temp.kv.list({ prefix: READY_PREFIX }));
  await temp.kv.atomic().check(lease!).delete(lease!.key)
    .set(["ready", clock.now() + 60_000, "taken-over"], lease!.value).commit();
  await advanceUntil(clock, () => Promise.resolve(aborted.size === 3), "every abort", 500);
  await waitFor(() => worker.running() === 0, "the runs to end");
  await worker.stop(1_000);
  for (const event of events) assert.equal((await record(temp.kv, event.id))?.state, "pending");
});

Deno.test("an event left out of its delivery's runs waits in the shared lease, then runs once", async () => {
  const clock = new ManualClock();
  await using temp = await openTempKv();
  const store = storeOn(temp.kv);
  const wamids = ["wamid.KEPT0", "wamid.LEFT1"];
  const ids = wamids.map((w) => `message:${w}`);
  const runs = new Map<string, number>();
  const options = {
    store,
    dispatcher: countingDispatcher(runs),
    logger: silentLogger,
    clock,
    concurrency: 2,
    leaseMs: 1_000,
  };
  const { worker, reservation } = await workerWithSlots(options, 2);
  const { outcome } = await recordLeased(temp.kv, clock, reservation, wamids);
  // Only the first is handed over: the second's delivery failed after its commit landed.
  reservation.run(outcome.leased.slice(0, 1));
  await waitFor(() => allDone(temp.kv, ids.slice(0, 1)), "the first done");
  assert.deepEqual((await readyEntries(temp.kv)).map(([dueAt, held]) => [dueAt, held]), [
    [reservation.until, [ids[1]]],
  ]);
  await advanceUntil(clock, () => allDone(temp.kv, ids), "the second, after the lease", 50);
  assert.ok(clock.now() >= reservation.until);
  await worker.stop(1_000);
  assert.deepEqual([...runs.entries()].toSorted(), ids.map((id) => [id, 1]));
  assert.deepEqual(await readyEntries(temp.kv), []);
});

const HOUR_MS = 3_600_000;
/** Meta's success answer to a mark-as-read, scripted ahead of a scripted reply answer. */
const READ_OK = { status: 200, body: '{"success":true}' };

// Waits a Graph API `Retry-After` may ask for that would park an event for decades (or for ever).
for (
  const [label, retryAfter] of [
    ["400 nines", "9".repeat(400)],
    ["999999999 s (2058)", "999999999"],
    ["a date in year 9999", "Fri, 31 Dec 9999 23:59:59 GMT"],
  ]
) {
  Deno.test(`a Graph 429 with Retry-After ${label}: the retry is due within RETRY_MAX_DELAY_MS and counted`, async () => {
    await using fake = startFakeGraphApi();
    const clock = new ManualClock();
    const maxDelayMs = 900_000; // RETRY_MAX_DELAY_MS's default, written out
    await using server = await startTestServer({
      clock,
      random: () => 0.5,
      env: {
        ECHO_REPLIES: "true",
        WHATSAPP_TOKEN: FAKE_TOKEN,
        GRAPH_API_BASE_URL: fake.url,
        RETRY_MAX_DELAY_MS: String(maxDelayMs),
      },
    });
    // The client gives up at once (the wait is past its minute) and the echo handler passes the
    // wait on to the worker in a RetryLaterError.
    fake.script(READ_OK, { error: 130429, status: 429, retryAfter });
    const start = clock.now();
    const response = await postDelivery(server.origin, textsDelivery(["wamid.FAR1"]));
    assert.equal(response.status, 200);
    await response.body?.cancel();
    const id = "message:wamid.FAR1";

    await waitFor(async () => (await record(server.kv, id))?.state === "retrying", "retrying");
    const retrying = (await record(server.kv, id))!;
    assert.equal(retrying.attempts, 1, "the throttled run counts as an attempt");
    assert.equal(retrying.dueAt, start + maxDelayMs, "the wait is cut to RETRY_MAX_DELAY_MS");
    assert.deepEqual((await readyEntries(server.kv)).map(([dueAt]) => dueAt), [retrying.dueAt]);
    const shown = await fetch(`${server.origin}/admin/events/${encodeURIComponent(id)}`, {
      headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
    });
    assert.equal(shown.status, 200);
    const view = await shown.json();
    assert.equal(view.dueAt, new Date(start + maxDelayMs).toISOString());
    assert.equal(view.attempts, 1);

    // Not parked: it runs again once the capped delay has passed, and answers.
    await clock.advance(maxDelayMs - 1);
    assert.equal(fake.requests.length, 2, "nothing sent before its due time");
    await advanceUntil(clock, async () => (await record(server.kv, id))?.state === "done", "done");
    const done = (await record(server.kv, id))!;
    assert.equal(done.attempts, 2);
    assert.ok(done.history[1]!.at >= start + maxDelayMs);
    assert.equal(fake.requests.length, 4, "a second mark-as-read, then the reply");
  });
}

Deno.test(
  "a retry due as far as the cap allows renews its record (and a large event's parts) to outlive it",
  async () => {
    await using temp = await openTempKv();
    // Deno KV counts `expireIn` from its own clock: the manual clock starts at the real time and
    // never moves here, so the expiries read from the file compare with the records' times.
    const clock = new ManualClock(Date.now());
    const start = clock.now();
    const lifeMs = HOUR_MS; // DEDUP_TTL_HOURS = EVENT_RETENTION_HOURS = 1: the least allowed
    const maxDelayMs = 7 * 24 * HOUR_MS; // RETRY_MAX_DELAY_MS: the most allowed
    const leaseMs = 15_000;
    const small = "message:wamid.LIFE1";
    const large = "message:wamid.LIFE2";
    const { events } = parseDelivery(messagesDelivery({
      messages: ["wamid.LIFE1", "wamid.LIFE2"].map((id, i) => ({
        from: "5511999990000",
        id,
        timestamp: "1767225600",
        type: "text",
        text: { body: i === 0 ? "short" : "histórico ".repeat(12_000) }, // ~130 KB: in parts
      })),
    }));
    const store = storeOn(temp.kv, { dedupTtlMs: lifeMs, retentionMs: lifeMs, leaseMs });
    await store.recordEvents(events, { now: start });
    assert.ok((await record(temp.kv, large))!.parts! > 1);
    const runs = new Map<string, number>();
    const dispatcher = new Dispatcher().on("message", ({ event }) => {
      runs.set(event.id, (runs.get(event.id) ?? 0) + 1);
      if (runs.get(event.id) === 1) throw new RetryLaterError("Throttled", maxDelayMs);
    }, { name: "throttled" });
    const worker = createWorker({
      store,
      dispatcher,
      logger: silentLogger,
      clock,
      leaseMs,
      retry: { maxDelayMs },
      random: () => 0,
    });
    worker.start();
    await waitFor(
      async () =>
        (await record(temp.kv, small))?.state === "retrying" &&
        (await record(temp.kv, large))?.state === "retrying",
      "both retrying",
    );

    for (const id of [small, large]) {
      const retrying = (await record(temp.kv, id))!;
      assert.equal(retrying.dueAt, start + maxDelayMs);
      // What Deno KV will do, read from its file (reads do not show an expiry).
      const expiration = expirationMs(temp.path, ["events", id])!;
      assert.ok(
        expiration >= retrying.dueAt! + leaseMs + lifeMs / 2,
        `${id} expires ${((expiration - retrying.dueAt!) / HOUR_MS).toFixed(2)} h after it is due`,
      );
      assert.ok(Math.abs(expiration - retrying.expiresAt) < 5_000, "the record says its expiry");
    }
    const parts = _partExpirations(temp.path, large);
    assert.equal(parts.length, (await record(temp.kv, large))!.parts);
    for (const expiration of parts) {
      assert.ok(expiration >= expirationMs(temp.path, ["events", large])! - 5_000, "parts live on");
    }

    // Past the record's first life and on to its due time: both run, the large one read whole.
    await clock.advance(maxDelayMs - 1);
    assert.equal(runs.get(large), 1, "not run before its due time");
    await advanceUntil(clock, async () => (await allDone(temp.kv, [small, large])), "both done");
    await worker.stop(1_000);
    assert.deepEqual([runs.get(small), runs.get(large)], [2, 2]);
  },
);

/** When Deno KV will drop each chunk of event `id`'s JSON, read from its SQLite file. */
function _partExpirations(path: string, id: string): number[] {
  // The key prefix `["event_parts", id]`: each string part as 0x02, its bytes, 0x00.
  const prefix: number[] = [];
  for (const part of ["event_parts", id]) {
    prefix.push(0x02, ...new TextEncoder().encode(part), 0x00);
  }
  const start = new Uint8Array(prefix);
  const end = new Uint8Array([...prefix, 0xff]);
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const rows = db.prepare("SELECT expiration_ms FROM kv WHERE k >= ? AND k < ? ORDER BY k")
      .all(start, end);
    return rows.map((row) => Number(row.expiration_ms));
  } finally {
    db.close();
  }
}

Deno.test("events an older version parked far away (at Infinity, in 2056) run once a worker starts", async () => {
  const clock = new ManualClock();
  await using temp = await openTempKv();
  const store = storeOn(temp.kv);
  const start = clock.now();
  const wamids = ["wamid.PARKED1", "wamid.PARKED2", "wamid.SOON1"];
  const { events } = parseDelivery(JSON.parse(textsDelivery(wamids)));
  await store.recordEvents(events, { now: start });
  const [infinite, decades, soon] = wamids.map((wamid) => `message:${wamid}`) as [
    string,
    string,
    string,
  ];
  // As versions that did not cap delays left them after a Retry-After of 400 nines, or of
  // 946080000 s; and a retry this version would write, 10 minutes away.
  const fields = { now: start, attempts: 1, lastError: "echo: throttled" };
  await setRecordState(temp.kv, infinite, "retrying", { ...fields, dueAt: Infinity });
  await setRecordState(temp.kv, decades, "retrying", { ...fields, dueAt: start + 946080000_000 });
  await setRecordState(temp.kv, soon, "retrying", { ...fields, dueAt: start + 600_000 });

  const runs = new Map<string, number>();
  const worker = createWorker({
    store,
    dispatcher: countingDispatcher(runs),
    logger: silentLogger,
    clock,
  });
  worker.start();
  await advanceUntil(clock, () => allDone(temp.kv, [infinite, decades]), "the parked ones done");
  assert.ok(clock.now() - start < 60_000, "they ran at once");
  assert.equal((await record(temp.kv, infinite))?.attempts, 2);
  assert.equal((await record(temp.kv, decades))?.attempts, 2);
  const waiting = await record(temp.kv, soon);
  assert.equal(waiting?.state, "retrying", "a retry within the longest delay keeps its time");
  assert.equal(waiting?.dueAt, start + 600_000);
  await worker.stop(1_000);
  assert.deepEqual([runs.get(infinite), runs.get(decades), runs.get(soon)], [1, 1, undefined]);
});
