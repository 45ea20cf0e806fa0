/**
 * The one backoff: a ceiling that doubles up to a limit, and the share of it left to chance.
 *
 * @module
 */
import assert from "node:assert/strict";
import { backoffMs } from "../src/ops/backoff.ts";

const LIMITS = { baseDelayMs: 1_000, maxDelayMs: 6_000 };

Deno.test("backoffMs() doubles its ceiling with each retry, up to maxDelayMs", () => {
  const fixed = [0, 1, 2, 3, 10].map((retry) =>
    backoffMs(retry, { ...LIMITS, jitter: 0, random: () => 0.999 })
  );
  assert.deepEqual(fixed, [1_000, 2_000, 4_000, 6_000, 6_000]);
});

Deno.test("backoffMs() with full jitter draws from zero to just below the ceiling", () => {
  const full = (random: number): number[] =>
    [0, 1, 2, 3].map((retry) => backoffMs(retry, { ...LIMITS, jitter: 1, random: () => random }));
  assert.deepEqual(full(0), [0, 0, 0, 0]);
  assert.deepEqual(full(0.5), [500, 1_000, 2_000, 3_000]);
  assert.deepEqual(full(0.999999), [999, 1_999, 3_999, 5_999]);
});

Deno.test("backoffMs() with half jitter keeps half of the ceiling fixed", () => {
  const half = (random: number): number[] =>
    [0, 1, 3].map((retry) => backoffMs(retry, { ...LIMITS, jitter: 0.5, random: () => random }));
  assert.deepEqual(half(0), [500, 1_000, 3_000]);
  assert.deepEqual(half(0.5), [750, 1_500, 4_500]);
  assert.deepEqual(half(0.999999), [999, 1_999, 5_999]);
});

Deno.test("backoffMs() waits in whole milliseconds, rounded down", () => {
  const options = { baseDelayMs: 3, maxDelayMs: 100, jitter: 0.5, random: () => 0.5 };
  assert.equal(backoffMs(0, options), 2, "1.5 + 0.75 ms");
  assert.equal(backoffMs(0, { ...options, jitter: 1, random: () => 0.9 }), 2, "2.7 ms");
});

Deno.test("backoffMs() draws one random number per delay", () => {
  let draws = 0;
  const random = (): number => (draws++, 0.25);
  assert.equal(backoffMs(1, { ...LIMITS, jitter: 1, random }), 500);
  assert.equal(draws, 1);
});
