/**
 * The event log in PostgreSQL: one event read back whole, a page of events newest first (by
 * reception, then by the order they were recorded in) with a filter on the state the admin API
 * shows and on the kind, each served by an index (`migrations.ts`), and replays: one event, or
 * every dead letter in batches.
 *
 * @module
 */
import type postgres from "postgres";
import { eventSummary } from "../event_record.ts";
import type { EventPage, ListEventsOptions, ReplayResult, StoredEvent } from "../store.ts";
import { pageOf, pageRequest } from "./cursor.ts";
import { beforePosition, queryParams } from "./query_params.ts";
import {
  EVENT_COLUMNS,
  eventOf,
  eventRecordOf,
  type EventRow,
  type EventRowWithEvent,
} from "./rows.ts";
import { notifyDue } from "./wakeups.ts";

/** Dead letters replayed per statement: a replay of thousands never holds one long lock. */
const REPLAY_BATCH = 500;

/** Event `id`'s record (its state as listed) and the event; `null` when unknown. */
export async function getEvent(sql: postgres.Sql, id: string): Promise<StoredEvent | null> {
  const [row] = await sql.unsafe<EventRowWithEvent[]>(
    `SELECT ${EVENT_COLUMNS}, event FROM wa_events WHERE id = $1`,
    [id],
  );
  if (!row) return null;
  return { record: eventRecordOf(row, { isListed: true }), event: eventOf(row) };
}

/**
 * A page of events newest first, filtered by listed state, kind, reception time, what the event
 * says (`event_filter.ts`, from the columns recording filled) and its jobs' states; it reads one
 * row more than the page to know whether a cursor is due. Throws `InvalidCursorError` for a cursor it did not
 * make.
 */
export async function listEvents(
  sql: postgres.Sql,
  options: ListEventsOptions,
): Promise<EventPage> {
  const { limit, after } = pageRequest(options);
  const conditions: string[] = [];
  const query = queryParams();
  const { params, param } = query;
  if (options.state !== undefined) conditions.push(`listed_state = ${param(options.state)}`);
  if (options.kind !== undefined) conditions.push(`kind = ${param(options.kind)}`);
  if (options.receivedFrom !== undefined) {
    conditions.push(`received_at >= ${param(options.receivedFrom)}::bigint`);
  }
  if (options.receivedTo !== undefined) {
    conditions.push(`received_at <= ${param(options.receivedTo)}::bigint`);
  }
  for (const [column, value] of _factFilters(options)) {
    conditions.push(`${column} = ${param(value)}`);
  }
  if (options.jobState !== undefined) {
    conditions.push(
      `EXISTS (SELECT 1 FROM wa_jobs j WHERE j.event_id = wa_events.id AND j.state = ${
        param(options.jobState)
      })`,
    );
  }
  if (after) conditions.push(beforePosition(query, after, ["received_at", "seq"]));
  const where = conditions.length > 0 ? `WHERE ${conditions.join(" AND ")}` : "";
  const rows = await sql.unsafe<EventRow[]>(
    `SELECT ${EVENT_COLUMNS} FROM wa_events ${where}
     ORDER BY received_at DESC, seq DESC LIMIT ${param(limit + 1)}`,
    params,
  );
  const { page, cursor } = pageOf(rows, limit, (row) => ({
    receivedAt: row.received_at,
    seq: row.seq,
  }));
  const events = page.map((row) => eventSummary(eventRecordOf(row, { isListed: true })));
  return cursor === undefined ? { events } : { events, cursor };
}

/**
 * Puts event `id` back to pending, due at `now`, with a fresh retry schedule, unless a lease holds
 * it (`busy`); one `UPDATE` whose `WHERE` checks that no lease does.
 */
export async function replayEvent(
  sql: postgres.Sql,
  id: string,
  now: number,
): Promise<ReplayResult> {
  const [row] = await sql.unsafe<EventRow[]>(
    `UPDATE wa_events SET ${_REPLAYED} WHERE id = $2 AND lease_token IS NULL
     RETURNING ${EVENT_COLUMNS}`,
    [now, id],
  );
  if (row) {
    await notifyDue(sql);
    return { status: "replayed", record: eventRecordOf(row, { isListed: true }) };
  }
  const [exists] = await sql`SELECT 1 FROM wa_events WHERE id = ${id}`;
  return exists ? { status: "busy" } : { status: "not_found" };
}

/** Replays every dead letter not leased, {@linkcode REPLAY_BATCH} per statement; returns how many. */
export async function replayDeadLetters(sql: postgres.Sql, now: number): Promise<number> {
  let replayed = 0;
  for (;;) {
    const rows = await sql.unsafe(
      `UPDATE wa_events SET ${_REPLAYED}
       WHERE id IN (
         SELECT id FROM wa_events WHERE listed_state = 'dead'
         LIMIT ${REPLAY_BATCH} FOR UPDATE SKIP LOCKED
       )
       RETURNING id`,
      [now],
    );
    replayed += rows.length;
    if (rows.length < REPLAY_BATCH) break;
  }
  if (replayed > 0) await notifyDue(sql);
  return replayed;
}

/** The event-fact filters that are set, as `[column, value]` (`event_filter.ts`). */
function _factFilters(options: ListEventsOptions): [string, string][] {
  const filters: [string, string | undefined][] = [
    ["field", options.field],
    ["msg_type", options.type],
    ["business_number", options.businessNumber],
    ["party", options.party],
  ];
  return filters.flatMap(([column, value]) => value === undefined ? [] : [[column, value]]);
}

/** The columns a replay sets (`$1` is now), as `replayedRecord` says. */
const _REPLAYED = "state = 'pending', due_at = $1, ready_at = $1, attempts = 0, " +
  "replayed_attempts = coalesce(replayed_attempts, 0) + attempts, completed_handlers = '[]'";
