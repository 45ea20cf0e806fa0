/**
 * Deliveries acknowledged per minute in this process, over the last hours: a ring of minute
 * counters, so the console's overview can chart what arrived beside the events the store holds.
 * Memory is fixed (one number a minute of the window); older minutes are forgotten as time moves.
 *
 * @module
 */

/** How far back the ring remembers: the console's chart window. */
export const DELIVERY_RATE_WINDOW_MS = 3 * 3_600_000;

/** One bar of the chart. */
export const DELIVERY_RATE_BUCKET_MS = 60_000;

/** Counts per minute over a window, oldest first, as the console's chart draws them. */
export interface RateSeries {
  /** The start of the first bucket, ms since the epoch. */
  startMs: number;
  bucketMs: number;
  counts: number[];
}

/** A ring of per-minute counts over {@linkcode DELIVERY_RATE_WINDOW_MS}. */
export class DeliveryRate {
  readonly #counts: number[];
  /** The minute (ms since the epoch / bucket) each slot counts, to forget stale slots. */
  readonly #minutes: number[];

  constructor() {
    const slots = DELIVERY_RATE_WINDOW_MS / DELIVERY_RATE_BUCKET_MS;
    this.#counts = new Array<number>(slots).fill(0);
    this.#minutes = new Array<number>(slots).fill(-1);
  }

  /** Counts one delivery at `now`. */
  record(now: number): void {
    const minute = Math.floor(now / DELIVERY_RATE_BUCKET_MS);
    const slot = minute % this.#counts.length;
    if (this.#minutes[slot] !== minute) [this.#minutes[slot], this.#counts[slot]] = [minute, 0];
    this.#counts[slot]!++;
  }

  /** The window ending with the minute of `now`, oldest minute first. */
  series(now: number): RateSeries {
    const slots = this.#counts.length;
    const last = Math.floor(now / DELIVERY_RATE_BUCKET_MS);
    const first = last - slots + 1;
    const counts = Array.from({ length: slots }, (_, i) => {
      const minute = first + i;
      const slot = minute % slots;
      return this.#minutes[slot] === minute ? this.#counts[slot]! : 0;
    });
    return { startMs: first * DELIVERY_RATE_BUCKET_MS, bucketMs: DELIVERY_RATE_BUCKET_MS, counts };
  }
}
