/**
 * Committing atomics with a short bounded retry for SQLite's `database is locked`, which Deno KV
 * raises when several processes share one file.
 *
 * @module
 */

/** Attempts of a commit that keeps meeting a locked database before the error is passed on. */
const LOCKED_ATTEMPTS = 6;
/** First wait after a locked database; doubled on each retry (5, 10, 20, 40, 80 ms). */
const LOCKED_FIRST_WAIT_MS = 5;

/**
 * Commits the atomic that `build` returns, building it again after each `database is locked`
 * (an atomic cannot be committed twice). Any other error, or a lock that outlasts the retries,
 * is thrown.
 */
export async function commitWithRetry(
  build: () => Deno.AtomicOperation,
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  for (let attempt = 1;; attempt++) {
    try {
      return await build().commit();
    } catch (error) {
      if (!isDatabaseLocked(error) || attempt >= LOCKED_ATTEMPTS) throw error;
      const wait = LOCKED_FIRST_WAIT_MS * 2 ** (attempt - 1);
      await new Promise((resolve) => setTimeout(resolve, wait * (0.5 + Math.random())));
    }
  }
}

/** Whether `error` is SQLite's transient lock error. */
export function isDatabaseLocked(error: unknown): boolean {
  return error instanceof Error && /database is locked|SQLITE_BUSY/i.test(error.message);
}
