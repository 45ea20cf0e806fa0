/**
 * `ops/delivery_rate.ts`: deliveries per minute over the last three hours, in a fixed ring that
 * forgets minutes older than its window.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  DELIVERY_RATE_BUCKET_MS,
  DELIVERY_RATE_WINDOW_MS,
  DeliveryRate,
} from "../src/ops/delivery_rate.ts";

const MINUTE = DELIVERY_RATE_BUCKET_MS;
const T0 = Date.UTC(2026, 11, 4, 12, 0, 0);

Deno.test("DeliveryRate counts deliveries per minute, oldest minute first, ending with now's", () => {
  const rate = new DeliveryRate();
  rate.record(T0 + 5_000);
  rate.record(T0 + 50_000);
  rate.record(T0 + MINUTE + 1);
  rate.record(T0 + 10 * MINUTE);
  const series = rate.series(T0 + 10 * MINUTE + 30_000);
  const slots = DELIVERY_RATE_WINDOW_MS / MINUTE;
  assert.equal(series.counts.length, slots);
  assert.equal(series.bucketMs, MINUTE);
  assert.equal(series.startMs, T0 + 10 * MINUTE - (slots - 1) * MINUTE);
  assert.deepEqual(series.counts.slice(-11), [2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  assert.equal(series.counts.reduce((a, b) => a + b, 0), 4);
});

Deno.test("DeliveryRate forgets minutes older than its window, even when their slot is reused", () => {
  const rate = new DeliveryRate();
  rate.record(T0);
  rate.record(T0);
  // Exactly one window later the same slot counts a new minute: the old two are gone.
  rate.record(T0 + DELIVERY_RATE_WINDOW_MS);
  const series = rate.series(T0 + DELIVERY_RATE_WINDOW_MS);
  assert.equal(series.counts.reduce((a, b) => a + b, 0), 1);
  assert.equal(series.counts.at(-1), 1);
  // Long after, nothing is left in the window.
  const later = rate.series(T0 + 3 * DELIVERY_RATE_WINDOW_MS);
  assert.equal(later.counts.reduce((a, b) => a + b, 0), 0);
});
