/**
 * Time as a dependency: the service reads the time and waits through a {@linkcode Clock}, so tests
 * can drive retries, backoff and leases without real sleeps.
 *
 * @module
 */

/** The current time and a way to wait. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Resolves after `ms` milliseconds, or rejects with the signal's reason once it aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The real clock: `Date.now` and `setTimeout`. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, Math.max(0, ms));
      signal?.addEventListener("abort", onAbort, { once: true });
    }),
};

/**
 * A clock for tests: time stands still until {@linkcode ManualClock.advance} moves it, which
 * resolves every sleep that has come due, in order.
 */
export class ManualClock implements Clock {
  #now: number;
  #sleepers: { until: number; resolve: () => void }[] = [];

  /** Starts at `startMs` (default: 2026-01-01T00:00:00Z). */
  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.#now = startMs;
  }

  /** The manual time in milliseconds. */
  now(): number {
    return this.#now;
  }

  /** Waits until {@linkcode advance} has moved time by `ms`. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const sleeper = { until: this.#now + Math.max(0, ms), resolve };
      this.#sleepers.push(sleeper);
      signal?.addEventListener("abort", () => {
        this.#sleepers = this.#sleepers.filter((s) => s !== sleeper);
        reject(signal.reason);
      }, { once: true });
    });
  }

  /** The delays of the sleeps still waiting, relative to now, soonest first. */
  pendingSleeps(): number[] {
    return this.#sleepers.map((s) => s.until - this.#now).sort((a, b) => a - b);
  }

  /** Moves time forward by `ms`, waking due sleepers one by one and letting their work run. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      const due = this.#sleepers
        .filter((s) => s.until <= target)
        .sort((a, b) => a.until - b.until)[0];
      if (!due) break;
      this.#sleepers = this.#sleepers.filter((s) => s !== due);
      this.#now = Math.max(this.#now, due.until);
      due.resolve();
      await _settle();
    }
    this.#now = target;
    await _settle();
  }
}

/** Lets promise chains woken by a timer run before the caller continues. */
async function _settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
  await new Promise((resolve) => setTimeout(resolve, 0));
}
