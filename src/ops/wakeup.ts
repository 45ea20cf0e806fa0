/**
 * A loop's sleep that a wake-up ends early: the worker and each destination's deliverer sleep
 * between rounds until their next due time or a poll interval, and whatever makes work for them
 * (new events, a freed slot, a replay) wakes them at once. A wake-up that comes while the loop is
 * still busy is kept, so the next sleep does not start.
 *
 * @module
 */
import type { Clock } from "./clock.ts";

/** A sleep that {@linkcode Wakeup.wake} ends. */
export interface Wakeup {
  /** Forgets earlier wake-ups: call it as a round starts, before looking for work. */
  clear(): void;
  /** Whether a wake-up came since the last {@linkcode Wakeup.clear}. */
  isWoken(): boolean;
  /** Ends the sleep under way, or the next one before it starts. */
  wake(): void;
  /** Sleeps `ms` on the clock, or until woken; returns at once when already woken. */
  sleep(ms: number): Promise<void>;
}

/**
 * Why a sleep's timer is cancelled once the sleep ended: one value for every sleep, since
 * `abort()` without a reason makes a `DOMException` (and its stack) each time, which a busy loop
 * paid on every round.
 */
const _SLEEP_ENDED = new Error("Sleep ended");

/** Creates a wake-up over `clock`. */
export function createWakeup(clock: Clock): Wakeup {
  let isWoken = false;
  let wakeUp: (() => void) | undefined;
  return {
    clear() {
      isWoken = false;
    },
    isWoken: () => isWoken,
    wake() {
      isWoken = true;
      wakeUp?.();
    },
    async sleep(ms) {
      if (isWoken) return;
      const cancelSleep = new AbortController();
      const woken = new Promise<void>((resolve) => (wakeUp = resolve));
      await Promise.race([clock.sleep(ms, cancelSleep.signal).catch(() => {}), woken]);
      cancelSleep.abort(_SLEEP_ENDED);
      wakeUp = undefined;
    },
  };
}
