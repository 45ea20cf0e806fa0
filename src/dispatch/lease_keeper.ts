/**
 * The lease keeper: one loop extends every lease the worker holds (those of running events and of
 * events waiting in memory for a slot), so a slow handler never runs twice and each run costs no
 * timer of its own. Every sixth of a lease it extends those with two thirds or less left; when an
 * extension or a result finds a lease lost (another worker took its events after it ran out),
 * everyone holding it is told.
 *
 * @module
 */
import type { Clock } from "../ops/clock.ts";
import type { Logger } from "../ops/log.ts";
import type { Lease, Store } from "../store/store.ts";

/** What {@linkcode createLeaseKeeper} needs. */
export interface LeaseKeeperOptions {
  store: Pick<Store, "extendLease">;
  clock: Clock;
  logger: Logger;
  /** How long a lease lasts from each extension. */
  leaseMs: number;
}

/** Extends held leases while anyone holds them. */
export interface LeaseKeeper {
  /**
   * Holds `lease` until the returned release is called: the keeper extends it meanwhile, and
   * calls `onLost` if it is lost. Release resolves once an extension under way has landed.
   */
  hold(lease: Lease, onLost: () => void): () => Promise<void>;
  /** Tells everyone holding `lease` that it is lost (a result found it so). */
  lose(lease: Lease): void;
}

interface _Holder {
  lease: Lease;
  onLost: () => void;
  extending?: Promise<void>;
}

const _DONE: Promise<void> = Promise.resolve();

/** Creates a keeper; its loop runs only while a lease is held. */
export function createLeaseKeeper(options: LeaseKeeperOptions): LeaseKeeper {
  const { store, clock, logger, leaseMs } = options;
  const holders = new Set<_Holder>();
  let isKeeping = false;
  let sleep: AbortController | undefined;

  function lose(lease: Lease): void {
    for (const holder of [...holders]) {
      if (holder.lease !== lease) continue;
      holders.delete(holder);
      holder.onLost();
    }
    if (holders.size === 0) sleep?.abort();
  }

  async function keep(): Promise<void> {
    isKeeping = true;
    try {
      while (holders.size > 0) {
        sleep = new AbortController();
        try {
          await clock.sleep(leaseMs / 6, sleep.signal);
        } catch {
          continue; // the last lease was released; a new one may have come since
        } finally {
          sleep = undefined;
        }
        const now = clock.now();
        const due = new Set<Lease>();
        for (const { lease } of holders) if (lease.until - now <= (leaseMs * 2) / 3) due.add(lease);
        await Promise.all([...due].map((lease) => {
          const extending = store.extendLease(lease, now + leaseMs).then(
            (isHeld) => isHeld ? undefined : lose(lease),
            (error) => logger.warn("cannot extend a lease", { error }),
          );
          for (const holder of holders) if (holder.lease === lease) holder.extending = extending;
          return extending;
        }));
      }
    } finally {
      isKeeping = false;
    }
  }

  return {
    hold(lease, onLost) {
      const holder: _Holder = { lease, onLost };
      holders.add(holder);
      if (!isKeeping) keep();
      // Not an async function: its extra turns of the microtask queue let the claim loop, woken by
      // the first run of a batch to free its slot, see the others still busy, and the worker's
      // runs split into batches claimed apart (a fifth fewer events/s in the worker benchmark).
      return () => {
        holders.delete(holder);
        if (holders.size === 0) sleep?.abort();
        return holder.extending ?? _DONE;
      };
    },
    lose,
  };
}
