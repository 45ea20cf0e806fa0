/**
 * Reading delivery jobs whose record may not be written yet. Intake writes no record for a new job:
 * the events of one intake commit share one due-order entry per destination,
 * `["job_ready", destination, dueAt, entryId]`, whose value lists their ids and when it expires
 * ({@linkcode SharedJobsEntry}; their records name it
 * as `jobsEntry`, their destinations as `jobs`): one write per destination per commit, in the
 * commit every acknowledgement waits for, instead of two per job. A job's record is written the
 * first time anything changes it (a claim, a replay), which takes its id out of the shared entry.
 * Until then the job is pending, due at that entry's time, exactly while the entry lists its id:
 * the record it stands for is made from the event's record (`newJob`).
 *
 * Every other due-order entry holds one job: its value is the event id (the job has a record), or
 * {@linkcode UNWRITTEN_JOB_ENTRY} for a pending job that a version before the shared entries wrote
 * alone (`["job_ready", destination, receivedAt, eventId]`); both are still read, the marker never
 * written again.
 *
 * @module
 */
import { type JobRecord, newJob } from "../job_record.ts";
import { getManyInBatches } from "./get_many.ts";
import { eventKey, jobKey, jobReadyKey, type KvEventRecord } from "./keys.ts";

/** The value of a due-order entry an older intake wrote for one job alone: it has no record. */
export const UNWRITTEN_JOB_ENTRY = 0;

/** The value of an intake commit's shared due-order entry. */
export interface SharedJobsEntry {
  /** The event ids of its pending jobs. */
  ids: string[];
  /** When it expires (the latest of its events), ms since the epoch, for rewriting it. */
  expiresAt: number;
}

/** What a due-order entry holds. */
export type DueEntryJobs =
  /** Pending jobs without records: an intake commit's shared entry, or an older intake's own. */
  | { isWritten: false; ids: string[] }
  /** One job whose record is written. */
  | { isWritten: true; ids: [string] };

/** The jobs a due-order entry of `destination` stands for, from its key and value. */
export function jobsOfEntry(entry: Deno.KvEntry<unknown>): DueEntryJobs {
  const { value } = entry;
  if (_isShared(value)) {
    return {
      isWritten: false,
      ids: value.ids.filter((id): id is string => typeof id === "string"),
    };
  }
  const id = String(entry.key[3]);
  return value === UNWRITTEN_JOB_ENTRY ? { isWritten: false, ids: [id] } : {
    isWritten: true,
    ids: [id],
  };
}

/**
 * Adds to `atomic` the rewrite, at `now`, of an intake commit's shared entry without `taken` (their
 * jobs got records, or their events are gone): the entry keeps the rest until it expires, or goes
 * when none is left. An entry of one job alone just goes. The caller checks the entry.
 */
export function removeFromEntry(
  atomic: Deno.AtomicOperation,
  entry: Deno.KvEntry<unknown>,
  taken: ReadonlySet<string>,
  now: number,
): void {
  const { value } = entry;
  if (!_isShared(value)) {
    atomic.delete(entry.key);
    return;
  }
  const ids = jobsOfEntry(entry).ids.filter((id) => !taken.has(id));
  if (ids.length === 0) {
    atomic.delete(entry.key);
    return;
  }
  const rest: SharedJobsEntry = { ids, expiresAt: value.expiresAt };
  atomic.set(entry.key, rest, { expireIn: Math.max(1, value.expiresAt - now) });
}

function _isShared(value: unknown): value is SharedJobsEntry {
  return typeof value === "object" && value !== null &&
    Array.isArray((value as SharedJobsEntry).ids) &&
    typeof (value as SharedJobsEntry).expiresAt === "number";
}

/**
 * The pending job of `record`'s event to `destination`, which has no record yet; `null` when the
 * event has no job to that destination. It was created when the event was received and is due
 * when its entry says.
 */
export function unwrittenJob(record: KvEventRecord, destination: string): JobRecord | null {
  if (!record.jobs?.includes(destination)) return null;
  const job = newJob(record.id, destination, {
    now: record.receivedAt,
    expiresAt: record.expiresAt,
  });
  if (record.jobsEntry) job.dueAt = record.jobsEntry.dueAt;
  return job;
}

/** The due-order entry an unwritten job of `record`'s event to `destination` waits in. */
export function unwrittenJobEntryKey(record: KvEventRecord, destination: string): Deno.KvKey {
  const shared = record.jobsEntry;
  return shared
    ? jobReadyKey(destination, shared.dueAt, shared.id)
    : jobReadyKey(destination, record.receivedAt, record.id);
}

/**
 * Whether `entry`, read where a job of `eventId` without a record waits, still lists it (an
 * entry of the event id that the version before the marker wrote counts: it has no record).
 */
export function holdsUnwrittenJob(entry: Deno.KvEntryMaybe<unknown>, eventId: string): boolean {
  if (entry.versionstamp === null) return false;
  return jobsOfEntry(entry as Deno.KvEntry<unknown>).ids.includes(eventId);
}

/** A job as read: its record (written or not), and whether that record is stored. */
export interface ReadJob {
  job: JobRecord;
  /** Whether the record is stored (`false`: it stands for an id in an intake entry). */
  isWritten: boolean;
}

/**
 * The jobs to `destination` of the events `eventIds`, in order: each stored record, or the pending
 * job an intake entry stands for; `null` where there is neither (no such job, or expired).
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
  const candidates = missing.flatMap(({ id, i }, n) => {
    const record = events[n];
    const job = record ? unwrittenJob(record, destination) : null;
    return job && record
      ? [{ id, i, job, entryKey: unwrittenJobEntryKey(record, destination) }]
      : [];
  });
  // The events of one intake commit share their entry: each entry is read once.
  const texts = candidates.map((c) => JSON.stringify(c.entryKey));
  const keys = new Map(texts.map((text, n) => [text, candidates[n]!.entryKey]));
  const read = await getManyInBatches(kv, [...keys.values()]);
  const entries = new Map([...keys.keys()].map((text, n) => [text, read[n]!]));
  candidates.forEach(({ id, i, job }, n) => {
    if (holdsUnwrittenJob(entries.get(texts[n]!)!, id)) found[i] = { job, isWritten: false };
  });
  return found;
}
