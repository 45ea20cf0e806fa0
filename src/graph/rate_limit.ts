/**
 * Pacing of outbound calls so that bursts queue here instead of tripping Meta's limits: a token
 * bucket per phone number id (throughput, error 130429), one call at a time per recipient, and,
 * after a pair rate error (131056), spacing of further sends to that one recipient. All waits go
 * through the injected clock.
 *
 * @module
 */

import type { Clock } from "../ops/clock.ts";

/** Meta's advice after a pair rate error: wait 4^X seconds (1, 4, 16, 64 s …). */
const PAIR_SPACING_BASE = 4;
/** The longest spacing between sends to one recipient: the fourth step of Meta's 4^X advice. */
export const MAX_PAIR_SPACING_MS = 64_000;
/** Spacing state for a recipient who has not been sent to for this long is forgotten. */
const PAIR_STATE_TTL_MS = 10 * 60_000;

/** Options for {@linkcode createRateLimiter}. */
export interface RateLimiterOptions {
  /** Waits and the current time. */
  clock: Clock;
  /** Sustained calls per second per phone number id. */
  messagesPerSecond: number;
  /** Calls allowed at once before pacing starts; defaults to `messagesPerSecond`. */
  burst?: number;
}

/**
 * One call's turn at a recipient, from {@linkcode RateLimiter.takeTurn}: sends to one recipient
 * go one at a time, in the order their calls arrived, so a user gets messages in that order.
 */
export interface RecipientTurn {
  /**
   * Waits until this recipient may be sent to again, if a pair rate error spaced it; returns at
   * once otherwise. Call it before every attempt.
   */
  waitForSpacing(signal?: AbortSignal): Promise<void>;
  /**
   * Records a pair rate error (131056) and returns the wait before the next send to this
   * recipient, in milliseconds: 1 s after the first error in a row, then 4 s, 16 s, 64 s.
   */
  recordPairRateLimit(): number;
  /**
   * Records an accepted send. The next send still waits out the spacing in force, which then
   * steps down one level (64 s, 16 s, 4 s, 1 s, none).
   */
  recordDelivered(): void;
  /** Ends the turn; the next call to this recipient may start. Call it exactly once. */
  release(): void;
}

/** Paces calls per phone number id and per recipient. */
export interface RateLimiter {
  /**
   * Takes one token from the bucket of `phoneNumberId`, waiting (first come, first served) when
   * it is empty. Rejects with the signal's reason if `signal` aborts while waiting.
   */
  acquire(phoneNumberId: string, signal?: AbortSignal): Promise<void>;
  /**
   * Waits until the calls to this recipient that came before have ended, then returns this
   * call's turn. Rejects with the signal's reason if `signal` aborts while waiting.
   */
  takeTurn(phoneNumberId: string, recipient: string, signal?: AbortSignal): Promise<RecipientTurn>;
}

/** Returns the spacing after `strikes` pair rate errors in a row (1 or more), in milliseconds. */
export function pairSpacingMs(strikes: number): number {
  if (strikes <= 0) return 0;
  return Math.min(MAX_PAIR_SPACING_MS, 1000 * PAIR_SPACING_BASE ** (strikes - 1));
}

interface _Bucket {
  /** Tokens left; negative when callers have reserved tokens that are still to come. */
  tokens: number;
  refilledAt: number;
}

interface _PairState {
  /** Pair rate errors in a row, less one per accepted send since. */
  strikes: number;
  /** The earliest time of the next send to this recipient. */
  nextAt: number;
}

/**
 * Creates a limiter. Each caller reserves its token when it arrives (the balance may go
 * negative) and sleeps until the bucket has refilled that far, so queued callers are served in
 * order and evenly spaced: at 80/s, a burst of 300 sends 80 at once, then one every 12.5 ms.
 */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const { clock, messagesPerSecond } = options;
  if (!(messagesPerSecond > 0)) {
    throw new RangeError(
      `Cannot pace calls: messagesPerSecond must be positive, got ${messagesPerSecond}`,
    );
  }
  const burst = options.burst ?? messagesPerSecond;
  const buckets = new Map<string, _Bucket>();
  const pairs = new Map<string, _PairState>();
  /** The end of the last turn taken at each recipient; removed when no turn is left. */
  const lastTurns = new Map<string, Promise<void>>();

  async function acquire(phoneNumberId: string, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const now = clock.now();
    const bucket = buckets.get(phoneNumberId) ?? { tokens: burst, refilledAt: now };
    buckets.set(phoneNumberId, bucket);
    bucket.tokens = Math.min(
      burst,
      bucket.tokens + (now - bucket.refilledAt) * messagesPerSecond / 1000,
    );
    bucket.refilledAt = now;
    bucket.tokens -= 1;
    if (bucket.tokens >= 0) return;
    try {
      await clock.sleep(-bucket.tokens * 1000 / messagesPerSecond, signal);
    } catch (error) {
      bucket.tokens += 1; // the reservation was not used
      throw error;
    }
  }

  async function takeTurn(
    phoneNumberId: string,
    recipient: string,
    signal?: AbortSignal,
  ): Promise<RecipientTurn> {
    signal?.throwIfAborted();
    const key = `${phoneNumberId}\u0000${recipient}`;
    const previous = lastTurns.get(key) ?? Promise.resolve();
    let endTurn = (): void => {};
    const ended = new Promise<void>((resolve) => endTurn = resolve);
    const last = previous.then(() => ended);
    lastTurns.set(key, last);
    const release = (): void => {
      endTurn();
      if (lastTurns.get(key) === last) lastTurns.delete(key);
    };
    try {
      await _untilAborted(previous, signal);
    } catch (error) {
      release(); // followers wait for `previous` only
      throw error;
    }
    return {
      waitForSpacing: (spacingSignal) => waitForSpacing(key, spacingSignal),
      recordPairRateLimit: () => recordPairRateLimit(key),
      recordDelivered: () => recordDelivered(key),
      release,
    };
  }

  async function waitForSpacing(key: string, signal?: AbortSignal): Promise<void> {
    const state = pairs.get(key);
    if (!state) return;
    const waitMs = state.nextAt - clock.now();
    if (waitMs > 0) await clock.sleep(waitMs, signal);
    if (state.strikes === 0) pairs.delete(key);
  }

  function recordPairRateLimit(key: string): number {
    const now = clock.now();
    _forgetIdlePairs(pairs, now);
    const state = pairs.get(key) ?? { strikes: 0, nextAt: now };
    state.strikes += 1;
    const spacingMs = pairSpacingMs(state.strikes);
    state.nextAt = now + spacingMs;
    pairs.set(key, state);
    return spacingMs;
  }

  function recordDelivered(key: string): void {
    const state = pairs.get(key);
    if (!state) return;
    state.nextAt = clock.now() + pairSpacingMs(state.strikes);
    state.strikes -= 1;
  }

  return { acquire, takeTurn };
}

/** Resolves with `promise`, or rejects with the signal's reason once it aborts. */
function _untilAborted(promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return promise;
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}

function _forgetIdlePairs(pairs: Map<string, _PairState>, now: number): void {
  for (const [key, state] of pairs) {
    if (state.nextAt + PAIR_STATE_TTL_MS < now) pairs.delete(key);
  }
}
