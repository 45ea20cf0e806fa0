/**
 * The delivery jobs' log in PostgreSQL: an event's jobs in the order of its destinations, a
 * destination's jobs newest first (by their event's reception) filtered by state, replays (one
 * job, every dead job of a destination in batches, or those matching a filter a page at a time),
 * and a destination's due figures.
 *
 * @module
 */
import type postgres from "postgres";
import type { JobRecord } from "../job_record.ts";
import type {
  JobFigures,
  JobPage,
  JobReplayResult,
  JobsReplayed,
  ListJobsOptions,
  ReplayJobsOptions,
} from "../store.ts";
import { type ListingPosition, pageOf, pageRequest } from "./cursor.ts";
import { beforePosition, queryParams } from "./query_params.ts";
import { JOB_COLUMNS, jobRecordOf, type JobRow } from "./rows.ts";
import { notifyDue } from "./wakeups.ts";

/** Dead jobs replayed per statement. */
const REPLAY_BATCH = 500;

/** Every job of event `eventId`, in the order its destinations were given. */
export async function getJobs(sql: postgres.Sql, eventId: string): Promise<JobRecord[]> {
  const rows = await sql.unsafe<JobRow[]>(
    `SELECT ${JOB_COLUMNS} FROM wa_jobs WHERE event_id = $1 ORDER BY position`,
    [eventId],
  );
  return rows.map(jobRecordOf);
}

/** A page of `destination`'s jobs newest first, filtered by state, with a cursor when more follow. */
export async function listJobs(
  sql: postgres.Sql,
  destination: string,
  options: ListJobsOptions,
): Promise<JobPage> {
  const { limit, after } = pageRequest(options);
  const query = queryParams([destination]);
  const { params, param } = query;
  const conditions = ["destination = $1"];
  if (options.state !== undefined) conditions.push(`state = ${param(options.state)}`);
  if (after) conditions.push(beforePosition(query, after, ["created_at", "event_seq"]));
  const rows = await sql.unsafe<JobRow[]>(
    `SELECT ${JOB_COLUMNS} FROM wa_jobs WHERE ${conditions.join(" AND ")}
     ORDER BY created_at DESC, event_seq DESC LIMIT ${param(limit + 1)}`,
    params,
  );
  const { page, cursor } = pageOf(rows, limit, _jobPosition);
  const jobs = page.map(jobRecordOf);
  return cursor === undefined ? { jobs } : { jobs, cursor };
}

/**
 * Puts a job back to pending, due at `now`, with a fresh retry schedule, unless a deliverer's
 * lease on it lasts (`busy`); the token is dropped, so the old lease's settle stores nothing.
 */
export async function replayJob(
  sql: postgres.Sql,
  destination: string,
  { eventId, now }: { eventId: string; now: number },
): Promise<JobReplayResult> {
  const [row] = await sql.unsafe<JobRow[]>(
    `UPDATE wa_jobs SET ${_REPLAYED}
     WHERE destination = $2 AND event_id = $3 AND NOT (state = 'delivering' AND due_at > $1)
     RETURNING ${JOB_COLUMNS}`,
    [now, destination, eventId],
  );
  if (row) {
    await notifyDue(sql);
    return { status: "replayed", job: jobRecordOf(row) };
  }
  const [exists] = await sql`
    SELECT 1 FROM wa_jobs WHERE destination = ${destination} AND event_id = ${eventId}`;
  return exists ? { status: "busy" } : { status: "not_found" };
}

/** Replays every dead job of `destination`, {@linkcode REPLAY_BATCH} per statement. */
export async function replayDeadJobs(
  sql: postgres.Sql,
  destination: string,
  now: number,
): Promise<number> {
  let replayed = 0;
  for (;;) {
    const rows = await sql.unsafe(
      `UPDATE wa_jobs SET ${_REPLAYED}
       WHERE destination = $2 AND event_id IN (
         SELECT event_id FROM wa_jobs WHERE destination = $2 AND state = 'dead'
         LIMIT ${REPLAY_BATCH} FOR UPDATE SKIP LOCKED
       )
       RETURNING 1`,
      [now, destination],
    );
    replayed += rows.length;
    if (rows.length < REPLAY_BATCH) break;
  }
  if (replayed > 0) await notifyDue(sql);
  return replayed;
}

/** The columns a replay sets (`$1` is now), as `replayedJob` says. */
const _REPLAYED = "state = 'pending', due_at = $1, attempts = 0, lease_token = NULL, " +
  "replayed_attempts = coalesce(replayed_attempts, 0) + attempts";

/** `destination`'s waiting jobs at `now`, reading at most `limit` of them in due order. */
export async function jobFigures(
  sql: postgres.Sql,
  destination: string,
  { now, limit }: { now: number; limit: number },
): Promise<JobFigures> {
  const [row] = await sql<{ due: number; later: number; first: number | null }[]>`
    SELECT
      count(*) FILTER (WHERE due_at <= ${now})::integer AS due,
      count(*) FILTER (WHERE due_at > ${now})::integer AS later,
      min(due_at) FILTER (WHERE due_at <= ${now}) AS first
    FROM (
      SELECT due_at FROM wa_jobs WHERE destination = ${destination} AND due_at IS NOT NULL
      ORDER BY due_at LIMIT ${Math.max(1, limit)}
    ) waiting`;
  return {
    due: row!.due,
    later: row!.later,
    oldestDueAgeMs: row!.first === null ? 0 : now - row!.first,
  };
}

/**
 * Replays `destination`'s jobs matching `options` (state, their event's kind, the reception
 * range), newest first: at most `limit` per call with a cursor when more follow; jobs a lease
 * holds are left alone and counted `busy`; `dryRun` only counts.
 */
export async function replayJobs(
  sql: postgres.Sql,
  destination: string,
  options: ReplayJobsOptions,
): Promise<JobsReplayed> {
  const { limit, after } = pageRequest(options);
  const query = queryParams([destination, options.now]);
  const { params, param } = query;
  const conditions = ["j.destination = $1"];
  if (options.state !== undefined) conditions.push(`j.state = ${param(options.state)}`);
  if (options.kind !== undefined) conditions.push(`e.kind = ${param(options.kind)}`);
  if (options.receivedFrom !== undefined) {
    conditions.push(`j.created_at >= ${param(options.receivedFrom)}::bigint`);
  }
  if (options.receivedTo !== undefined) {
    conditions.push(`j.created_at <= ${param(options.receivedTo)}::bigint`);
  }
  if (after) conditions.push(beforePosition(query, after, ["j.created_at", "j.event_seq"]));
  const rows = await sql.unsafe<
    { event_id: string; created_at: number; event_seq: number; busy: boolean }[]
  >(
    `SELECT j.event_id, j.created_at, j.event_seq,
       (j.state = 'delivering' AND j.due_at > $2) AS busy
     FROM wa_jobs j JOIN wa_events e ON e.id = j.event_id
     WHERE ${conditions.join(" AND ")}
     ORDER BY j.created_at DESC, j.event_seq DESC LIMIT ${param(limit + 1)}`,
    params,
  );
  const { page: matched, cursor } = pageOf(rows, limit, _jobPosition);
  const outcome: JobsReplayed = { matched: matched.length, replayed: 0, busy: 0 };
  if (cursor !== undefined) outcome.cursor = cursor;
  if (options.dryRun || matched.length === 0) return outcome;
  const replayed = await sql.unsafe(
    `UPDATE wa_jobs SET ${_REPLAYED}
     WHERE destination = $2 AND event_id = ANY($3::text[])
       AND NOT (state = 'delivering' AND due_at > $1)
     RETURNING 1`,
    [options.now, destination, matched.map((row) => row.event_id)],
  );
  outcome.replayed = replayed.length;
  outcome.busy = matched.length - replayed.length;
  if (outcome.replayed > 0) await notifyDue(sql);
  return outcome;
}

/** A job row's place in its destination's listing: its event's reception and sequence number. */
function _jobPosition(row: { created_at: number; event_seq: number }): ListingPosition {
  return { receivedAt: row.created_at, seq: row.event_seq };
}
