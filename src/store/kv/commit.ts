/**
 * Committing atomics with a short bounded retry for SQLite's `database is locked`, which Deno KV
 * raises when several processes share one file.
 *
 * @module
 */
import { backoffMs } from "../../ops/backoff.ts";

/**
 * Attempts of an operation that keeps meeting a locked database before the error is passed on:
 * 0.2-0.4 s in all, which two processes writing flat out on one file needed.
 */
const LOCKED_ATTEMPTS = 10;
/** First wait after a locked database; doubled on each retry up to {@linkcode LOCKED_MAX_WAIT_MS}. */
const LOCKED_FIRST_WAIT_MS = 2;
/** Longest single wait between two attempts. */
const LOCKED_MAX_WAIT_MS = 100;

/**
 * Commits the atomic that `build` returns, building it again after each `database is locked`
 * (an atomic cannot be committed twice). Any other error, or a lock that outlasts the retries,
 * is thrown.
 */
export function commitWithRetry(
  build: () => Deno.AtomicOperation,
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  return retryWhileLocked(() => build().commit());
}

/**
 * Runs `operation` again, with short growing waits, while it fails with `database is locked`
 * (opening a KV file that another process is opening too, or committing while it writes).
 */
export async function retryWhileLocked<T>(operation: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await operation();
    } catch (error) {
      if (!isDatabaseLocked(error) || attempt >= LOCKED_ATTEMPTS) throw error;
      const wait = backoffMs(attempt - 1, {
        baseDelayMs: LOCKED_FIRST_WAIT_MS,
        maxDelayMs: LOCKED_MAX_WAIT_MS,
        jitter: 0.5,
        random: Math.random,
      });
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

/** Whether `error` is SQLite's transient lock error. */
export function isDatabaseLocked(error: unknown): boolean {
  return error instanceof Error && /database is locked|SQLITE_BUSY/i.test(error.message);
}
