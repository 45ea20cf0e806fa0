/**
 * Conversation windows in PostgreSQL: one row per business number and user holding when the
 * window closes. An opening is one upsert that only moves the close forward (or replaces a row no
 * longer kept), so concurrent openings keep the latest close. A row is kept, on the database's
 * clock, until a week after its window closed, and purged with the other expired records.
 *
 * @module
 */
import type postgres from "postgres";
import {
  isKeyableWindow,
  type OpenWindowOptions,
  WINDOW_KEPT_AFTER_CLOSE_MS,
  type WindowOf,
  type WindowRecord,
} from "../conversation_window.ts";
import { DB_NOW_MS } from "./db_clock.ts";

/** Stores `closesAt` as the close of `of`'s window if later than the kept one; whether it did. */
export async function openWindow(
  sql: postgres.Sql,
  of: WindowOf,
  { closesAt, now }: OpenWindowOptions,
): Promise<boolean> {
  if (!isKeyableWindow(of) || !Number.isFinite(closesAt)) return false;
  const lifeMs = closesAt + WINDOW_KEPT_AFTER_CLOSE_MS - now;
  if (lifeMs <= 0) return false;
  const rows = await sql.unsafe(
    `INSERT INTO wa_windows AS w (business, user_id, closes_at, expires_at)
     VALUES ($1, $2, $3, ${DB_NOW_MS} + $4::bigint)
     ON CONFLICT (business, user_id) DO UPDATE SET
       closes_at = excluded.closes_at, expires_at = excluded.expires_at
     WHERE w.closes_at < excluded.closes_at OR w.expires_at <= ${DB_NOW_MS}
     RETURNING 1`,
    [of.business, of.user, closesAt, Math.round(lifeMs)],
  );
  return rows.length > 0;
}

/** The kept window of `of`, or `null`. */
export async function getWindow(sql: postgres.Sql, of: WindowOf): Promise<WindowRecord | null> {
  if (!isKeyableWindow(of)) return null;
  const [row] = await sql.unsafe<{ closes_at: number }[]>(
    `SELECT closes_at FROM wa_windows
     WHERE business = $1 AND user_id = $2 AND expires_at > ${DB_NOW_MS}`,
    [of.business, of.user],
  );
  return row ? { closesAt: Number(row.closes_at) } : null;
}
