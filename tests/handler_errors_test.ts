/**
 * How the worker honours the errors of `handler_errors.ts`: a `PermanentError` dead-letters the
 * event at once, a `RetryLaterError` sets the least wait before the retry.
 */
import assert from "node:assert/strict";
import { ManualClock } from "../src/ops/clock.ts";
import { Dispatcher } from "../src/dispatch/dispatcher.ts";
import { PermanentError, RetryLaterError } from "../src/dispatch/handler_errors.ts";
import { createWorker } from "../src/dispatch/worker.ts";
import { parseDelivery } from "../src/events/events.ts";
import { silentLogger } from "../src/ops/log.ts";
import { deadLetterKey, eventKey, type KvEventRecord } from "../src/store/kv/keys.ts";
import { advanceUntil, kvStore, openTempKv, waitFor } from "./support.ts";
import { textsDelivery } from "./deliveries.ts";

const WAMID = "wamid.HANDLERERR1";
const EVENT_ID = `message:${WAMID}`;

/** Records the delivery's event and runs a worker over it with `dispatcher`. */
async function runWorker(
  kv: Deno.Kv,
  clock: ManualClock,
  dispatcher: Dispatcher,
  maxDelayMs?: number,
): Promise<{ stop: () => Promise<void> }> {
  const { events } = parseDelivery(JSON.parse(textsDelivery([WAMID])));
  const store = kvStore(kv, { dedupTtlMs: 1e9, retentionMs: 1e9, logger: silentLogger });
  await store.recordEvents(events, { now: clock.now() });
  const worker = createWorker({
    store,
    dispatcher,
    logger: silentLogger,
    clock,
    random: () => 0,
    retry: { maxAttempts: 5, baseDelayMs: 1_000, ...(maxDelayMs ? { maxDelayMs } : {}) },
  });
  worker.start();
  return { stop: () => worker.stop(1_000) };
}

async function record(kv: Deno.Kv): Promise<KvEventRecord | null> {
  return (await kv.get<KvEventRecord>(eventKey(EVENT_ID))).value;
}

Deno.test("a handler throwing PermanentError is dead-lettered on its first attempt", async () => {
  await using temp = await openTempKv();
  const clock = new ManualClock();
  const calls: string[] = [];
  const dispatcher = new Dispatcher()
    .on("message", () => {
      calls.push("refuse");
      throw new PermanentError("Cannot send (recipient, not retried): outside the window");
    }, { name: "refuse" })
    .on("message", () => void calls.push("audit"), { name: "audit" });
  const worker = await runWorker(temp.kv, clock, dispatcher);

  await waitFor(async () => (await record(temp.kv))?.state === "dead", "dead");
  await worker.stop();
  const dead = await record(temp.kv);
  assert.equal(dead?.attempts, 1, "not retried although 5 attempts are allowed");
  assert.equal(dead?.dueAt, null);
  assert.equal(dead?.lastError, "refuse: Cannot send (recipient, not retried): outside the window");
  assert.deepEqual(dead?.completedHandlers, ["audit"], "the other handler still ran");
  assert.deepEqual(calls, ["refuse", "audit"]);
  assert.equal((await temp.kv.get(deadLetterKey(dead!.receivedAt, EVENT_ID))).value, EVENT_ID);
});

Deno.test("a handler throwing RetryLaterError is retried no earlier than it asked", async () => {
  await using temp = await openTempKv();
  const clock = new ManualClock();
  const start = clock.now();
  let runs = 0;
  const dispatcher = new Dispatcher().on("message", () => {
    runs++;
    if (runs === 1) throw new RetryLaterError("Throttled", 120_000);
  }, { name: "throttled" });
  const worker = await runWorker(temp.kv, clock, dispatcher);

  await waitFor(async () => (await record(temp.kv))?.state === "retrying", "retrying");
  // The worker's own backoff is 500 ms here (random 0); the error asked for 2 minutes.
  assert.equal((await record(temp.kv))?.dueAt, start + 120_000);
  await clock.advance(119_999);
  assert.equal(runs, 1, "not run a millisecond early");
  // The worker may register its next sleep after an advance returns: step until it has run.
  await waitFor(async () => {
    if ((await record(temp.kv))?.state === "done") return true;
    await clock.advance(1);
    return false;
  }, "done");
  await worker.stop();
  assert.equal(runs, 2);
  const secondRunAt = (await record(temp.kv))?.history[1]?.at ?? 0;
  assert.ok(secondRunAt >= start + 120_000, `second run at +${secondRunAt - start} ms`);
});

Deno.test("a RetryLaterError shorter than the backoff leaves the backoff in force", async () => {
  await using temp = await openTempKv();
  const clock = new ManualClock();
  const start = clock.now();
  const dispatcher = new Dispatcher().on("message", () => {
    throw new RetryLaterError("Throttled", 10);
  }, { name: "throttled" });
  const worker = await runWorker(temp.kv, clock, dispatcher);
  await waitFor(async () => (await record(temp.kv))?.state === "retrying", "retrying");
  await worker.stop();
  assert.equal((await record(temp.kv))?.dueAt, start + 500); // 1000 / 2 + 0 * 1000 / 2
});

Deno.test("RetryLaterError keeps a finite wait of 0 or more, whatever it is given", () => {
  const waits = [Infinity, 1e15, NaN, -Infinity, -5, 2_000].map((wait) =>
    new RetryLaterError("Throttled", wait).retryAfterMs
  );
  assert.deepEqual(waits, [Number.MAX_SAFE_INTEGER, 1e15, 0, 0, 0, 2_000]);
});

// A custom handler's wait that would park the event for ever, for decades, or as a NaN key.
for (
  const [label, wait, delay] of [
    ["Infinity", Infinity, 60_000], // cut to maxDelayMs
    ["1e15 (year 33,700)", 1e15, 60_000],
    ["NaN", NaN, 500], // no wait asked: the backoff, 1000 / 2 + 0 * 1000 / 2
  ] as const
) {
  Deno.test(`a RetryLaterError asking ${label} is retried within the longest delay, and counted`, async () => {
    await using temp = await openTempKv();
    const clock = new ManualClock();
    const start = clock.now();
    let runs = 0;
    const dispatcher = new Dispatcher().on("message", () => {
      runs++;
      if (runs === 1) throw new RetryLaterError("Throttled", wait);
    }, { name: "throttled" });
    const worker = await runWorker(temp.kv, clock, dispatcher, 60_000);

    await waitFor(async () => (await record(temp.kv))?.state === "retrying", "retrying");
    const retrying = await record(temp.kv);
    assert.equal(retrying?.dueAt, start + delay);
    assert.equal(retrying?.attempts, 1);
    await clock.advance(delay - 1);
    assert.equal(runs, 1, "not run before its due time");
    await advanceUntil(clock, async () => (await record(temp.kv))?.state === "done", "done");
    await worker.stop();
    assert.equal(runs, 2);
    assert.equal((await record(temp.kv))?.attempts, 2);
  });
}
