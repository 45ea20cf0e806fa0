/**
 * The one timeout: `within()` gives a promise's value, or another value once time runs out or a
 * signal aborts, and leaves no timer behind (the test sanitizers fail a test that does).
 *
 * @module
 */
import assert from "node:assert/strict";
import { within } from "../src/ops/timeout.ts";

/** A promise that never settles, like a hung read. */
const never = (): Promise<never> => new Promise<never>(() => {});

/**
 * Counts the timers started and not yet fired or cleared while `body` runs, by wrapping the global
 * `setTimeout` and `clearTimeout` (`within()` reads them when called).
 */
async function pendingTimersAfter(body: () => Promise<void>): Promise<number> {
  const { setTimeout: realSet, clearTimeout: realClear } = globalThis;
  type Timer = ReturnType<typeof setTimeout>;
  const pending = new Set<Timer>();
  globalThis.setTimeout = ((callback: () => void, ms?: number): Timer => {
    const id = realSet(() => {
      pending.delete(id);
      callback();
    }, ms);
    pending.add(id);
    return id;
  }) as unknown as typeof setTimeout;
  globalThis.clearTimeout = ((id?: Timer): void => {
    if (id !== undefined) pending.delete(id);
    realClear(id);
  }) as typeof clearTimeout;
  try {
    await body();
  } finally {
    globalThis.setTimeout = realSet;
    globalThis.clearTimeout = realClear;
    for (const id of pending) realClear(id);
  }
  return pending.size;
}

Deno.test("within() gives the promise's value when it settles in time, and clears its timer", async () => {
  const pending = await pendingTimersAfter(async () => {
    let settle: (value: string) => void = () => {};
    const work = new Promise<string>((resolve) => (settle = resolve));
    const waiting = within(work, 60_000, { otherwise: "late" });
    settle("done");
    assert.equal(await waiting, "done");
  });
  assert.equal(pending, 0, "no timer left running");
});

Deno.test("within() gives otherwise once ms have passed, not before", async () => {
  const ms = 50;
  const started = performance.now();
  assert.equal(await within(never(), ms, { otherwise: "late" }), "late");
  const waitedMs = performance.now() - started;
  // Timers may fire a millisecond early by this clock.
  assert.ok(waitedMs >= ms - 2, `waited ${waitedMs} ms of ${ms}`);
});

Deno.test("within() gives undefined when no otherwise is given", async () => {
  assert.equal(await within(never(), 1), undefined);
});

Deno.test("within() gives a promise already settled even with no time at all", async () => {
  assert.equal(await within(Promise.resolve("ready"), 0, { otherwise: "late" }), "ready");
});

Deno.test("within() throws the promise's rejection", async () => {
  const failing = Promise.reject(new Error("Cannot read: connection reset"));
  await assert.rejects(within(failing, 60_000), { message: "Cannot read: connection reset" });
});

Deno.test("within() gives otherwise as soon as the signal aborts", async () => {
  const stopping = new AbortController();
  const ms = 2_000;
  const started = performance.now();
  const pending = await pendingTimersAfter(async () => {
    const waiting = within(never(), ms, { otherwise: "stopped", signal: stopping.signal });
    stopping.abort();
    assert.equal(await waiting, "stopped");
  });
  const waitedMs = performance.now() - started;
  assert.ok(waitedMs < ms / 2, `the abort ended the wait, not the timer (${waitedMs} ms)`);
  assert.equal(pending, 0, "no timer left running");
});

Deno.test("within() with an aborted signal gives otherwise without waiting for the promise", async () => {
  const stopped = AbortSignal.abort();
  const ready = Promise.resolve("ready");
  assert.equal(await within(ready, 60_000, { otherwise: "stopped", signal: stopped }), "stopped");
});

Deno.test("within() leaves the signal as it found it once the promise wins", async () => {
  const stopping = new AbortController();
  const { signal } = stopping;
  let added = 0;
  let removed = 0;
  const addEventListener = signal.addEventListener.bind(signal);
  const removeEventListener = signal.removeEventListener.bind(signal);
  signal.addEventListener = (...args: Parameters<AbortSignal["addEventListener"]>) => {
    added++;
    addEventListener(...args);
  };
  signal.removeEventListener = (...args: Parameters<AbortSignal["removeEventListener"]>) => {
    removed++;
    removeEventListener(...args);
  };
  assert.equal(await within(Promise.resolve(1), 60_000, { signal }), 1);
  assert.deepEqual({ added, removed }, { added: 1, removed: 1 });
});
