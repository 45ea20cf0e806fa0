/**
 * The delivery jobs' log: an event's jobs read back, a destination's jobs listed, and jobs
 * replayed (one, or every dead job of a destination) so they are delivered again.
 *
 * @module
 */
import { isWaitingJob, type JobRecord, replayedJob } from "../job_record.ts";
import type {
  JobFigures,
  JobPage,
  JobReplayResult,
  JobsReplayed,
  ListJobsOptions,
  ReplayJobsOptions,
} from "../store.ts";
import { commitWithRetry } from "./commit.ts";
import { pageTimeline } from "./event_log.ts";
import {
  holdsUnwrittenJob,
  jobsOfEntry,
  readJobs,
  removeFromEntry,
  unwrittenJob,
  unwrittenJobEntryKey,
} from "./job_records.ts";
import {
  eventKey,
  jobDeadKey,
  jobDeadPrefix,
  jobKey,
  jobReadyKey,
  jobReadyPrefix,
  type KvEventRecord,
} from "./keys.ts";

/** Most entries fetched per round trip while listing. */
const LIST_BATCH_SIZE = 500;
/** Attempts of a replay whose record keeps changing under it before giving up. */
const REPLAY_ATTEMPTS = 10;

/** Every job of event `eventId`, in the order its destinations were given; none when unknown. */
export async function getJobs(kv: Deno.Kv, eventId: string): Promise<JobRecord[]> {
  const record = (await kv.get<KvEventRecord>(eventKey(eventId))).value;
  const jobs = await Promise.all(
    (record?.jobs ?? []).map(async (destination) =>
      (await readJobs(kv, destination, [eventId], [record]))[0]
    ),
  );
  return jobs.flatMap((read) => read ? [read.job] : []);
}

/**
 * Lists `destination`'s jobs newest first (by the reception of their events, walking the event
 * timeline), filtered by state, at most `limit`, with a cursor exactly when another match follows
 * (or when {@linkcode MAX_SCAN_EVENTS} events were read without settling the page).
 */
export async function listJobs(
  kv: Deno.Kv,
  destination: string,
  options: ListJobsOptions,
): Promise<JobPage> {
  const { items, cursor } = await pageTimeline(kv, options, async (batch) => {
    const jobs = await readJobs(kv, destination, batch.map((p) => p.id));
    return jobs.map((read) =>
      read && (options.state === undefined || read.job.state === options.state) ? read.job : null
    );
  });
  return cursor === undefined ? { jobs: items } : { jobs: items, cursor };
}

/**
 * Puts the job of event `eventId` to `destination` back to pending, due at `now`, with a fresh
 * retry schedule (`replayedJob`); `busy` while a deliverer's lease on it lasts (one that ran out
 * is taken over: its deliverer's settle then stores nothing). One atomic checks the record's
 * versionstamp (which guards its due-order entry too; for a job without one, the entry intake
 * wrote), moves the job to an entry of its own and drops a dead letter.
 */
export async function replayJob(
  kv: Deno.Kv,
  destination: string,
  { eventId, now }: { eventId: string; now: number },
): Promise<JobReplayResult> {
  for (let attempt = 1; attempt <= REPLAY_ATTEMPTS; attempt++) {
    const current = await kv.get<JobRecord>(jobKey(destination, eventId));
    const unwritten = current.value === null
      ? await _unwrittenJob(kv, destination, eventId)
      : undefined;
    const job = current.value ?? unwritten?.job ?? null;
    if (job === null) return { status: "not_found" };
    if (job.state === "delivering" && job.dueAt! > now) return { status: "busy" };
    const replayed = replayedJob(job, now);
    const expireIn = Math.max(1, job.expiresAt - now);
    const result = await commitWithRetry(() => {
      // An unwritten job is in its intake entry: a claim taking it meanwhile fails this check.
      const atomic = kv.atomic().check(current);
      const ownKey = jobReadyKey(destination, now, eventId);
      if (unwritten) {
        atomic.check(unwritten.entry);
        const isOwn = unwritten.entry.key.every((part, i) => part === ownKey[i]);
        if (!isOwn) removeFromEntry(atomic, unwritten.entry, new Set([eventId]), now);
      } else if (isWaitingJob(job) && job.dueAt !== now) {
        atomic.delete(jobReadyKey(destination, job.dueAt!, eventId));
      }
      return atomic
        .set(ownKey, eventId, { expireIn })
        .set(jobKey(destination, eventId), replayed, { expireIn })
        .delete(jobDeadKey(destination, eventId));
    });
    if (result.ok) return { status: "replayed", job: replayed };
  }
  throw new Error(
    `Cannot replay the job of event "${eventId}" to "${destination}": its record keeps changing`,
  );
}

/** The pending job of event `eventId` to `destination` that has no record, with its entry. */
async function _unwrittenJob(
  kv: Deno.Kv,
  destination: string,
  eventId: string,
): Promise<{ job: JobRecord; entry: Deno.KvEntry<unknown> } | undefined> {
  const record = (await kv.get<KvEventRecord>(eventKey(eventId))).value;
  const job = record && unwrittenJob(record, destination);
  if (!record || !job) return undefined;
  const entry = await kv.get(unwrittenJobEntryKey(record, destination));
  return holdsUnwrittenJob(entry, eventId)
    ? { job, entry: entry as Deno.KvEntry<unknown> }
    : undefined;
}

/** Replays every dead job of `destination` (see {@linkcode replayJob}); returns how many. */
export async function replayDeadJobs(
  kv: Deno.Kv,
  destination: string,
  now: number,
): Promise<number> {
  // Collected first: each replay deletes the entry being listed.
  const entries: Deno.KvEntry<unknown>[] = [];
  for await (const entry of kv.list({ prefix: jobDeadPrefix(destination) })) entries.push(entry);
  let replayed = 0;
  for (const entry of entries) {
    const eventId = String(entry.key[2]);
    const result = await replayJob(kv, destination, { eventId, now });
    if (result.status === "replayed") replayed++;
    else if (result.status === "not_found") {
      await kv.atomic().check(entry).delete(entry.key).commit();
    }
  }
  return replayed;
}

/**
 * Replays `destination`'s jobs that match `options` (state, their event's kind, when it was
 * received), newest first along the event timeline: at most `limit` matches, each replayed
 * on its own ({@linkcode replayJob}), with a cursor when more may follow. `dryRun` only counts.
 */
export async function replayJobs(
  kv: Deno.Kv,
  destination: string,
  options: ReplayJobsOptions,
): Promise<JobsReplayed> {
  const { state, kind } = options;
  const { items, cursor } = await pageTimeline(kv, options, async (batch) => {
    const records = (await kv.getMany<KvEventRecord[]>(batch.map((p) => eventKey(p.id))))
      .map((entry) => entry.value);
    const jobs = await readJobs(kv, destination, batch.map((p) => p.id), records);
    return jobs.map((read, i) =>
      read && (state === undefined || read.job.state === state) &&
        (kind === undefined || records[i]?.kind === kind)
        ? read.job
        : null
    );
  });
  const outcome: JobsReplayed = { matched: items.length, replayed: 0, busy: 0 };
  if (cursor !== undefined) outcome.cursor = cursor;
  if (options.dryRun) return outcome;
  for (const job of items) {
    const result = await replayJob(kv, destination, { eventId: job.eventId, now: options.now });
    if (result.status === "replayed") outcome.replayed++;
    else if (result.status === "busy") outcome.busy++;
  }
  return outcome;
}

/**
 * `destination`'s due order at `now`, reading at most `limit` waiting jobs: how many are due, how
 * many later (leased or waiting for a retry), and how long the oldest due one has waited.
 */
export async function jobFigures(
  kv: Deno.Kv,
  destination: string,
  { now, limit }: { now: number; limit: number },
): Promise<JobFigures> {
  const figures: JobFigures = { due: 0, later: 0, oldestDueAgeMs: 0 };
  const batchSize = Math.max(1, Math.min(limit, LIST_BATCH_SIZE));
  const entries = kv.list({ prefix: jobReadyPrefix(destination) }, { limit, batchSize });
  let read = 0;
  for await (const entry of entries) {
    const dueAt = entry.key[2];
    if (typeof dueAt !== "number") continue;
    // An intake commit's shared entry stands for several jobs: at most `limit` are counted.
    const jobs = Math.min(jobsOfEntry(entry).ids.length, limit - read);
    read += jobs;
    if (dueAt > now) figures.later += jobs;
    else {
      if (figures.due === 0 && jobs > 0) figures.oldestDueAgeMs = now - dueAt;
      figures.due += jobs;
    }
    if (read >= limit) break;
  }
  return figures;
}
