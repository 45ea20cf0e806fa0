import assert from "node:assert/strict";
import { ManualClock, systemClock } from "../src/clock.ts";
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
import { silentLogger } from "../src/log.ts";
import { recordEvents } from "../src/store/inbox.ts";
import { eventKey, type EventRecord } from "../src/store/keys.ts";
import { textDelivery } from "./signed_deliveries.ts";
import { captureLogs, openTempKv, waitFor } from "./support.ts";

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

/** Records text messages without waking any worker: as intake did while the isolate slept. */
async function recordWhileAsleep(kv: Deno.Kv, n: number, now: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const delivery = await textDelivery(i, "SWEEP");
    const { events } = parseDelivery(JSON.parse(new TextDecoder().decode(delivery.body)));
    await recordEvents(kv, events, { now, dedupTtlMs: 1e9, retentionMs: 1e9 });
    ids.push(delivery.id);
  }
  return ids;
}

async function stateOf(kv: Deno.Kv, id: string): Promise<string | undefined> {
  return (await kv.get<EventRecord>(eventKey(id))).value?.state;
}

Deno.test("registerSweepCron() registers nothing where Deno.cron is missing", () => {
  const sweep = registerSweepCron(undefined);
  assert.equal(sweep.isRegistered, false);
  sweep.connect({
    kv: {} as Deno.Kv,
    worker: { wake: () => {}, running: () => 0 },
    clock: systemClock,
    logger: silentLogger,
  });
  sweep.stop();
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
  const runs = new Map<string, number>();
  const worker = createWorker({
    kv: temp.kv,
    dispatcher: new Dispatcher().on("message", ({ event }) => {
      runs.set(event.id, (runs.get(event.id) ?? 0) + 1);
    }, { name: "count" }),
    logger: silentLogger,
    clock: systemClock,
    // An isolate that sleeps: its own poll never comes round during the test.
    pollIntervalMs: 3_600_000,
  });
  worker.start();
  const fake = fakeCron();
  const logs = captureLogs();
  const sweep = registerSweepCron(fake.cron, { checkEveryMs: 10, maxMs: 5_000 });
  sweep.connect({ kv: temp.kv, worker, clock: systemClock, logger: logs.logger });
  // Let the worker's first round find nothing and go to sleep.
  await new Promise((resolve) => setTimeout(resolve, 50));
  const ids = await recordWhileAsleep(temp.kv, 3, Date.now());
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(await Promise.all(ids.map((id) => stateOf(temp.kv, id))), [
    "pending",
    "pending",
    "pending",
  ]);

  await fake.fire();

  // The tick returned once the worker had caught up: every event ran once.
  assert.deepEqual(await Promise.all(ids.map((id) => stateOf(temp.kv, id))), [
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
  const fake = fakeCron();
  const sweep = registerSweepCron(fake.cron, { checkEveryMs: 10, maxMs: 5_000 });
  let wakes = 0;
  const tick = fake.fire(); // the platform started the isolate for this tick
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(wakes, 0);
  sweep.connect({
    kv: temp.kv,
    worker: { wake: () => void wakes++, running: () => 0 },
    clock: systemClock,
    logger: silentLogger,
  });
  await tick;
  assert.ok(wakes >= 1, "the worker was woken");
  sweep.stop();
});

Deno.test("a cron tick gives up waiting for a service that never starts", async () => {
  const fake = fakeCron();
  const sweep = registerSweepCron(fake.cron, { maxMs: 20 });
  await fake.fire(); // returns: nothing to sweep with
  sweep.stop();
  await fake.fire(); // after stop() it returns at once
});

Deno.test("sweepDueEvents() stops waiting after maxMs while an event keeps running", async () => {
  await using temp = await openTempKv();
  const clock = new ManualClock();
  const ids = await recordWhileAsleep(temp.kv, 1, clock.now());
  let wakes = 0;
  const sweeping = sweepDueEvents({
    kv: temp.kv,
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
  assert.equal(await stateOf(temp.kv, ids[0]!), "pending");
});
