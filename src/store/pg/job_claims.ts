/**
 * Claiming and settling delivery jobs in PostgreSQL: a destination's due jobs are locked with
 * `FOR UPDATE SKIP LOCKED`, oldest due first, and made `delivering` under a new token each, due
 * again at the lease's end (so a job whose deliverer died comes due again by itself), in one
 * statement that reads their events back too. Results of concurrent deliveries are stored
 * together, one `UPDATE` checking each job's token: a lost lease stores nothing.
 *
 * @module
 */
import type postgres from "postgres";
import { createGroupCommitter } from "../group_commit.ts";
import { type JobOutcome, type JobRecord, settledJob } from "../job_record.ts";
import type { ClaimedJob, ClaimJobsOptions, Lease } from "../store.ts";
import { PgJobLease, pgJobLease } from "./lease.ts";
import { eventOf, jobColumnsOf, jobRecordOf, type JobRow, storedMs } from "./rows.ts";

/** Results stored per statement at most. */
const RESULTS_PER_STATEMENT = 200;

/** Claims `destination`'s due jobs, oldest due first, at most `limit`, each with its event. */
export async function claimJobs(
  sql: postgres.Sql,
  destination: string,
  { now, limit, leaseUntil }: ClaimJobsOptions,
): Promise<ClaimedJob[]> {
  if (limit < 1) return [];
  const rows = await sql.unsafe<(JobRow & { event: string; was_due: number })[]>(
    `WITH due AS (
       SELECT destination, event_id, due_at FROM wa_jobs
       WHERE destination = $1 AND due_at <= $2
       ORDER BY due_at, event_seq
       LIMIT $3
       FOR UPDATE SKIP LOCKED
     )
     UPDATE wa_jobs j SET state = 'delivering', due_at = $4, lease_token = gen_random_uuid()
     FROM due, wa_events e
     WHERE j.destination = due.destination AND j.event_id = due.event_id AND e.id = j.event_id
     RETURNING ${jobColumnsOf("j")}, e.event, due.due_at AS was_due`,
    [destination, now, limit, storedMs(leaseUntil)],
  );
  rows.sort((a, b) => a.was_due - b.was_due || a.event_seq - b.event_seq);
  return rows.map((row) => {
    const job = jobRecordOf(row);
    return { job, event: eventOf(row), lease: new PgJobLease(row.lease_token!, job) };
  });
}

/** Moves a job lease's end to `until`; `false` when the lease was lost. */
export async function extendJobLease(
  sql: postgres.Sql,
  handle: Lease,
  until: number,
): Promise<boolean> {
  const lease = pgJobLease(handle);
  const { destination, eventId } = lease.record;
  const rows = await sql`
    UPDATE wa_jobs SET due_at = ${storedMs(until)}
    WHERE destination = ${destination} AND event_id = ${eventId}
      AND lease_token = ${lease.token} AND state = 'delivering'
    RETURNING 1`;
  if (rows.length === 0) return false;
  lease.record = { ...lease.record, dueAt: until };
  return true;
}

/** Stores delivery attempts' results, gathered with those of other attempts. */
export interface JobSettler {
  /** Stores what an attempt came to; `false`, storing nothing, once the lease was lost. */
  settle(claim: ClaimedJob, outcome: JobOutcome): Promise<boolean>;
}

/** Creates the job settler over `sql`. */
export function createJobSettler(
  sql: postgres.Sql,
  { maxInFlight }: { maxInFlight: number },
): JobSettler {
  const committer = createGroupCommitter<{ lease: PgJobLease; next: JobRecord }, boolean>({
    maxGroupSize: RESULTS_PER_STATEMENT,
    maxInFlight,
    commit: (results) => _storeResults(sql, results),
  });
  return {
    settle(claim, outcome) {
      const lease = pgJobLease(claim.lease);
      return committer.submit({ lease, next: settledJob(lease.record, outcome) });
    },
  };
}

async function _storeResults(
  sql: postgres.Sql,
  results: readonly { lease: PgJobLease; next: JobRecord }[],
): Promise<boolean[]> {
  // A lone statement: it may be answered just before its commit (see `record.ts`); a result
  // lost that way in a database crash costs one more run, never a lost event.
  const rows = await sql<{ token: string }[]>`
    UPDATE wa_jobs j SET
      state = v.state,
      attempts = v.attempts,
      due_at = v.due_at,
      lease_token = NULL,
      last_error = v.last_error,
      history = v.history::jsonb
    FROM unnest(
      ${results.map((r) => r.next.destination)}::text[],
      ${results.map((r) => r.next.eventId)}::text[],
      ${results.map((r) => r.lease.token)}::uuid[],
      ${results.map((r) => r.next.state)}::text[],
      ${results.map((r) => r.next.attempts)}::integer[],
      ${results.map((r) => r.next.dueAt === null ? null : storedMs(r.next.dueAt))}::bigint[],
      ${results.map((r) => r.next.lastError ?? null)}::text[],
      ${results.map((r) => JSON.stringify(r.next.history))}::text[]
    ) AS v(destination, event_id, token, state, attempts, due_at, last_error, history)
    WHERE j.destination = v.destination AND j.event_id = v.event_id
      AND j.lease_token = v.token AND j.state = 'delivering'
    RETURNING v.token`;
  const stored = new Set(rows.map((row) => row.token));
  return results.map((r) => stored.has(r.lease.token));
}
