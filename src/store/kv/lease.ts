/**
 * Leases as Deno KV holds them: a lease is a ready entry at the lease's end, listing the events it
 * holds, checked by its versionstamp; the events claimed (or recorded leased) together share it.
 *
 * @module
 */
import type { ClaimedEvent, Lease } from "../store.ts";
import type { KvEventRecord } from "./keys.ts";

/**
 * A lease on a ready entry: the entry's key and versionstamp, and the ids of the events it holds
 * whose results are not stored yet. The store updates it as it is extended and results land.
 */
export class KvLease implements Lease {
  /** The lease's ready entry, `["ready", until, entryId]`. */
  key: Deno.KvKey;
  versionstamp: string;
  ids: string[];

  /** A lease on the entry `key` as committed at `versionstamp`, holding `ids`. */
  constructor(key: Deno.KvKey, versionstamp: string, ids: string[]) {
    this.key = key;
    this.versionstamp = versionstamp;
    this.ids = ids;
  }

  /** When the lease ends: the time in its ready entry's key. */
  get until(): number {
    return this.key[1] as number;
  }
}

/** An event leased to a worker, with what the KV store needs to settle it. */
export interface KvClaim extends ClaimedEvent {
  record: KvEventRecord;
  lease: KvLease;
  /** The estimated size of the record as read or written, for commit budgets. */
  bytes: number;
}

/** The KV lease behind a lease handle; throws for a handle another store made. */
export function kvLease(lease: Lease): KvLease {
  if (!(lease instanceof KvLease)) throw new TypeError("Cannot use a lease another store made");
  return lease;
}

/** The KV claim behind a claimed event; throws for one another store made. */
export function kvClaim(claim: ClaimedEvent): KvClaim {
  kvLease(claim.lease);
  return claim as KvClaim;
}
