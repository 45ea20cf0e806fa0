/**
 * The sweep job: registered with `Deno.cron` (a fake here), it waits for the service to start,
 * wakes the worker and waits, bounded, until nothing is due or running.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ManualClock, systemClock } from "../src/ops/clock.ts";
import { Dispatcher } from "../src/dispatch/dispatcher.ts";
import {
  type CronFunction,
  registerSweepCron,
  SWEEP_CRON_NAME,
  SWEEP_SCHEDULE,
  sweepDueEvents,
} from "../src/dispatch/sweep.ts";
import { createWorker } from "../src/dispatch/worker.ts";
import { parseDelivery } from "../src/events/events.ts";
import { silentLogger } from "../src/ops/log.ts";
import type { Store } from "../src/store/store.ts";
import { textDelivery } from "./signed_deliveries.ts";
import { advanceUntil, captureLogs, kvStore, openTempKv, waitFor } from "./support.ts";

/** A stand-in for `Deno.cron` that keeps what it was given; `fire()` runs the job like a tick. */
function fakeCron() {
  const calls: { name: string; schedule: string; signal?: AbortSignal }[] = [];
  let handler: (() => Promise<void>) | undefined;
  const cron: CronFunction = (name, schedule, options, run) => {
    calls.push({ name, schedule, ...(options.signal ? { signal: options.signal } : {}) });
    handler = run;
    return new Promise((resolve) => options.signal?.addEventListener("abort", () => resolve()));
  };
  return {
    cron,
    calls,
    fire: (): Promise<void> => {
      assert.ok(handler, "a job was registered");
      return handler();
    },
  };
}

/**
 * How long a test waits for a tick that must end, in real time: far above the waits the tests
 * configure (200 ms at most), and far below the minute a tick would otherwise wait.
 */
const TEST_BOUND_MS = 10_000;

/** `promise`, failing the test when it has not settled within {@linkcode TEST_BOUND_MS}. */
async function withinTestBound<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out after ${TEST_BOUND_MS} ms waiting for ${what}`)),
      TEST_BOUND_MS,
    );
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Records text messages without waking any worker: as intake did while the isolate slept. */
async function recordWhileAsleep(store: Store, n: number, now: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const delivery = await textDelivery(i, "SWEEP");
    const { events } = parseDelivery(JSON.parse(new TextDecoder().decode(delivery.body)));
    await store.recordEvents(events, { now });
    ids.push(delivery.id);
  }
  return ids;
}

async function stateOf(store: Store, id: string): Promise<string | undefined> {
  return (await store.getEvent(id))?.record.state;
}

/** The Deno KV store over `kv`, its records living long. */
function storeOn(kv: Deno.Kv): Store {
  return kvStore(kv, { dedupTtlMs: 1e9, retentionMs: 1e9, logger: silentLogger });
}

Deno.test("registerSweepCron() registers nothing where Deno.cron is missing", async () => {
  const sweep = registerSweepCron(undefined, { checkEveryMs: 1, maxMs: 10 });
  assert.equal(sweep.isRegistered, false);
  // A target that records every use: with no job, connect() hands it to nothing that sweeps.
  const used: string[] = [];
  const store = new Proxy({}, {
    get: (_, name) => {
      used.push(`store.${String(name)}`);
      return undefined;
    },
  }) as Store;
  sweep.connect({
    store,
    worker: { wake: () => void used.push("wake"), running: () => (used.push("running"), 0) },
    clock: systemClock,
    logger: silentLogger,
  });
  // A turn of the event loop: a sweep connect() had started would have read the store by then.
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(used, []);
  sweep.stop();
  sweep.stop(); // stopping twice is harmless
  assert.equal(sweep.isRegistered, false);
});

Deno.test("registerSweepCron() registers one job every minute, unregistered by stop()", () => {
  const fake = fakeCron();
  const sweep = registerSweepCron(fake.cron);
  assert.equal(sweep.isRegistered, true);
  assert.equal(fake.calls.length, 1);
  assert.equal(fake.calls[0]?.name, SWEEP_CRON_NAME);
  assert.equal(fake.calls[0]?.name, "wa-webhook sweep");
  assert.equal(fake.calls[0]?.schedule, SWEEP_SCHEDULE);
  assert.equal(SWEEP_SCHEDULE, "* * * * *");
  assert.equal(fake.calls[0]?.signal?.aborted, false);
  sweep.stop();
  assert.equal(fake.calls[0]?.signal?.aborted, true);
});

Deno.test("a cron tick runs the events recorded while the worker slept", async () => {
  await using temp = await openTempKv();
  const store = storeOn(temp.kv);
  const clock = new ManualClock();
  const runs = new Map<string, number>();
  const worker = createWorker({
    store,
    dispatcher: new Dispatcher().on("message", ({ event }) => {
      runs.set(event.id, (runs.get(event.id) ?? 0) + 1);
    }, { name: "count" }),
    logger: silentLogger,
    clock,
    // An isolate that sleeps: its own poll never comes round during the test.
    pollIntervalMs: 3_600_000,
  });
  worker.start();
  const fake = fakeCron();
  const logs = captureLogs();
  const sweep = registerSweepCron(fake.cron, { checkEveryMs: 10, maxMs: 5_000 });
  sweep.connect({ store, worker, clock, logger: logs.logger });
  // The worker's first round found nothing: it sleeps for its poll interval.
  await waitFor(
    () => clock.pendingSleeps().includes(3_600_000),
    "the worker asleep for its poll interval",
  );
  const ids = await recordWhileAsleep(store, 3, clock.now());
  // Time stands still, so nothing but a wake can end that sleep: the events wait.
  assert.deepEqual(await Promise.all(ids.map((id) => stateOf(store, id))), [
    "pending",
    "pending",
    "pending",
  ]);
  assert.deepEqual([...runs.values()], []);

  let isSwept = false;
  const tick = fake.fire().then(() => void (isSwept = true));
  // The sweep checks every 10 ms of the manual clock until it has seen the worker idle twice.
  await advanceUntil(clock, () => Promise.resolve(isSwept), "the tick to return", 10);
  await tick;

  // The tick returned once the worker had caught up: every event ran once.
  assert.deepEqual(await Promise.all(ids.map((id) => stateOf(store, id))), [
    "done",
    "done",
    "done",
  ]);
  assert.deepEqual([...runs.values()], [1, 1, 1]);
  const line = logs.lines.find((l) => l.msg === "sweep");
  assert.equal(line?.level, "info");
  assert.equal(line?.due, 3);
  assert.equal(line?.isIdle, true);
  sweep.stop();
  await worker.stop(1_000);
});

Deno.test("a cron tick before the service started waits for it, then sweeps", async () => {
  await using temp = await openTempKv();
  const store = storeOn(temp.kv);
  const fake = fakeCron();
  const logs = captureLogs();
  const sweep = registerSweepCron(fake.cron, { checkEveryMs: 10, maxMs: 5_000 });
  let isSwept = false;
  // The platform started the isolate for this tick, before the service was up.
  const tick = fake.fire().then(() => void (isSwept = true));
  // A turn of the event loop: a tick that did not wait would have returned by then.
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(isSwept, false, "the tick waits for the service");
  assert.deepEqual(logs.lines, []);

  let wakes = 0;
  sweep.connect({
    store,
    worker: { wake: () => void wakes++, running: () => 0 },
    clock: systemClock,
    logger: logs.logger,
  });
  await tick;
  assert.ok(wakes >= 1, "the worker was woken");
  // Nothing was due and nothing ran: the sweep says so at debug level.
  assert.deepEqual(
    logs.lines.map(({ level, msg, due, isIdle }) => ({ level, msg, due, isIdle })),
    [{ level: "debug", msg: "sweep", due: 0, isIdle: true }],
  );
  sweep.stop();
});

Deno.test("a cron tick gives up waiting for a service that never starts, after maxMs", async () => {
  const maxMs = 200;
  const fake = fakeCron();
  const sweep = registerSweepCron(fake.cron, { maxMs });
  const started = performance.now();
  await withinTestBound(fake.fire(), "the tick to give up");
  const ms = performance.now() - started;
  // Timers may fire a millisecond early by this clock; a noisy machine may make them late.
  assert.ok(ms >= maxMs - 2, `the tick waited its ${maxMs} ms (${ms} ms)`);
  assert.ok(ms < TEST_BOUND_MS, `the tick gave up in ${ms} ms`);
  sweep.stop();
});

Deno.test("stop() ends a cron tick waiting for the service, and later ticks return at once", async () => {
  const fake = fakeCron();
  // A tick that would wait a minute for the service.
  const sweep = registerSweepCron(fake.cron, { maxMs: 60_000 });
  const waiting = fake.fire();
  sweep.stop();
  await withinTestBound(waiting, "the waiting tick to end");
  await withinTestBound(fake.fire(), "a tick after stop() to return");
});

Deno.test("sweepDueEvents() stops waiting after maxMs while an event keeps running", async () => {
  await using temp = await openTempKv();
  const store = storeOn(temp.kv);
  const clock = new ManualClock();
  const ids = await recordWhileAsleep(store, 1, clock.now());
  let wakes = 0;
  const sweeping = sweepDueEvents({
    store,
    // A worker that never catches up: its run holds the event.
    worker: { wake: () => void wakes++, running: () => 1 },
    clock,
    logger: silentLogger,
  }, { maxMs: 1_000, checkEveryMs: 250 });
  const untilSleeping = () => waitFor(() => clock.pendingSleeps().length > 0, "a check's sleep");
  for (let i = 0; i < 4; i++) {
    await untilSleeping();
    await clock.advance(250);
  }
  const result = await sweeping;
  assert.deepEqual(result, { dueAtStart: 1, isIdle: false, ms: 1_000 });
  assert.ok(wakes >= 4, `woken on each check (${wakes})`);
  assert.equal(await stateOf(store, ids[0]!), "pending");
});
