/**
 * Errors a handler throws to tell the worker how to retry. Any other error is retried with the
 * worker's backoff until `RETRY_MAX_ATTEMPTS`; these two change that.
 *
 * @module
 */

/**
 * A failure that trying again cannot fix (the recipient cannot be reached, the token is revoked,
 * the request is wrong): the worker dead-letters the event at the end of this run, with this
 * message in its `lastError`, instead of retrying. The event's other handlers still run once in
 * that run. An operator can replay the event after fixing the cause.
 */
export class PermanentError extends Error {
  override readonly name: string = "PermanentError";
}

/**
 * A failure worth retrying, but not before `retryAfterMs` has passed (a rate limit that said how
 * long to wait): the worker's next attempt is at least that far away, or later if its own backoff
 * is longer, but never further than `RETRY_MAX_DELAY_MS`: a longer wait is cut to it. Attempts
 * still count toward `RETRY_MAX_ATTEMPTS`.
 */
export class RetryLaterError extends Error {
  override readonly name = "RetryLaterError";
  /** The least wait before the next attempt, in milliseconds: finite, 0 or more. */
  readonly retryAfterMs: number;

  /**
   * `retryAfterMs` below 0, or not a number (`NaN`), counts as 0: the worker's backoff decides.
   * `Infinity` and other waits beyond {@linkcode Number.MAX_SAFE_INTEGER} count as that.
   */
  constructor(message: string, retryAfterMs: number, options?: ErrorOptions) {
    super(message, options);
    this.retryAfterMs = Number.isNaN(retryAfterMs)
      ? 0
      : Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, retryAfterMs));
  }
}
