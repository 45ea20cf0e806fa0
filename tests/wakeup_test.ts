import assert from "node:assert/strict";
import { ManualClock } from "../src/ops/clock.ts";
import { createWakeup } from "../src/ops/wakeup.ts";

Deno.test("a wake-up ends the sleep under way, and one before a sleep keeps it from starting", async () => {
  const clock = new ManualClock();
  const wakeup = createWakeup(clock);
  let isDone = false;
  const sleeping = wakeup.sleep(60_000).then(() => (isDone = true));
  await clock.advance(1_000);
  assert.equal(isDone, false, "still asleep");
  wakeup.wake();
  await sleeping;
  assert.deepEqual(clock.pendingSleeps(), [], "its timer is cancelled");
  // Still woken: the next sleep returns at once, until the round clears it.
  await wakeup.sleep(60_000);
  assert.equal(wakeup.isWoken(), true);
  wakeup.clear();
  assert.equal(wakeup.isWoken(), false);
  let isLate = false;
  const next = wakeup.sleep(5_000).then(() => (isLate = true));
  await clock.advance(4_999);
  assert.equal(isLate, false);
  await clock.advance(1);
  await next;
  assert.equal(isLate, true, "without a wake-up it sleeps its whole time");
});
