/** Backoff with full jitter and `Retry-After` parsing. */

import assert from "node:assert/strict";
import { backoffDelayMs, MAX_RETRY_AFTER_MS, parseRetryAfter } from "../src/graph/retry.ts";

const NOW = Date.UTC(2026, 0, 1);
const LIMITS = { baseDelayMs: 500, maxDelayMs: 4000 };

Deno.test("backoffDelayMs() draws from zero to a ceiling that doubles up to maxDelayMs", () => {
  const ceilings = [0, 1, 2, 3, 4, 10].map((retry) =>
    backoffDelayMs(retry, LIMITS, () => 0.999999)
  );
  assert.deepEqual(ceilings, [499, 999, 1999, 3999, 3999, 3999]);
  assert.equal(backoffDelayMs(3, LIMITS, () => 0), 0);
  assert.equal(backoffDelayMs(2, LIMITS, () => 0.5), 1000);
});

Deno.test("parseRetryAfter() reads delta-seconds and HTTP dates relative to now", () => {
  assert.equal(parseRetryAfter("2", NOW), 2000);
  assert.equal(parseRetryAfter(" 0 ", NOW), 0);
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:03 GMT", NOW), 3000);
  assert.equal(parseRetryAfter("Wed, 31 Dec 2025 23:59:00 GMT", NOW), 0, "a past date: no wait");
  assert.equal(parseRetryAfter(null, NOW), undefined);
  assert.equal(parseRetryAfter("soon", NOW), undefined);
  assert.equal(parseRetryAfter("-5", NOW), undefined);
});

Deno.test("parseRetryAfter() reads a huge wait as a finite one, capped at MAX_RETRY_AFTER_MS", () => {
  const huge = [
    "9".repeat(400), // `Number()` reads this as Infinity
    "999999999", // 31.7 years: under the cap, kept
    "99999999999", // 3,170 years
    "Fri, 31 Dec 9999 23:59:59 GMT",
  ];
  const waits = huge.map((header) => parseRetryAfter(header, NOW));
  assert.deepEqual(waits, [
    MAX_RETRY_AFTER_MS,
    999_999_999_000,
    MAX_RETRY_AFTER_MS,
    MAX_RETRY_AFTER_MS,
  ]);
  for (const wait of waits) {
    assert.ok(Number.isFinite(wait), `${wait} is finite`);
    // `now` plus the wait is still a date: its ISO string does not throw.
    assert.match(new Date(NOW + wait!).toISOString(), /^20\d\d-/);
  }
  // Past the last date `Date` can hold, a date is unreadable rather than far away.
  assert.equal(parseRetryAfter("Fri, 31 Dec 999999 23:59:59 GMT", NOW), undefined);
});
