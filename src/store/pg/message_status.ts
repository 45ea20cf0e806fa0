/**
 * Message statuses in PostgreSQL: one upsert per status, whose `WHERE` applies the order of
 * `message_status.ts` (`sent < delivered < read < played`, `failed` terminal) against the stored
 * row under its lock, so concurrent writers keep the furthest. A status expires
 * `retentionMs` after its last change; an expired one is replaced by any.
 *
 * @module
 */
import type postgres from "postgres";
import { type MessageStatusRecord, TRACKED_STATUSES } from "../message_status.ts";
import { DB_NOW_MS } from "./db_clock.ts";

/** Message ids longer than this are not kept: real `wamid`s are under a hundred characters. */
export const MAX_WAMID_CHARS = 512;

/** Each status's rank, `failed` last (it replaces any other, and nothing replaces it). */
const _RANK = `array_position(ARRAY[${TRACKED_STATUSES.map((s) => `'${s}'`).join(", ")}], `;

/** Stores `next` if it moves its message further; returns whether it did. */
export async function advanceMessageStatus(
  sql: postgres.Sql,
  next: MessageStatusRecord,
  retentionMs: number,
): Promise<boolean> {
  if (next.id.length > MAX_WAMID_CHARS) return false;
  const rows = await sql.unsafe(
    `INSERT INTO wa_message_statuses AS s (id, status, updated_at, errors, expires_at)
     VALUES ($1, $2, $3, $4::jsonb, ${DB_NOW_MS} + $5::bigint)
     ON CONFLICT (id) DO UPDATE SET
       status = excluded.status, updated_at = excluded.updated_at, errors = excluded.errors,
       expires_at = excluded.expires_at
     WHERE s.expires_at <= ${DB_NOW_MS}
       OR (s.status <> 'failed' AND ${_RANK}excluded.status) > ${_RANK}s.status))
     RETURNING 1`,
    [
      next.id,
      next.status,
      next.updatedAt,
      next.errors === undefined ? null : sql.json(next.errors as unknown as postgres.JSONValue),
      Math.round(retentionMs),
    ],
  );
  return rows.length > 0;
}

/** The stored status of message `wamid`, or `null` (never seen, or expired). */
export async function getMessageStatus(
  sql: postgres.Sql,
  wamid: string,
): Promise<MessageStatusRecord | null> {
  if (wamid.length > MAX_WAMID_CHARS) return null;
  const [row] = await sql.unsafe<
    { id: string; status: MessageStatusRecord["status"]; updated_at: number; errors: unknown }[]
  >(
    `SELECT id, status, updated_at, errors FROM wa_message_statuses
     WHERE id = $1 AND expires_at > ${DB_NOW_MS}`,
    [wamid],
  );
  if (!row) return null;
  const record: MessageStatusRecord = { id: row.id, status: row.status, updatedAt: row.updated_at };
  if (row.errors !== null) record.errors = row.errors as NonNullable<MessageStatusRecord["errors"]>;
  return record;
}
