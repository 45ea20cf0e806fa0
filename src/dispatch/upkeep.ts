/**
 * The store's upkeep that the worker's loop does beside its claims: once at start, bringing back
 * the events older versions parked beyond the longest delay this one sets; and every
 * {@linkcode PURGE_EVERY_MS}, removing expired events (retention for stores that need it) in the
 * background, with whatever else the caller purges beside them (captured media). Failures are
 * logged, never thrown: upkeep never stops the loop.
 *
 * @module
 */
import type { Logger } from "../ops/log.ts";
import type { Store } from "../store/store.ts";

/** How often expired events are removed, and how many at most each time. */
export const PURGE_EVERY_MS = 10 * 60_000;
const PURGE_LIMIT = 1_000;
/** Events parked by older versions that one start brings back at most; the next start does more. */
const MAX_BROUGHT_FORWARD_PER_START = 1_000;

/** What {@linkcode createUpkeep} needs. */
export interface UpkeepOptions {
  store: Pick<Store, "bringForward" | "purgeExpired">;
  logger: Logger;
  /** The latest an event may be due from now in this version: longest retry delay plus a lease. */
  latestDueInMs: number;
  /** Run beside each purge of expired events (media past the retention); must not throw. */
  purgeAlso?: (now: number) => Promise<void>;
}

/** The upkeep of one worker. */
export interface Upkeep {
  /** Brings forward the events parked beyond `latestDueInMs` (at start). */
  bringForwardParked(now: number): Promise<void>;
  /** Starts a purge in the background when the last began {@linkcode PURGE_EVERY_MS} ago. */
  purgeWhenDue(now: number): void;
  /** Resolves once the purge in flight, if any, has ended. */
  purged(): Promise<unknown>;
}

/** Creates the upkeep of a worker over `options.store`. */
export function createUpkeep(options: UpkeepOptions): Upkeep {
  const { store, logger } = options;
  let lastPurgeAt = 0;
  let purging: Promise<unknown> = Promise.resolve();
  return {
    async bringForwardParked(now) {
      try {
        const moved = await store.bringForward({
          now,
          latestDueAt: now + options.latestDueInMs,
          limit: MAX_BROUGHT_FORWARD_PER_START,
        });
        if (moved > 0) {
          logger.warn("events parked beyond the longest retry delay are due now", {
            events: moved,
          });
        }
      } catch (error) {
        logger.error("cannot bring back events parked beyond the longest retry delay", { error });
      }
    },
    purgeWhenDue(now) {
      if (now - lastPurgeAt < PURGE_EVERY_MS) return;
      lastPurgeAt = now;
      purging = Promise.all([
        store.purgeExpired(now, PURGE_LIMIT).then(
          (purged) => purged > 0 && logger.info("expired events removed", { events: purged }),
          (error) => logger.warn("cannot remove expired events", { error }),
        ),
        options.purgeAlso?.(now),
      ]);
    },
    purged: () => purging,
  };
}
