/** Backoff with full jitter and `Retry-After` parsing. */

import assert from "node:assert/strict";
import { backoffDelayMs, parseRetryAfter } from "../src/graph/retry.ts";

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
