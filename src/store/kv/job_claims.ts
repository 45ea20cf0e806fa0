/**
 * Claiming and settling delivery jobs in Deno KV: due jobs of a destination move, oldest due
 * first, from their due-order entry to one at the lease's end, and their records to `delivering`,
 * in atomics that check each entry's versionstamp (as many per atomic as the backend allows:
 * `location.ts`), so two deliverers never hold one job and jobs whose deliverer died become due
 * again by themselves. Settling and extending check the job record's versionstamp: whatever takes
 * a job away (a new claim after the lease ran out, a replay) rewrites its record, so a lost lease
 * stores nothing.
 *
 * @module
 */
import type { WebhookEvent } from "../../events/events.ts";
import { type JobOutcome, type JobRecord, leasedJob, settledJob } from "../job_record.ts";
import type { ClaimedJob, ClaimJobsOptions, Lease } from "../store.ts";
import { createGroupCommitter } from "../group_commit.ts";
import { commitWithRetry } from "./commit.ts";
import { getManyInBatches } from "./get_many.ts";
import {
  eventKey,
  jobDeadKey,
  jobKey,
  jobReadyKey,
  jobReadyPrefix,
  type KvEventRecord,
} from "./keys.ts";
import { isUnwrittenJobEntry, unwrittenJob } from "./job_records.ts";
import { readEvent } from "./parts.ts";

/** A lease on one job: its record as the claim (or the last extension) stored it. */
export class KvJobLease implements Lease {
  /** The job record as stored under this lease. */
  record: JobRecord;
  /** The versionstamp of that write: any other write to the job ends the lease. */
  versionstamp: string;

  /** A lease on `record`, stored at `versionstamp`. */
  constructor(record: JobRecord, versionstamp: string) {
    this.record = record;
    this.versionstamp = versionstamp;
  }

  /** When the lease ends: the leased record's due time. */
  get until(): number {
    return this.record.dueAt!;
  }
}

/** The KV lease behind a lease handle; throws for a handle another store (or claimDue) made. */
export function kvJobLease(lease: Lease): KvJobLease {
  if (!(lease instanceof KvJobLease)) {
    throw new TypeError("Cannot use a lease not made by claimJobs");
  }
  return lease;
}

/**
 * Claims `destination`'s due jobs (due by `now`), oldest due first, at most `limit`, leased until
 * `leaseUntil`, `checksPerAtomic` of them per commit. Jobs whose record or event is gone
 * (expired) are dropped; a job whose event cannot be read is left where it is.
 */
export async function claimJobs(
  kv: Deno.Kv,
  destination: string,
  { now, limit, leaseUntil, checksPerAtomic }: ClaimJobsOptions & { checksPerAtomic: number },
): Promise<ClaimedJob[]> {
  const due: Deno.KvEntry<unknown>[] = [];
  const selector = {
    start: jobReadyPrefix(destination),
    end: jobReadyKey(destination, now + 1, ""),
  };
  for await (const entry of kv.list(selector, { limit: Math.max(1, limit) })) due.push(entry);
  const batches: Deno.KvEntry<unknown>[][] = [];
  for (let i = 0; i < due.length; i += checksPerAtomic) {
    batches.push(due.slice(i, i + checksPerAtomic));
  }
  const claimed = await Promise.all(
    batches.map((batch) => _claimBatch(kv, destination, batch, { now, leaseUntil })),
  );
  return claimed.flat();
}

/** What a claim does to one due entry: takes its job, or drops a stale entry (and job). */
interface _JobPlan {
  entry: Deno.KvEntry<unknown>;
  /** The job and its event, when the job is claimable; absent for an entry to drop. */
  take?: { job: JobRecord; event: WebhookEvent };
  /** Whether the job's record goes too (its event is gone). */
  isOrphan: boolean;
}

/**
 * Claims due entries in one atomic checking each (several when their records are large); when
 * another claimer took one of an atomic's entries, its entries one by one. The jobs' records and events are read first, so a claimed job can always be delivered; an
 * entry marked as intake's stands for a job with no record, which is not looked for.
 */
async function _claimBatch(
  kv: Deno.Kv,
  destination: string,
  entries: Deno.KvEntry<unknown>[],
  { now, leaseUntil }: { now: number; leaseUntil: number },
): Promise<ClaimedJob[]> {
  const ids = entries.map((entry) => String(entry.key[3]));
  const written = ids.filter((_, i) => !isUnwrittenJobEntry(entries[i]!.value));
  const [stored, records] = await Promise.all([
    getManyInBatches<JobRecord>(kv, written.map((id) => jobKey(destination, id))),
    getManyInBatches<KvEventRecord>(kv, ids.map(eventKey)),
  ]);
  const storedJobs = new Map(written.map((id, n) => [id, stored[n]!.value]));
  const plans: _JobPlan[] = [];
  for (const [i, entry] of entries.entries()) {
    const record = records[i]!.value;
    // No record yet: the entry, which intake wrote alone, is a pending job (`job_records.ts`).
    const job = storedJobs.get(ids[i]!) ?? (record && unwrittenJob(record, destination));
    const isCurrent = job !== null && job.dueAt === entry.key[2] && job.state !== "delivered" &&
      job.state !== "dead";
    if (!isCurrent || record === null) {
      plans.push({ entry, isOrphan: job !== null && record === null });
      continue;
    }
    try {
      plans.push({ entry, take: { job, event: await readEvent(kv, record) }, isOrphan: false });
    } catch {
      // Its parts are missing: left to expire with its event rather than delivered broken.
    }
  }
  const claim = async (group: _JobPlan[]): Promise<ClaimedJob[]> => {
    const leased = group.map((plan) => plan.take && leasedJob(plan.take.job, leaseUntil));
    const result = await commitWithRetry(() => {
      const atomic = kv.atomic();
      group.forEach((plan, i) => {
        const id = String(plan.entry.key[3]);
        atomic.check(plan.entry).delete(plan.entry.key);
        if (plan.isOrphan) atomic.delete(jobKey(destination, id));
        const job = leased[i];
        if (!job) return;
        const expireIn = Math.max(1, job.expiresAt - now);
        atomic
          .set(jobReadyKey(destination, leaseUntil, id), id, { expireIn })
          .set(jobKey(destination, id), job, { expireIn });
      });
      return atomic;
    });
    if (!result.ok) return [];
    return group.flatMap((plan, i) =>
      plan.take
        ? [{
          job: leased[i]!,
          event: plan.take.event,
          lease: new KvJobLease(leased[i]!, result.versionstamp),
        }]
        : []
    );
  };
  const claimed = await Promise.all(
    _bySize(plans, (plan) => plan.take ? _jobBytes(plan.take.job) : 0).map(async (group) => {
      const together = await claim(group);
      if (together.length > 0 || group.every((plan) => !plan.take)) return together;
      const alone = await Promise.all(group.map((plan) => claim([plan])));
      return alone.flat();
    }),
  );
  return claimed.flat();
}

/**
 * Bytes of job records per commit at most: Deno KV refuses a commit over 800 KiB, and a job with
 * a full history of long errors holds tens of KiB, so a hundred of them need several commits.
 */
const MAX_COMMIT_BYTES = 600 * 1024;

/** Characters of a job record's JSON besides its names and errors: field names and numbers. */
const JOB_FIXED_CHARS = 256;
/** Characters of an attempt's JSON in a job's history besides its error. */
const ATTEMPT_FIXED_CHARS = 64;

/**
 * Estimated bytes a job's record adds to a commit, from the lengths of its texts (counting the
 * whole record as JSON cost a busy destination's every claim and settle): two bytes a character,
 * plus its keys.
 */
function _jobBytes(job: JobRecord): number {
  let chars = JOB_FIXED_CHARS + job.eventId.length * 3 + job.destination.length * 3 +
    (job.lastError?.length ?? 0);
  for (const attempt of job.history) chars += ATTEMPT_FIXED_CHARS + (attempt.error?.length ?? 0);
  return chars * 2 + 256;
}

/** `items` in order, cut into groups of at most {@linkcode MAX_COMMIT_BYTES} by `sizeOf`. */
function _bySize<T>(items: readonly T[], sizeOf: (item: T) => number): T[][] {
  const groups: T[][] = [];
  let bytes = Infinity;
  for (const item of items) {
    const size = sizeOf(item);
    if (bytes + size > MAX_COMMIT_BYTES) {
      groups.push([]);
      bytes = 0;
    }
    groups.at(-1)!.push(item);
    bytes += size;
  }
  return groups;
}

/** Settles delivery attempts' results, gathered with those of other attempts. */
export interface JobSettler {
  /**
   * Stores what an attempt came to while the claim's lease is held: the job's record, a retry's
   * due entry or a dead letter. `false`, storing nothing, once the lease was lost.
   */
  settle(claim: ClaimedJob, outcome: JobOutcome): Promise<boolean>;
}

/** One job's settled record, ready to commit. */
interface _Settled {
  lease: KvJobLease;
  next: JobRecord;
  expireIn: number;
}

/**
 * Creates the settler of job results over `kv`: results that finish while a commit runs go into
 * the next one together (at most `checksPerAtomic` each: one check per job), so a busy
 * destination's deliveries share disk syncs as the worker's results do. When one lease in a
 * commit was lost, each result of it is committed alone.
 */
export function createJobSettler(kv: Deno.Kv, checksPerAtomic: number): JobSettler {
  const committer = createGroupCommitter<_Settled, boolean>({
    maxGroupSize: checksPerAtomic,
    sizeOf: (settled) => _jobBytes(settled.next),
    maxGroupBytes: MAX_COMMIT_BYTES,
    maxInFlight: 1,
    commit: async (group) => {
      if ((await _commitSettled(kv, group)).ok) return group.map(() => true);
      return await Promise.all(group.map(async (one) => (await _commitSettled(kv, [one])).ok));
    },
  });
  return {
    settle(claim, outcome) {
      const lease = kvJobLease(claim.lease);
      const next = settledJob(lease.record, outcome);
      const expireIn = Math.max(1, next.expiresAt - outcome.endedAt);
      return committer.submit({ lease, next, expireIn });
    },
  };
}

/** Commits settled jobs in one atomic, each checked by the versionstamp its lease holds. */
function _commitSettled(
  kv: Deno.Kv,
  group: readonly _Settled[],
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  return commitWithRetry(() => {
    const atomic = kv.atomic();
    for (const { lease, next, expireIn } of group) {
      const { destination, eventId } = lease.record;
      atomic
        .check({ key: jobKey(destination, eventId), versionstamp: lease.versionstamp })
        .delete(jobReadyKey(destination, lease.until, eventId))
        .set(jobKey(destination, eventId), next, { expireIn });
      if (next.state === "retrying") {
        atomic.set(jobReadyKey(destination, next.dueAt!, eventId), eventId, { expireIn });
      }
      if (next.state === "dead") {
        atomic.set(jobDeadKey(destination, eventId), eventId, { expireIn });
      }
    }
    return atomic;
  });
}

/**
 * Moves a job lease's end to `until`; `false` when the lease was lost. The writes keep the job's
 * expiry as seen from the lease's old end (no clock is passed in): if anything, a little early.
 */
export async function extendJobLease(kv: Deno.Kv, handle: Lease, until: number): Promise<boolean> {
  const lease = kvJobLease(handle);
  const { destination, eventId } = lease.record;
  const next: JobRecord = { ...lease.record, dueAt: until };
  const expireIn = Math.max(1, next.expiresAt - lease.until);
  const result = await commitWithRetry(() => {
    const atomic = kv.atomic()
      .check({ key: jobKey(destination, eventId), versionstamp: lease.versionstamp });
    if (until !== lease.until) atomic.delete(jobReadyKey(destination, lease.until, eventId));
    return atomic
      .set(jobReadyKey(destination, until, eventId), eventId, { expireIn })
      .set(jobKey(destination, eventId), next, { expireIn });
  });
  if (!result.ok) return false;
  lease.record = next;
  lease.versionstamp = result.versionstamp;
  return true;
}
