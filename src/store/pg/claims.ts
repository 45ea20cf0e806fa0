/**
 * Claiming, leasing and settling events in PostgreSQL. A claim locks the due rows it looks at
 * with `FOR UPDATE SKIP LOCKED` (so claimers of several instances each take other rows, never
 * waiting for one another) and writes a new lease token into those it takes, their `ready_at`
 * moved to the lease's end: events whose worker died come due again by themselves. Results of
 * concurrent runs are stored together (group commit, as in the Deno KV store), one `UPDATE` whose
 * `WHERE` checks each row's lease token, so the result of a lost lease stores nothing.
 *
 * @module
 */
import type postgres from "postgres";
import type { Logger } from "../../ops/log.ts";
import { type EventRecord, renewedExpiresAt, settledRecord } from "../event_record.ts";
import { createGroupCommitter } from "../group_commit.ts";
import type { ClaimedEvent, ClaimOptions, Lease, QueueFigures, RunOutcome } from "../store.ts";
import { pgClaimLease, PgLease, pgLease } from "./lease.ts";
import {
  eventColumnsOf,
  eventOf,
  eventRecordOf,
  type EventRowWithEvent,
  storedMs,
} from "./rows.ts";

/** Results stored per statement at most. */
const RESULTS_PER_STATEMENT = 200;

/**
 * The events this store leased out (claimed, or recorded leased) whose results are not stored:
 * what `isRunning` may answer yes for, so a claim can leave them out in SQL.
 */
export class HeldEvents {
  readonly #leases = new Map<string, PgLease>();

  /** Notes the events of `lease` as held. */
  hold(lease: PgLease): void {
    for (const id of lease.ids) this.#leases.set(id, lease);
  }

  /** Forgets event `id` (its result is stored, or its lease lost). */
  release(id: string): void {
    this.#leases.delete(id);
  }

  /** The held events `isRunning` says still run; forgets the others. */
  running(isRunning: (id: string) => boolean): string[] {
    const ids: string[] = [];
    for (const id of this.#leases.keys()) {
      if (isRunning(id)) ids.push(id);
      else this.#leases.delete(id);
    }
    return ids;
  }
}

/**
 * Claims due events, oldest due first, in one statement: the due rows are locked (skipping those
 * another claimer holds), leaving out those the caller runs, at most `limit` and the room left,
 * and get one new lease. An event whose JSON cannot be read is logged and left to its lease.
 *
 * One statement rather than a transaction: a server dying under a transaction crashes
 * postgres.js 3.4 (see `client.ts`). So `room()` is read before the rows are found, and the events
 * the caller runs are those this store leased to it (`held`) that `isRunning` confirms.
 */
export async function claimDue(
  sql: postgres.Sql,
  options: ClaimOptions,
  { held, logger }: { held: HeldEvents; logger: Logger },
): Promise<ClaimedEvent[]> {
  const { now, leaseUntil } = options;
  const limit = Math.max(0, Math.min(options.limit, options.room?.() ?? options.limit));
  if (limit < 1) return [];
  const running = options.isRunning ? held.running(options.isRunning) : [];
  const token = crypto.randomUUID();
  const rows = await sql.unsafe<(EventRowWithEvent & { was_ready: number })[]>(
    `WITH due AS (
       SELECT id, ready_at FROM wa_events
       WHERE ready_at <= $1 AND NOT (id = ANY($2::text[]))
       ORDER BY ready_at, seq
       LIMIT $3
       FOR UPDATE SKIP LOCKED
     )
     UPDATE wa_events e SET lease_token = $4, ready_at = $5
     FROM due WHERE e.id = due.id
     RETURNING ${eventColumnsOf("e")}, e.event,
       due.ready_at AS was_ready`,
    [now, running, limit, token, storedMs(leaseUntil)],
  );
  if (rows.length === 0) return [];
  rows.sort((a, b) => a.was_ready - b.was_ready || a.seq - b.seq);
  const lease = new PgLease(token, leaseUntil, rows.map((row) => row.id));
  const claims: ClaimedEvent[] = [];
  for (const row of rows) {
    try {
      claims.push({ record: eventRecordOf(row, { isListed: false }), event: eventOf(row), lease });
    } catch (error) {
      lease.ids.delete(row.id);
      logger.error("cannot read event", { eventId: row.id, error });
    }
  }
  held.hold(lease);
  return claims;
}

/**
 * Moves a lease's end to `until` for every event it still holds (those whose results are being
 * stored aside); `false` when any of them was taken (claimed again after the lease ran out) or
 * none is left.
 */
export async function extendLease(
  sql: postgres.Sql,
  handle: Lease,
  until: number,
): Promise<boolean> {
  const lease = pgLease(handle);
  if (lease.ids.size === 0) return false;
  const ids = [...lease.ids].filter((id) => !lease.settling.has(id));
  if (ids.length === 0) {
    lease.until = until;
    return true;
  }
  const rows = await sql`
    UPDATE wa_events SET ready_at = ${storedMs(until)}
    WHERE lease_token = ${lease.token} AND id = ANY(${ids}::text[])
    RETURNING id`;
  if (rows.length < ids.length) return false;
  lease.until = until;
  return true;
}

/** Stores runs' results, gathered with those of other runs. */
export interface Settler {
  /** Stores what a run came to; `false`, storing nothing, once its lease was lost. */
  settle(claim: ClaimedEvent, outcome: RunOutcome): Promise<boolean>;
}

/** A result ready to store: the record it makes, under the claim's lease. */
interface _Result {
  lease: PgLease;
  next: EventRecord;
}

/** Options for {@linkcode createSettler}. */
export interface SettlerOptions {
  /** How long a run's lease lasts: a waiting record must outlive its next run's first lease. */
  leaseMs: number;
  /** How long records live: the longer of the dedup TTL and the retention. */
  recordLifeMs: number;
  /** Statements running at once at most. */
  maxInFlight: number;
}

/** Creates the settler over `sql`; a stored result releases its event from `held`. */
export function createSettler(
  sql: postgres.Sql,
  options: SettlerOptions & { held: HeldEvents },
): Settler {
  const committer = createGroupCommitter<_Result, boolean>({
    maxGroupSize: RESULTS_PER_STATEMENT,
    maxInFlight: options.maxInFlight,
    commit: (results) => _storeResults(sql, results),
  });
  return {
    async settle(claim, outcome) {
      const lease = pgClaimLease(claim);
      const settled = settledRecord(claim.record, outcome);
      const until = (settled.dueAt ?? outcome.endedAt) + options.leaseMs;
      const next = {
        ...settled,
        expiresAt: renewedExpiresAt(settled.expiresAt, until, options.recordLifeMs),
      };
      lease.settling.add(claim.record.id);
      try {
        const isStored = await committer.submit({ lease, next });
        lease.ids.delete(claim.record.id);
        options.held.release(claim.record.id);
        return isStored;
      } finally {
        lease.settling.delete(claim.record.id);
      }
    },
  };
}

/** Stores results in one `UPDATE`, each where its lease still holds; returns which were. */
async function _storeResults(sql: postgres.Sql, results: readonly _Result[]): Promise<boolean[]> {
  // A lone statement: it may be answered just before its commit (see `record.ts`); a result
  // lost that way in a database crash costs one more run, never a lost event.
  const rows = await sql<{ id: string; token: string }[]>`
    UPDATE wa_events e SET
      state = v.state,
      attempts = v.attempts,
      due_at = v.due_at,
      ready_at = v.due_at,
      lease_token = NULL,
      expires_at = v.expires_at,
      completed_handlers = v.completed_handlers::jsonb,
      last_error = v.last_error,
      history = v.history::jsonb
    FROM unnest(
      ${results.map((r) => r.next.id)}::text[],
      ${results.map((r) => r.lease.token)}::uuid[],
      ${results.map((r) => r.next.state)}::text[],
      ${results.map((r) => r.next.attempts)}::integer[],
      ${results.map((r) => r.next.dueAt === null ? null : storedMs(r.next.dueAt))}::bigint[],
      ${results.map((r) => storedMs(r.next.expiresAt))}::bigint[],
      ${results.map((r) => JSON.stringify(r.next.completedHandlers))}::text[],
      ${results.map((r) => r.next.lastError ?? null)}::text[],
      ${results.map((r) => JSON.stringify(r.next.history))}::text[]
    ) AS v(id, token, state, attempts, due_at, expires_at, completed_handlers, last_error, history)
    WHERE e.id = v.id AND e.lease_token = v.token
    RETURNING e.id, v.token`;
  const stored = new Set(rows.map((row) => `${row.id} ${row.token}`));
  return results.map((r) => stored.has(`${r.next.id} ${r.lease.token}`));
}

/**
 * Makes due at `now` the retrying events due later than `latestDueAt`, at most `limit`, renewing
 * their expiry as a settle would; returns how many.
 */
export async function bringForward(
  sql: postgres.Sql,
  options: {
    now: number;
    latestDueAt: number;
    limit: number;
    leaseMs: number;
    recordLifeMs: number;
  },
): Promise<number> {
  const { now, latestDueAt, limit, leaseMs, recordLifeMs } = options;
  const until = now + leaseMs;
  const rows = await sql`
    UPDATE wa_events SET
      due_at = ${now},
      ready_at = ${now},
      expires_at = CASE WHEN 2 * (expires_at - ${until}::bigint) >= ${recordLifeMs}::bigint
        THEN expires_at ELSE ${until + recordLifeMs}::bigint END
    WHERE id IN (
      SELECT id FROM wa_events
      WHERE ready_at > ${storedMs(latestDueAt)} AND state = 'retrying' AND lease_token IS NULL
      ORDER BY ready_at, seq
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED
    )
    RETURNING id`;
  return rows.length;
}

/**
 * The queue at `now`, reading at most `limit` waiting events in due order (leased ones at their
 * lease's end, as they come due again if their worker dies).
 */
export async function queueFigures(
  sql: postgres.Sql,
  now: number,
  limit: number,
): Promise<QueueFigures> {
  const [row] = await sql<{ due: number; later: number; first: number | null }[]>`
    SELECT
      count(*) FILTER (WHERE ready_at <= ${now})::integer AS due,
      count(*) FILTER (WHERE ready_at > ${now})::integer AS later,
      min(ready_at) AS first
    FROM (
      SELECT ready_at FROM wa_events WHERE ready_at IS NOT NULL
      ORDER BY ready_at LIMIT ${Math.max(1, limit)}
    ) waiting`;
  const figures: QueueFigures = { due: row!.due, later: row!.later, oldestDueAgeMs: 0 };
  if (row!.first !== null) {
    figures.nextDueAt = row!.first;
    if (row!.first <= now) figures.oldestDueAgeMs = now - row!.first;
  }
  return figures;
}
