/** The token bucket per phone number id and the per-recipient turns and spacing. */

import assert from "node:assert/strict";
import { ManualClock } from "../src/ops/clock.ts";
import { createRateLimiter, pairSpacingMs } from "../src/graph/rate_limit.ts";

Deno.test("pairSpacingMs() follows Meta's 4^X seconds advice, capped at 64 s", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 9].map(pairSpacingMs), [
    0,
    1000,
    4000,
    16_000,
    64_000,
    64_000,
    64_000,
  ]);
});

Deno.test("acquire() refills the bucket with time and keeps numbers apart", async () => {
  const clock = new ManualClock();
  const limiter = createRateLimiter({ clock, messagesPerSecond: 10 });
  for (let i = 0; i < 10; i++) await limiter.acquire("A");

  const waiting = limiter.acquire("A");
  assert.deepEqual(clock.pendingSleeps(), [100]);
  await limiter.acquire("B"); // another number has its own full bucket
  await clock.advance(100);
  await waiting;

  await clock.advance(500); // idle: five tokens back
  for (let i = 0; i < 5; i++) await limiter.acquire("A");
  const sixth = limiter.acquire("A");
  assert.deepEqual(clock.pendingSleeps(), [100]);
  await clock.advance(100);
  await sixth;
});

Deno.test("acquire() gives back the token of a caller that aborts while waiting", async () => {
  const clock = new ManualClock();
  const limiter = createRateLimiter({ clock, messagesPerSecond: 1 });
  await limiter.acquire("A");
  const controller = new AbortController();
  const aborted = limiter.acquire("A", controller.signal);
  controller.abort(new Error("stop"));
  await assert.rejects(aborted, /stop/);

  const next = limiter.acquire("A");
  assert.deepEqual(clock.pendingSleeps(), [1000]);
  await clock.advance(1000);
  await next;
});

Deno.test("takeTurn() lets calls to one recipient go one at a time, in order", async () => {
  const clock = new ManualClock();
  const limiter = createRateLimiter({ clock, messagesPerSecond: 80 });
  const order: string[] = [];

  const first = await limiter.takeTurn("A", "user");
  const second = limiter.takeTurn("A", "user").then((turn) => {
    order.push("second");
    return turn;
  });
  const elsewhere = await limiter.takeTurn("A", "other user");
  order.push("elsewhere");
  await clock.advance(0);
  assert.deepEqual(order, ["elsewhere"]);

  first.release();
  (await second).release();
  elsewhere.release();
  assert.deepEqual(order, ["elsewhere", "second"]);
});

Deno.test("takeTurn() lets the next caller through when a waiting caller aborts", async () => {
  const clock = new ManualClock();
  const limiter = createRateLimiter({ clock, messagesPerSecond: 80 });
  const first = await limiter.takeTurn("A", "user");
  const controller = new AbortController();
  const aborted = limiter.takeTurn("A", "user", controller.signal);
  const third = limiter.takeTurn("A", "user");
  controller.abort(new Error("stop"));
  await assert.rejects(aborted, /stop/);

  first.release();
  (await third).release();
});

Deno.test("a pair rate error spaces the recipient, and each accepted send steps the spacing down", async () => {
  const clock = new ManualClock();
  const limiter = createRateLimiter({ clock, messagesPerSecond: 80 });
  const start = clock.now();
  const turn = await limiter.takeTurn("A", "user");
  await turn.waitForSpacing();
  assert.equal(turn.recordPairRateLimit(), 1000);
  assert.equal(turn.recordPairRateLimit(), 4000);
  const waiting = turn.waitForSpacing();
  assert.deepEqual(clock.pendingSleeps(), [4000]);
  await clock.advance(4000);
  await waiting;
  turn.recordDelivered(); // spacing steps down from 4 s to 1 s, after waiting out 4 s
  turn.release();

  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const next = await limiter.takeTurn("A", "user");
    const spaced = next.waitForSpacing();
    const pending = clock.pendingSleeps();
    if (pending.length > 0) await clock.advance(pending[0]!);
    await spaced;
    times.push(clock.now() - start);
    next.recordDelivered();
    next.release();
  }
  assert.deepEqual(times, [8000, 9000, 9000]);
});
