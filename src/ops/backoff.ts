/**
 * The one exponential backoff of the service. The Graph client (a few quick retries of one call),
 * the worker (an event's runs, hours apart) and the Deno KV store (a locked database, milliseconds)
 * all wait with it, so a change to how retries spread is made once; each caller says how much of a
 * delay is left to chance.
 *
 * @module
 */

/** What {@linkcode backoffMs} needs. */
export interface BackoffOptions {
  /** The ceiling of the first retry's delay, in milliseconds; it doubles with each retry. */
  baseDelayMs: number;
  /** No ceiling exceeds this, in milliseconds. */
  maxDelayMs: number;
  /**
   * The share of the ceiling drawn at random, from 0 to 1; the rest is waited in full. 1 (full
   * jitter) spreads callers that failed together across the whole window; 0.5 keeps half of each
   * delay fixed, so delays keep growing while they spread.
   */
  jitter: number;
  /** Returns a number in [0, 1), as `Math.random` does. */
  random: () => number;
}

/**
 * The wait before retry number `retry` (0 for the first retry), in whole milliseconds:
 * `floor(ceiling * (1 - jitter) + random() * ceiling * jitter)`, where the ceiling is
 * `min(maxDelayMs, baseDelayMs * 2 ** retry)`. It is never negative and, while `random()` stays
 * below 1, always below the ceiling when `jitter` is more than 0.
 */
export function backoffMs(retry: number, options: BackoffOptions): number {
  const { baseDelayMs, maxDelayMs, jitter, random } = options;
  const ceilingMs = Math.min(maxDelayMs, baseDelayMs * 2 ** retry);
  return Math.floor(ceilingMs * (1 - jitter) + random() * ceilingMs * jitter);
}
