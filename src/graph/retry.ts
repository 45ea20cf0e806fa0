/**
 * How long to wait before retrying a Graph API call: exponential backoff with full jitter, or the
 * wait a `Retry-After` header asks for.
 *
 * @module
 */

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
 * `random() * min(maxDelayMs, baseDelayMs * 2 ** retry)`. Full jitter spreads the retries of
 * many callers that failed together across the whole window.
 */
export function backoffDelayMs(
  retry: number,
  options: Pick<RetryOptions, "baseDelayMs" | "maxDelayMs">,
  random: () => number,
): number {
  const ceilingMs = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** retry);
  return Math.floor(random() * ceilingMs);
}

/**
 * Reads a `Retry-After` header, either delta-seconds (`"2"`) or an HTTP date (relative to
 * `nowMs`, never negative). Returns milliseconds, or `undefined` when the header is absent or
 * unreadable.
 */
export function parseRetryAfter(header: string | null, nowMs: number): number | undefined {
  if (header === null) return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  // An HTTP date always names its month; this keeps `Date.parse` from reading "-5" as a year.
  if (!/[A-Za-z]/.test(value)) return undefined;
  const dateMs = Date.parse(value);
  if (Number.isNaN(dateMs)) return undefined;
  return Math.max(0, dateMs - nowMs);
}
