/**
 * Reply records in PostgreSQL, one row per handler and inbound message, replaced only while they
 * still hold what the caller expects: compared as `jsonb` (by value, whatever the order of the
 * fields) in the `WHERE` of one statement, so two runs racing for one reply never both win. A
 * record expires `ttlMs` after it was written; an expired one counts as absent.
 *
 * @module
 */
import type postgres from "postgres";
import type { ReplyRecord } from "../reply_record.ts";
import type { ReplyOf } from "../store.ts";
import { DB_NOW_MS } from "./db_clock.ts";

/** The reply record of `of`, or `null`. */
export async function getReply(sql: postgres.Sql, of: ReplyOf): Promise<ReplyRecord | null> {
  const [row] = await sql.unsafe<{ record: ReplyRecord }[]>(
    `SELECT record FROM wa_replies
     WHERE handler = $1 AND inbound_id = $2 AND expires_at > ${DB_NOW_MS}`,
    [of.handler, of.inboundId],
  );
  return row?.record ?? null;
}

/** Replaces the reply record of `of` with `next` (removes it for `null`) if it still is `expected`. */
export async function swapReply(
  sql: postgres.Sql,
  of: ReplyOf,
  expected: ReplyRecord | null,
  next: ReplyRecord | null,
  ttlMs: number,
): Promise<boolean> {
  const key = [of.handler, of.inboundId];
  const ttl = Math.max(1, Math.round(ttlMs));
  if (expected === null && next === null) {
    const [present] = await sql.unsafe(
      `SELECT 1 FROM wa_replies
       WHERE handler = $1 AND inbound_id = $2 AND expires_at > ${DB_NOW_MS}`,
      key,
    );
    return present === undefined;
  }
  // One statement each. It may be answered just before its commit (see `record.ts`): in a
  // database crash at that instant a reply may be believed recorded and sent once more, which
  // the unknown-send count of `reply_record.ts` is there to bound.
  const rows = expected === null
    ? await sql.unsafe(
      `INSERT INTO wa_replies AS r (handler, inbound_id, record, expires_at)
       VALUES ($1, $2, $3::jsonb, ${DB_NOW_MS} + $4::bigint)
       ON CONFLICT (handler, inbound_id) DO UPDATE
         SET record = excluded.record, expires_at = excluded.expires_at
         WHERE r.expires_at <= ${DB_NOW_MS}
       RETURNING 1`,
      [...key, _json(sql, next!), ttl],
    )
    : next === null
    ? await sql.unsafe(
      `DELETE FROM wa_replies
       WHERE handler = $1 AND inbound_id = $2 AND record = $3::jsonb
         AND expires_at > ${DB_NOW_MS}
       RETURNING 1`,
      [...key, _json(sql, expected)],
    )
    : await sql.unsafe(
      `UPDATE wa_replies SET record = $4::jsonb, expires_at = ${DB_NOW_MS} + $5::bigint
       WHERE handler = $1 AND inbound_id = $2 AND record = $3::jsonb
         AND expires_at > ${DB_NOW_MS}
       RETURNING 1`,
      [...key, _json(sql, expected), _json(sql, next), ttl],
    );
  return rows.length > 0;
}

/** A record as a `jsonb` parameter (a string would be stored as a JSON string). */
function _json(sql: postgres.Sql, record: ReplyRecord): postgres.Parameter {
  return sql.json(record as unknown as postgres.JSONValue);
}
