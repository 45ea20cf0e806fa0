/**
 * The one way the service stops waiting for something: {@linkcode within} races a promise against
 * a timer (and, if given, a signal). Shutdown graces, the health probe of the store and the sweep's
 * wait for the service all bound their waits with it.
 *
 * The timer is real (`setTimeout`), not the injected `Clock` of `clock.ts`: these bounds guard
 * against I/O or handlers that hang, and the worker's tests, run on a `ManualClock` that nobody
 * moves while they stop it, rely on its grace passing in real time.
 *
 * @module
 */

/** What {@linkcode within} returns when time runs out, and what else ends the wait. */
export interface WithinOptions<U> {
  /** The value once `ms` have passed or `signal` has aborted; `undefined` if left out. */
  otherwise?: U;
  /** Ends the wait early with `otherwise`; an aborted signal ends it before it starts. */
  signal?: AbortSignal;
}

/**
 * `promise`'s value, or `options.otherwise` if it has not settled within `ms` milliseconds (or
 * `options.signal` aborts first). A rejection of `promise` within the time is thrown. The promise
 * is not cancelled: a caller that gives up on work that may still fail must catch it. The timer
 * and the abort listener are removed as soon as the wait ends, so nothing is left pending.
 */
export async function within<T, U = undefined>(
  promise: Promise<T>,
  ms: number,
  options: WithinOptions<U> = {},
): Promise<T | U> {
  const { otherwise, signal } = options;
  if (signal?.aborted) return otherwise as U;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort = (): void => {};
  const gaveUp = new Promise<U>((resolve) => {
    timer = setTimeout(() => resolve(otherwise as U), ms);
    onAbort = () => resolve(otherwise as U);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, gaveUp]);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}
