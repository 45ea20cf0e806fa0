/**
 * Reading delivery jobs whose record may not be written yet. Intake writes a new job as its
 * due-order entry alone (`["job_ready", destination, receivedAt, eventId]`, beside the destination's
 * name in the event's record `jobs`): one write per job instead of two, in the commit every
 * acknowledgement waits for. The job's record is written the first time anything changes it (a
 * claim, a replay). Until then the job is pending, due at its event's reception, exactly while that
 * entry exists: the record it stands for is made from the event's record (`newJob`).
 *
 * Intake's entry holds {@linkcode UNWRITTEN_JOB_ENTRY} (every other due-order entry holds the
 * event id), so a claim knows there is no record to read for it. Entries written before that
 * marker hold the event id too, and are read as before: a record, or the pending job.
 *
 * @module
 */
import { type JobRecord, newJob } from "../job_record.ts";
import { getManyInBatches } from "./get_many.ts";
import { eventKey, jobKey, jobReadyKey, type KvEventRecord } from "./keys.ts";

/** The value of a due-order entry intake wrote alone: its job has no record yet. */
export const UNWRITTEN_JOB_ENTRY = 0;

/** Whether a due-order entry's value marks it as intake's: no record to read for its job. */
export function isUnwrittenJobEntry(value: unknown): boolean {
  return value === UNWRITTEN_JOB_ENTRY;
}

/**
 * The pending job of `record`'s event to `destination` that intake wrote as its due-order entry
 * alone; `null` when the event has no job to that destination.
 */
export function unwrittenJob(record: KvEventRecord, destination: string): JobRecord | null {
  if (!record.jobs?.includes(destination)) return null;
  return newJob(record.id, destination, { now: record.receivedAt, expiresAt: record.expiresAt });
}

/** The due-order entry an unwritten job of `record`'s event to `destination` waits in. */
export function unwrittenJobEntryKey(record: KvEventRecord, destination: string): Deno.KvKey {
  return jobReadyKey(destination, record.receivedAt, record.id);
}

/** A job as read: its record (written or not), and whether that record is stored. */
export interface ReadJob {
  job: JobRecord;
  /** Whether the record is stored (`false`: it stands for an entry intake wrote alone). */
  isWritten: boolean;
}

/**
 * The jobs to `destination` of the events `eventIds`, in order: each stored record, or the pending
 * job an entry intake wrote stands for; `null` where there is neither (no such job, or expired).
 * `records` are the events' records when the caller has them already (same order).
 */
export async function readJobs(
  kv: Deno.Kv,
  destination: string,
  eventIds: readonly string[],
  records?: readonly (KvEventRecord | null)[],
): Promise<(ReadJob | null)[]> {
  const stored = await getManyInBatches<JobRecord>(
    kv,
    eventIds.map((id) => jobKey(destination, id)),
  );
  const missing = eventIds.flatMap((id, i) => stored[i]!.value === null ? [{ id, i }] : []);
  const found: (ReadJob | null)[] = stored.map((entry) =>
    entry.value === null ? null : { job: entry.value, isWritten: true }
  );
  if (missing.length === 0) return found;
  const events = records
    ? missing.map(({ i }) => records[i] ?? null)
    : (await getManyInBatches<KvEventRecord>(kv, missing.map(({ id }) => eventKey(id))))
      .map((entry) => entry.value);
  const candidates = missing.flatMap(({ i }, n) => {
    const record = events[n];
    const job = record ? unwrittenJob(record, destination) : null;
    return job && record ? [{ i, job, entryKey: unwrittenJobEntryKey(record, destination) }] : [];
  });
  const entries = await getManyInBatches(kv, candidates.map((c) => c.entryKey));
  candidates.forEach(({ i, job }, n) => {
    if (entries[n]!.versionstamp !== null) found[i] = { job, isWritten: false };
  });
  return found;
}
