/**
 * How many delivery jobs a deliverer holds ahead of its slots (queued under their leases, in
 * flight, or being settled): what its slots send in {@linkcode HOLD_MS} at the recent pace, at
 * least {@linkcode CLAIM_AHEAD} rounds of its concurrency, at most {@linkcode MAX_HELD}. A claim
 * lists, reads and commits its jobs while the slots wait; holding too few left a consumer
 * answering at once idle between claims, holding many for a slow consumer would keep them waiting
 * under leases that run out.
 *
 * @module
 */

/**
 * Jobs held at least, in `concurrency`s: one claim commit feeds several rounds of attempts even
 * before the pace is known or when attempts are slow (claiming only the free slots cost a commit
 * per few attempts).
 */
export const CLAIM_AHEAD = 4;

/**
 * How long the jobs held should last at the recent pace, ms: several claims' commits on a busy
 * machine, so a consumer answering at once never waits for the store, and short enough that a
 * queued job's lease (at least `LEASE_MS`) needs no extension.
 */
export const HOLD_MS = 100;

/** Jobs held at most however fast attempts end (unless `CLAIM_AHEAD` rounds are more). */
export const MAX_HELD = 256;

/** Weight of the latest attempt in the recent pace (an exponential moving average). */
const PACE_WEIGHT = 0.2;

/**
 * How many jobs a deliverer with `concurrency` slots holds at most when its attempts have lately
 * taken `attemptMs` each (`undefined` before the first).
 */
export function jobsToHold(concurrency: number, attemptMs: number | undefined): number {
  const least = concurrency * CLAIM_AHEAD;
  if (attemptMs === undefined) return least;
  const paced = Math.floor((concurrency * HOLD_MS) / attemptMs);
  return Math.max(least, Math.min(MAX_HELD, paced));
}

/**
 * The recent pace after an attempt that took `tookMs`: a moving average of the attempts'
 * durations, ms, from `attemptMs` (`undefined` before the first attempt).
 */
export function nextPace(attemptMs: number | undefined, tookMs: number): number {
  return attemptMs === undefined ? tookMs : attemptMs + (tookMs - attemptMs) * PACE_WEIGHT;
}
