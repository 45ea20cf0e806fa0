/**
 * How long to wait before retrying a Graph API call: exponential backoff with full jitter, or the
 * wait a `Retry-After` header asks for.
 *
 * @module
 */

import { backoffMs } from "../ops/backoff.ts";

/** All of a delay drawn at random: spreading the callers that failed together matters most. */
const FULL_JITTER = 1;

/** Limits on retrying one call. */
export interface RetryOptions {
  /** Tries in all, the first included. */
  maxAttempts: number;
  /** The backoff ceiling of the first retry, in milliseconds; it doubles with each retry. */
  baseDelayMs: number;
  /** No backoff ceiling exceeds this, in milliseconds. */
  maxDelayMs: number;
  /**
   * No retry starts later than this after the first try, in milliseconds. A wait that would pass
   * it (a long `Retry-After`, say) ends the call with the last error instead.
   */
  maxTotalMs: number;
}

/**
 * Defaults: a few quick retries inside a minute. Longer outages are the worker's business: it
 * reschedules the job with the error's category.
 */
export const DEFAULT_RETRY_OPTIONS: Readonly<RetryOptions> = {
  maxAttempts: 5,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  maxTotalMs: 60_000,
};

/**
 * The wait before retry number `retry` (0 for the first retry), with full jitter:
 * `floor(random() * min(maxDelayMs, baseDelayMs * 2 ** retry))` ({@linkcode backoffMs} with
 * `jitter` 1). Full jitter spreads the retries of many callers that failed together across the
 * whole window.
 */
export function backoffDelayMs(
  retry: number,
  options: Pick<RetryOptions, "baseDelayMs" | "maxDelayMs">,
  random: () => number,
): number {
  const { baseDelayMs, maxDelayMs } = options;
  return backoffMs(retry, { baseDelayMs, maxDelayMs, jitter: FULL_JITTER, random });
}

/**
 * The longest wait a `Retry-After` header is read as: 2^31 seconds (about 68 years), the bound RFC
 * 9111 (section 1.2.2) gives delta-seconds too large to represent. Longer waits and later dates
 * read as this, so a wait is always finite and `now` plus it is still a valid `Date`.
 */
export const MAX_RETRY_AFTER_MS = 2 ** 31 * 1000;

/**
 * Reads a `Retry-After` header, either delta-seconds (`"2"`) or an HTTP date (relative to
 * `nowMs`). Returns milliseconds from 0 to {@linkcode MAX_RETRY_AFTER_MS}, or `undefined` when
 * the header is absent or unreadable. It is the wait asked for: callers cap it with their own
 * limits.
 */
export function parseRetryAfter(header: string | null, nowMs: number): number | undefined {
  if (header === null) return undefined;
  const value = header.trim();
  // 400 nines read as a number are `Infinity`: the cap keeps the wait finite.
  if (/^\d+$/.test(value)) return Math.min(MAX_RETRY_AFTER_MS, Number(value) * 1000);
  // An HTTP date always names its month; this keeps `Date.parse` from reading "-5" as a year.
  if (!/[A-Za-z]/.test(value)) return undefined;
  const dateMs = Date.parse(value);
  if (Number.isNaN(dateMs)) return undefined;
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, dateMs - nowMs));
}
