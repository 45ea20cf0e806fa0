/**
 * Many deadlines on one timer: what a busy destination's attempts each need (a timeout), without
 * a timer each. Deno 2.9's global `setTimeout` is Node's, which costs about 5-9 µs to set and
 * clear with many timers live: a delivery's attempt paid it every time. Here a deadline is an
 * entry in a set, and one timer, armed while any is waiting, fires the overdue ones every
 * `resolutionMs`; a deadline is therefore called between `ms` and `ms + resolutionMs` after it
 * was set. Real time (`performance.now`), like `timeout.ts`: it guards against I/O that hangs.
 *
 * @module
 */

/** Deadlines sharing one timer. */
export interface Deadlines {
  /**
   * Calls `onDue` once, `ms` to `ms + resolutionMs` from now, unless the returned function
   * cancels it first.
   */
  after(ms: number, onDue: () => void): () => void;
}

/** How late a shared deadline may be called, ms, by default: well under the shortest timeout. */
export const DEFAULT_DEADLINE_RESOLUTION_MS = 10;

/** Deadlines on their own timers (`setTimeout`), for callers with few. */
export const timerDeadlines: Deadlines = {
  after(ms, onDue) {
    const timer = setTimeout(onDue, ms);
    return () => clearTimeout(timer);
  },
};

/** Creates deadlines that share one timer, called at most `resolutionMs` late. */
export function createDeadlines(resolutionMs = DEFAULT_DEADLINE_RESOLUTION_MS): Deadlines {
  const waiting = new Set<{ at: number; onDue: () => void }>();
  let isArmed = false;

  function tick(): void {
    isArmed = false;
    const now = performance.now();
    for (const deadline of waiting) {
      if (deadline.at > now) continue;
      waiting.delete(deadline);
      try {
        deadline.onDue();
      } catch (error) {
        reportError(error); // one failing callback neither stops the others nor the timer
      }
    }
    arm();
  }

  // The timer is left to fire when the last deadline is cancelled: clearing and setting it again
  // for the next attempt would cost what this module saves.
  function arm(): void {
    if (isArmed || waiting.size === 0) return;
    isArmed = true;
    setTimeout(tick, resolutionMs);
  }

  return {
    after(ms, onDue) {
      const deadline = { at: performance.now() + ms, onDue };
      waiting.add(deadline);
      arm();
      return () => waiting.delete(deadline);
    },
  };
}
