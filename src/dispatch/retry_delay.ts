/**
 * When a failed event runs again: the retry policy, the backoff between attempts and the wait a
 * `RetryLaterError` asks for, always finite and never past the policy's longest delay.
 *
 * @module
 */
import { DEFAULTS } from "../config.ts";
import { backoffMs } from "../ops/backoff.ts";
import type { RetryLaterError } from "./handler_errors.ts";

/** How handler failures are retried. */
export interface RetryPolicy {
  /** Runs of an event's handlers before it is dead-lettered (default 8). */
  maxAttempts: number;
  /** Delay before the first retry; doubled for each further one (default 1 s). */
  baseDelayMs: number;
  /**
   * Longest delay between two attempts (default 15 min), whatever a `RetryLaterError` (a Graph
   * API `Retry-After`, say) asked for: a longer wait is cut to this.
   */
  maxDelayMs: number;
}

/** Defaults of {@linkcode RetryPolicy}, the configuration's: 1 s, 2 s, … 15 min, 8 attempts. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: DEFAULTS.retryMaxAttempts,
  baseDelayMs: DEFAULTS.retryBaseDelayMs,
  maxDelayMs: DEFAULTS.retryMaxDelayMs,
};

/**
 * The share of a retry's delay drawn at random: half of it is fixed, so an event's delays keep
 * growing (1 s, then 2 s, …) while the retries of events that failed together spread.
 */
const RETRY_JITTER = 0.5;
/** What {@linkcode retryDelayMs} needs beside the attempt and the policy. */
export interface RetryDelayOptions {
  /** Returns a number in [0, 1) for jitter. */
  random: () => number;
  /** The longest wait a `RetryLaterError` of the run asked for; 0 for none. */
  retryAfterMs: number;
}

/**
 * The delay before the next attempt: the backoff, or the longest wait a `RetryLaterError` asked
 * for when that is longer, but never more than `maxDelayMs`, so it is always finite.
 */
export function retryDelayMs(
  attempt: number,
  policy: RetryPolicy,
  { random, retryAfterMs }: RetryDelayOptions,
): number {
  const { baseDelayMs, maxDelayMs } = policy;
  const backoff = backoffMs(attempt - 1, { baseDelayMs, maxDelayMs, jitter: RETRY_JITTER, random });
  const delay = Math.max(backoff, retryAfterMs);
  return Number.isNaN(delay) ? policy.maxDelayMs : Math.min(policy.maxDelayMs, Math.max(0, delay));
}

/**
 * The wait a `RetryLaterError` asks for, 0 or more; 0 when it is not a number (a subclass may
 * set its own `retryAfterMs`).
 */
export function waitAsked(error: RetryLaterError): number {
  const wait: unknown = error.retryAfterMs;
  return typeof wait === "number" && !Number.isNaN(wait) ? Math.max(0, wait) : 0;
}
