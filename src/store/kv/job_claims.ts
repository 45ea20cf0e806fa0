/**
 * Claiming and settling delivery jobs in Deno KV: due jobs of a destination move, oldest due
 * first, from their due-order entry (their own, or the one an intake commit's new jobs share, which
 * keeps the rest: `job_records.ts`) to one of their own at the lease's end, and their records to
 * `delivering`, in atomics that check each entry's versionstamp (as many per atomic as the backend
 * allows: `location.ts`), so two deliverers never hold one job and jobs whose deliverer died become
 * due again by themselves. Settling and extending check the job record's versionstamp: whatever
 * takes a job away (a new claim after the lease ran out, a replay) rewrites its record, so a lost
 * lease stores nothing.
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
import { type DueEntryJobs, jobsOfEntry, removeFromEntry, unwrittenJob } from "./job_records.ts";
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
 * `leaseUntil`, the jobs of at most `checksPerAtomic` due-order entries per commit. Jobs whose
 * record or event is gone (expired) are dropped; a job whose event cannot be read is left where it
 * is. A shared entry's jobs beyond `limit` stay in it.
 */
export async function claimJobs(
  kv: Deno.Kv,
  destination: string,
  { now, limit, leaseUntil, checksPerAtomic }: ClaimJobsOptions & { checksPerAtomic: number },
): Promise<ClaimedJob[]> {
  const units: _EntryClaim[] = [];
  const selector = {
    start: jobReadyPrefix(destination),
    end: jobReadyKey(destination, now + 1, ""),
  };
  let wanted = Math.max(1, limit);
  for await (const entry of kv.list(selector, { limit: wanted })) {
    const jobs = jobsOfEntry(entry);
    units.push({ entry, jobs, ids: jobs.ids.slice(0, wanted) });
    wanted -= Math.min(wanted, jobs.ids.length);
    if (wanted === 0) break;
  }
  const batches: _EntryClaim[][] = [];
  for (let i = 0; i < units.length; i += checksPerAtomic) {
    batches.push(units.slice(i, i + checksPerAtomic));
  }
  const claimed = await Promise.all(
    batches.map((batch) => _claimBatch(kv, destination, batch, { now, leaseUntil })),
  );
  return claimed.flat();
}

/** One due-order entry to claim from: the jobs it holds and the ids of those wanted. */
interface _EntryClaim {
  entry: Deno.KvEntry<unknown>;
  jobs: DueEntryJobs;
  /** The ids to claim (all of the entry's, or as many as the claim's limit left). */
  ids: string[];
}

/** What a claim does to one due-order entry: the jobs it takes, the ids it drops or keeps. */
interface _EntryPlan {
  entry: Deno.KvEntry<unknown>;
  /** The claimable jobs and their events. */
  take: { job: JobRecord; event: WebhookEvent }[];
  /** Ids that leave the entry without a claim: stale, or their events gone. */
  drop: string[];
  /** Job records to delete with them (their events are gone). */
  orphans: string[];
}

/**
 * Claims the jobs of due-order entries in one atomic checking each (several when their records
 * are large); when another claimer changed one of an atomic's entries, its entries one by one.
 * The jobs' records and events are read first, so a claimed job can always be delivered; a shared
 * entry's pending jobs have no record to look for.
 */
async function _claimBatch(
  kv: Deno.Kv,
  destination: string,
  units: readonly _EntryClaim[],
  { now, leaseUntil }: { now: number; leaseUntil: number },
): Promise<ClaimedJob[]> {
  const written = units.flatMap((unit) => unit.jobs.isWritten ? unit.ids : []);
  const ids = units.flatMap((unit) => unit.ids);
  const [stored, records] = await Promise.all([
    getManyInBatches<JobRecord>(kv, written.map((id) => jobKey(destination, id))),
    getManyInBatches<KvEventRecord>(kv, ids.map(eventKey)),
  ]);
  const storedJobs = new Map(written.map((id, n) => [id, stored[n]!.value]));
  const eventRecords = new Map(ids.map((id, n) => [id, records[n]!.value]));
  const plans = await Promise.all(
    units.map((unit) => _planEntry(kv, destination, unit, { storedJobs, eventRecords })),
  );
  const claim = async (group: _EntryPlan[]): Promise<ClaimedJob[]> => {
    const leased = group.map((plan) => plan.take.map(({ job }) => leasedJob(job, leaseUntil)));
    const result = await commitWithRetry(() => {
      const atomic = kv.atomic();
      group.forEach((plan, i) => {
        atomic.check(plan.entry);
        const gone = new Set([...plan.take.map(({ job }) => job.eventId), ...plan.drop]);
        removeFromEntry(atomic, plan.entry, gone, now); // a shared one keeps the rest
        for (const id of plan.orphans) atomic.delete(jobKey(destination, id));
        for (const job of leased[i]!) {
          const expireIn = Math.max(1, job.expiresAt - now);
          atomic
            .set(jobReadyKey(destination, leaseUntil, job.eventId), job.eventId, { expireIn })
            .set(jobKey(destination, job.eventId), job, { expireIn });
        }
      });
      return atomic;
    });
    if (!result.ok) return [];
    return group.flatMap((plan, i) =>
      plan.take.map(({ event }, n) => ({
        job: leased[i]![n]!,
        event,
        lease: new KvJobLease(leased[i]![n]!, result.versionstamp),
      }))
    );
  };
  const changing = plans.filter((plan) =>
    plan.take.length > 0 || plan.drop.length > 0 || plan.orphans.length > 0
  );
  const claimed = await Promise.all(
    _forCommits(changing).map(async (group) => {
      const together = await claim(group);
      if (together.length > 0 || group.every((plan) => plan.take.length === 0)) return together;
      const alone = await Promise.all(group.map((plan) => claim([plan])));
      return alone.flat();
    }),
  );
  return claimed.flat();
}

/**
 * What a claim does to one entry: takes each wanted job that is current and whose event reads,
 * and drops the stale ones and those whose events are gone (a shared entry keeps the rest).
 */
async function _planEntry(
  kv: Deno.Kv,
  destination: string,
  unit: _EntryClaim,
  known: {
    storedJobs: ReadonlyMap<string, JobRecord | null>;
    eventRecords: ReadonlyMap<string, KvEventRecord | null>;
  },
): Promise<_EntryPlan> {
  const { entry, jobs } = unit;
  const plan: _EntryPlan = { entry, take: [], drop: [], orphans: [] };
  for (const id of unit.ids) {
    const record = known.eventRecords.get(id) ?? null;
    // An entry of the event id without a record is one the version before the marker wrote.
    const stored = jobs.isWritten ? known.storedJobs.get(id) ?? null : null;
    const job = stored ?? (record && unwrittenJob(record, destination));
    const isCurrent = job !== null && job.dueAt === entry.key[2] && job.state !== "delivered" &&
      job.state !== "dead";
    if (!isCurrent || record === null) {
      plan.drop.push(id);
      if (stored !== null && record === null) plan.orphans.push(id);
      continue;
    }
    try {
      plan.take.push({ job, event: await readEvent(kv, record) });
    } catch {
      // Its parts are missing: left to expire with its event rather than delivered broken.
    }
  }
  return plan;
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

/**
 * Mutations of a claim's commit at most: Deno KV takes 1000 per atomic, and a job claimed costs
 * two (its record and its entry) besides its entry's.
 */
const MAX_CLAIM_MUTATIONS = 800;

/**
 * `plans` in order, cut into commits of at most {@linkcode MAX_COMMIT_BYTES} of job records and
 * {@linkcode MAX_CLAIM_MUTATIONS} mutations; an entry's jobs always share their commit.
 */
function _forCommits(plans: readonly _EntryPlan[]): _EntryPlan[][] {
  const groups: _EntryPlan[][] = [];
  let bytes = Infinity;
  let mutations = Infinity;
  for (const plan of plans) {
    const size = plan.take.reduce((sum, { job }) => sum + _jobBytes(job), 0);
    const writes = 1 + plan.orphans.length + 2 * plan.take.length;
    if (bytes + size > MAX_COMMIT_BYTES || mutations + writes > MAX_CLAIM_MUTATIONS) {
      groups.push([]);
      bytes = 0;
      mutations = 0;
    }
    groups.at(-1)!.push(plan);
    bytes += size;
    mutations += writes;
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
