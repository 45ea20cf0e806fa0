/**
 * Rows of the PostgreSQL store as the domain sees them: an event's row becomes its
 * {@linkcode EventRecord} (absent columns left out, as the other stores leave the fields out) and
 * a job's row its {@linkcode JobRecord}. The column lists every query selects are here too, so a
 * column added by a migration is read in one place.
 *
 * @module
 */
import type { WebhookEvent } from "../../events/events.ts";
import type { AttemptRecord, EventRecord, EventState } from "../event_record.ts";
import type { JobRecord, JobState } from "../job_record.ts";

/** An event's row, as the queries of {@linkcode EVENT_COLUMNS} return it. */
export interface EventRow {
  seq: number;
  id: string;
  kind: EventRecord["kind"];
  /** The record's state (`pending`, `retrying`, `done`, `dead`). */
  state: Exclude<EventState, "processing">;
  /** The state the admin API shows: `processing` while a lease holds it. */
  listed_state: EventState;
  attempts: number;
  replayed_attempts: number | null;
  received_at: number;
  due_at: number | null;
  ready_at: number | null;
  lease_token: string | null;
  expires_at: number;
  completed_handlers: string[];
  last_error: string | null;
  history: AttemptRecord[];
}

/** An event's row with the event's JSON. */
export interface EventRowWithEvent extends EventRow {
  event: string;
}

/** The columns of {@linkcode EventRow}, for `SELECT` and `RETURNING` (unqualified). */
export const EVENT_COLUMNS = "seq, id, kind, state, listed_state, attempts, replayed_attempts, " +
  "received_at, due_at, ready_at, lease_token, expires_at, completed_handlers, last_error, history";

/** The columns of {@linkcode EventRow} qualified by `alias`, for joins. */
export function eventColumnsOf(alias: string): string {
  return _qualified(EVENT_COLUMNS, alias);
}

/**
 * The record of an event's row. With `isListed`, its state is the one the admin API shows
 * (`processing` while leased, as `getEvent` and `listEvents` report it); without, the record's
 * own (as a claim hands it to the worker).
 */
export function eventRecordOf(row: EventRow, { isListed }: { isListed: boolean }): EventRecord {
  const record: EventRecord = {
    id: row.id,
    kind: row.kind,
    state: isListed ? row.listed_state : row.state,
    attempts: row.attempts,
    receivedAt: row.received_at,
    dueAt: row.due_at,
    expiresAt: row.expires_at,
    completedHandlers: row.completed_handlers,
    history: row.history,
  };
  if (row.replayed_attempts !== null) record.replayedAttempts = row.replayed_attempts;
  if (row.last_error !== null) record.lastError = row.last_error;
  return record;
}

/** The event of a row, parsed from its JSON. */
export function eventOf(row: { event: string }): WebhookEvent {
  return JSON.parse(row.event);
}

/** A job's row, as the queries of {@linkcode JOB_COLUMNS} return it. */
export interface JobRow {
  destination: string;
  event_id: string;
  state: JobState;
  attempts: number;
  replayed_attempts: number | null;
  due_at: number | null;
  lease_token: string | null;
  created_at: number;
  expires_at: number;
  last_error: string | null;
  history: AttemptRecord[];
  event_seq: number;
}

/** The columns of {@linkcode JobRow}, for `SELECT` and `RETURNING` (unqualified). */
export const JOB_COLUMNS = "destination, event_id, state, attempts, replayed_attempts, due_at, " +
  "lease_token, created_at, expires_at, last_error, history, event_seq";

/** The columns of {@linkcode JobRow} qualified by `alias`, for joins. */
export function jobColumnsOf(alias: string): string {
  return _qualified(JOB_COLUMNS, alias);
}

function _qualified(columns: string, alias: string): string {
  return columns.split(", ").map((column) => `${alias}.${column}`).join(", ");
}

/** The record of a job's row. */
export function jobRecordOf(row: JobRow): JobRecord {
  const job: JobRecord = {
    eventId: row.event_id,
    destination: row.destination,
    state: row.state,
    attempts: row.attempts,
    dueAt: row.due_at,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    history: row.history,
  };
  if (row.replayed_attempts !== null) job.replayedAttempts = row.replayed_attempts;
  if (row.last_error !== null) job.lastError = row.last_error;
  return job;
}

/**
 * A time to store as `bigint`: ms since the epoch, whole. Times beyond what a `bigint` column
 * holds (the `Infinity` of versions without capped delays) are stored as the latest safe one.
 */
export function storedMs(ms: number): number {
  if (!Number.isFinite(ms)) return ms > 0 ? Number.MAX_SAFE_INTEGER : 0;
  return Math.round(Math.min(Math.max(ms, -Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER));
}
