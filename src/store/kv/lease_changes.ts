/**
 * Changes to leases, committed together: runs' results and lease extensions go through one commit
 * at a time, a check per lease. A result stores its record and takes its event out of the lease
 * entry, which goes with the last one; an extension moves the entry to the lease's new end. So
 * the results of many runs share one disk sync and the worker keeps up with the intake.
 *
 * @module
 */
import { createGroupCommitter } from "../group_commit.ts";
import { commitWithRetry } from "./commit.ts";
import { deadLetterKey, eventKey, type KvEventRecord, readyEntryValue, readyKey } from "./keys.ts";
import type { KvClaim, KvLease } from "./lease.ts";
import { remainingLifeMs } from "./record_life.ts";

/**
 * Results and lease extensions per commit. The results of a lease share its check, so a commit
 * may store many: fewer, fuller commits raised the in-process rate by 15-20% on a KV file.
 */
const CHANGES_PER_COMMIT = 50;
/** Bytes of records per result commit, under Deno KV's 800 KiB limit with room for the rest. */
const MAX_COMMIT_BYTES = 600 * 1024;

/** Commits results and extensions of leases, gathered with those of other runs. */
export interface LeaseChanges {
  /** Moves the lease's end to `until`; `false` when the lease was lost. */
  extend(lease: KvLease, until: number): Promise<boolean>;
  /**
   * Stores a run's result (`next`, written at `now`) and takes its event out of its lease;
   * `false`, storing nothing, when the lease was lost.
   */
  settle(claim: KvClaim, next: KvEventRecord, now: number): Promise<boolean>;
}

/** A change to a lease, committed with others: a run's result, or the lease's extension. */
type _Change =
  | { kind: "result"; claim: KvClaim; next: KvEventRecord; now: number }
  | { kind: "extend"; lease: KvLease; until: number };

/**
 * Creates the committer of lease changes over `kv`, at most `leasesPerCommit` leases a commit (one
 * check each: the checks the backend allows).
 */
export function createLeaseChanges(kv: Deno.Kv, leasesPerCommit: number): LeaseChanges {
  const changes = createGroupCommitter<_Change, boolean>({
    maxGroupSize: CHANGES_PER_COMMIT,
    // One check per lease: the changes of one lease (its events' results) share it.
    checkOf: _leaseOf,
    maxChecks: leasesPerCommit,
    sizeOf: _changeBytes,
    maxGroupBytes: MAX_COMMIT_BYTES,
    // One commit at a time: results that finish meanwhile gather into the next one (fuller
    // commits drained a KV file about 1.8 times as fast as four smaller ones in flight), and a
    // lease is never changed by two commits at once.
    maxInFlight: 1,
    commit: (batch) => _commitChanges(kv, batch),
  });
  return {
    extend: (lease, until) => changes.submit({ kind: "extend", lease, until }),
    settle: (claim, next, now) => changes.submit({ kind: "result", claim, next, now }),
  };
}

/** The lease a change is to. */
function _leaseOf(change: _Change): KvLease {
  return change.kind === "result" ? change.claim.lease : change.lease;
}

/**
 * The estimated size of what a change writes: a result's record (the event's JSON as its claim
 * measured it, plus the new error text, two bytes a character as strings may be stored), or a
 * lease entry's ids.
 */
function _changeBytes(change: _Change): number {
  if (change.kind === "extend") return 64 * change.lease.ids.length;
  return change.claim.bytes + 4 * (change.next.lastError?.length ?? 0) + 1024;
}

/**
 * Commits changes to leases in one atomic, with one check per lease. When a lease was lost
 * meanwhile, each lease's changes are committed on their own: those of a lost lease are not
 * stored.
 */
async function _commitChanges(kv: Deno.Kv, batch: _Change[]): Promise<boolean[]> {
  const byLease = new Map<KvLease, _Change[]>();
  for (const change of batch) {
    const lease = _leaseOf(change);
    byLease.set(lease, [...(byLease.get(lease) ?? []), change]);
  }
  const commit = async (leases: KvLease[]): Promise<boolean> => {
    const next = new Map<KvLease, { key: Deno.KvKey; ids: string[] }>();
    const result = await commitWithRetry(() => {
      const atomic = kv.atomic();
      for (const lease of leases) {
        next.set(lease, _writeChanges(atomic, lease, byLease.get(lease)!));
      }
      return atomic;
    });
    if (!result.ok) return false;
    for (const [lease, { key, ids }] of next) {
      Object.assign(lease, { key, ids, versionstamp: result.versionstamp });
    }
    return true;
  };
  const leases = [...byLease.keys()];
  const isCommitted = new Map<KvLease, boolean>();
  if (await commit(leases)) {
    for (const lease of leases) isCommitted.set(lease, true);
  } else {
    await Promise.all(leases.map(async (lease) => isCommitted.set(lease, await commit([lease]))));
  }
  return batch.map((change) => isCommitted.get(_leaseOf(change))!);
}

/** Adds one lease's changes to an atomic; returns the lease's key and events after it. */
function _writeChanges(
  atomic: Deno.AtomicOperation,
  lease: KvLease,
  changes: _Change[],
): { key: Deno.KvKey; ids: string[] } {
  const finished = new Set<string>();
  let until = lease.until;
  for (const change of changes) {
    if (change.kind === "extend") until = Math.max(until, change.until);
    else {
      finished.add(change.claim.record.id);
      _writeResult(atomic, change.next, change.now);
    }
  }
  const ids = lease.ids.filter((id) => !finished.has(id));
  const key = readyKey(until, lease.key[2] as string);
  atomic.check({ key: lease.key, versionstamp: lease.versionstamp });
  if (ids.length === 0 || until !== lease.until) atomic.delete(lease.key);
  if (ids.length > 0) atomic.set(key, readyEntryValue(ids));
  return { key, ids };
}

/** Adds a run's result to an atomic: the record, and a retry's entry or a dead letter. */
function _writeResult(atomic: Deno.AtomicOperation, next: KvEventRecord, now: number): void {
  const expireIn = remainingLifeMs(next, now);
  atomic.set(eventKey(next.id), next, { expireIn });
  if (next.state === "retrying" && next.dueAt !== null) {
    atomic.set(readyKey(next.dueAt, next.id), next.id);
  }
  if (next.state === "dead") {
    atomic.set(deadLetterKey(next.receivedAt, next.id), next.id, { expireIn });
  }
}
