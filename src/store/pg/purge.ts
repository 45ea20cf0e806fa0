/**
 * Retention in PostgreSQL: the events whose records expired by `now` are deleted oldest first, at
 * most `limit` per call (the worker calls again), their delivery jobs with them (`ON DELETE
 * CASCADE`); message statuses and reply records past their wall-clock expiry go the same way, in
 * batches as small.
 *
 * @module
 */
import type postgres from "postgres";
import { DB_NOW_MS } from "./db_clock.ts";

/** Removes at most `limit` expired events (and expired statuses and replies); returns the events. */
export async function purgeExpired(
  sql: postgres.Sql,
  { now, limit }: { now: number; limit: number },
): Promise<number> {
  const batch = Math.max(1, Math.floor(limit));
  const events = await sql`
    DELETE FROM wa_events WHERE id IN (
      SELECT id FROM wa_events WHERE expires_at <= ${now}
      ORDER BY expires_at LIMIT ${batch} FOR UPDATE SKIP LOCKED
    )
    RETURNING 1`;
  await sql.unsafe(
    `DELETE FROM wa_message_statuses WHERE id IN (
       SELECT id FROM wa_message_statuses WHERE expires_at <= ${DB_NOW_MS}
       LIMIT $1 FOR UPDATE SKIP LOCKED)`,
    [batch],
  );
  await sql.unsafe(
    `DELETE FROM wa_windows WHERE (business, user_id) IN (
       SELECT business, user_id FROM wa_windows WHERE expires_at <= ${DB_NOW_MS}
       LIMIT $1 FOR UPDATE SKIP LOCKED)`,
    [batch],
  );
  await sql.unsafe(
    `DELETE FROM wa_replies WHERE (handler, inbound_id) IN (
       SELECT handler, inbound_id FROM wa_replies WHERE expires_at <= ${DB_NOW_MS}
       LIMIT $1 FOR UPDATE SKIP LOCKED)`,
    [batch],
  );
  return events.length;
}
