/** `ops/deadlines.ts`: many deadlines on one timer, called once, never early, never once cancelled. */
import assert from "node:assert/strict";
import { createDeadlines, timerDeadlines } from "../src/ops/deadlines.ts";
import { waitFor } from "./support.ts";

Deno.test("a shared deadline is called once, not before its time; a cancelled one never", async () => {
  const deadlines = createDeadlines(5);
  const calledAt = new Map<string, number[]>();
  const start = performance.now();
  const note = (name: string) => () =>
    calledAt.set(name, [...calledAt.get(name) ?? [], performance.now() - start]);
  deadlines.after(30, note("30 ms"));
  deadlines.after(0, note("at once"));
  const cancel = deadlines.after(20, note("cancelled"));
  deadlines.after(60, note("60 ms"));
  cancel();
  await waitFor(() => calledAt.has("60 ms"), "the last deadline");
  await new Promise((resolve) => setTimeout(resolve, 30)); // any second call would come by now
  assert.deepEqual([...calledAt.keys()].toSorted(), ["30 ms", "60 ms", "at once"]);
  for (const [name, times] of calledAt) assert.equal(times.length, 1, `${name} called once`);
  assert.ok(calledAt.get("30 ms")![0]! >= 30, `30 ms deadline at ${calledAt.get("30 ms")}`);
  assert.ok(calledAt.get("60 ms")![0]! >= 60, `60 ms deadline at ${calledAt.get("60 ms")}`);
});

Deno.test("a hundred shared deadlines arm one timer at a time", async () => {
  const realSetTimeout = globalThis.setTimeout;
  let timersSet = 0;
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    timersSet++;
    return realSetTimeout(...args);
  }) as typeof setTimeout;
  try {
    const deadlines = createDeadlines(10);
    let called = 0;
    for (let i = 0; i < 100; i++) deadlines.after(20 + (i % 5), () => called++);
    const cancels = Array.from({ length: 50 }, () => deadlines.after(1_000, () => called++));
    await waitFor(() => called === 100, "the hundred deadlines");
    cancels.forEach((cancel) => cancel());
    await new Promise((resolve) => realSetTimeout(resolve, 30));
    assert.equal(called, 100);
    // One timer per 10 ms tick while any deadline waited, not one per deadline.
    assert.ok(timersSet < 20, `${timersSet} timers set for 150 deadlines`);
  } finally {
    globalThis.setTimeout = realSetTimeout;
  }
});

Deno.test("timerDeadlines calls a deadline on its own timer, and cancels it", async () => {
  let called = 0;
  timerDeadlines.after(10, () => called++);
  const cancel = timerDeadlines.after(10, () => called += 10);
  cancel();
  await waitFor(() => called > 0, "the deadline");
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(called, 1);
});

Deno.test("a shared deadline whose callback throws neither stops the others nor later ones", async () => {
  const deadlines = createDeadlines(5);
  const reported: unknown[] = [];
  const onError = (event: ErrorEvent): void => {
    event.preventDefault();
    reported.push(event.error);
  };
  globalThis.addEventListener("error", onError);
  try {
    let called = 0;
    deadlines.after(0, () => {
      throw new Error("callback failed");
    });
    deadlines.after(0, () => called++);
    await waitFor(() => called === 1, "the deadline beside the failing one");
    deadlines.after(5, () => called++);
    await waitFor(() => called === 2, "a deadline set afterwards");
    assert.equal(reported.length, 1);
    assert.match(String(reported[0]), /callback failed/);
  } finally {
    globalThis.removeEventListener("error", onError);
  }
});
