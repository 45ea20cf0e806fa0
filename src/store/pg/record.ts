/**
 * Recording in PostgreSQL: the events of concurrent deliveries are gathered (group commit, as the
 * Deno KV store gathers its commits) and recorded by one statement: an
 * `INSERT … ON CONFLICT (id) DO NOTHING RETURNING` of their rows, whose primary key is the dedup
 * mark, and in the same statement (so the same transaction) the delivery jobs of the events it
 * inserted. An event is recorded with its jobs, or not at all; one the statement did not return
 * had been recorded before (a duplicate). A failed statement stores nothing and fails only the
 * deliveries whose events it held, which intake answers 503 so Meta retries.
 *
 * The statement also signals the store's channel (`NOTIFY`, sent at commit) when it recorded an
 * event due now or a delivery job, so the workers of other instances wake at once.
 *
 * @module
 */
import type postgres from "postgres";
import type { WebhookEvent } from "../../events/events.ts";
import { eventFacts } from "../event_filter.ts";
import { newRecord, recordLifeMs, type RetentionOptions } from "../event_record.ts";
import { createGroupCommitter } from "../group_commit.ts";
import type { ClaimedEvent, RecordOptions, RecordOutcome } from "../store.ts";
import { PgLease } from "./lease.ts";
import { dollarQuoter } from "./literal.ts";
import { storedMs } from "./rows.ts";
import { DUE_CHANNEL } from "./wakeups.ts";

/** Events per statement at most: big enough to share a commit, small enough to be quick. */
const MAX_EVENTS_PER_STATEMENT = 200;
/** Bytes of event JSON per statement at most (a delivery holds at most 3 MiB). */
const MAX_STATEMENT_BYTES = 8 * 1024 * 1024;
/** Delivery jobs per statement at most: each is a row of its own. */
const MAX_JOBS_PER_STATEMENT = 5_000;

/** One event to record, as a statement takes it. */
interface _Item {
  event: WebhookEvent;
  json: string;
  now: number;
  expiresAt: number;
  /** The lease it is recorded under, when it is one of the caller's first `lease.count`. */
  lease?: PgLease;
  destinations: string[];
}

/** Records events, sharing statements with the events of concurrent callers. */
export interface PgInbox {
  record(events: readonly WebhookEvent[], options: RecordOptions): Promise<RecordOutcome>;
}

/** Options for {@linkcode createInbox}. */
export interface InboxOptions extends RetentionOptions {
  /** Statements running at once at most; the rest of the events wait and gather. */
  maxInFlight: number;
}

/** Creates the inbox over `sql`. */
export function createInbox(sql: postgres.Sql, options: InboxOptions): PgInbox {
  const lifeMs = recordLifeMs(options);
  const committer = createGroupCommitter<_Item, boolean>({
    maxGroupSize: MAX_EVENTS_PER_STATEMENT,
    sizeOf: (item) => item.json.length,
    maxGroupBytes: MAX_STATEMENT_BYTES,
    mutationsOf: (item) => item.destinations.length,
    maxGroupMutations: MAX_JOBS_PER_STATEMENT,
    maxInFlight: options.maxInFlight,
    commit: (items) => _insert(sql, items),
  });
  return {
    async record(events, { now, lease, destinationsFor }) {
      const leased = lease && lease.count > 0
        ? new PgLease(crypto.randomUUID(), lease.until, [])
        : undefined;
      const items = events.map((event, i): _Item => {
        const isLeased = leased !== undefined && i < lease!.count;
        // A record recorded leased is due when the lease ends: it lives a whole life after that.
        const expiresAt = now + lifeMs + (isLeased ? Math.max(0, lease!.until - now) : 0);
        return {
          event,
          json: JSON.stringify(event),
          now,
          expiresAt,
          ...(isLeased ? { lease: leased } : {}),
          destinations: destinationsFor ? [...new Set(destinationsFor(event))] : [],
        };
      });
      const inserted = await committer.submitAll(items);
      const outcome: RecordOutcome = { recorded: [], duplicates: [], leased: [] };
      items.forEach((item, i) => {
        if (!inserted[i]) return void outcome.duplicates.push(item.event.id);
        outcome.recorded.push(item.event.id);
        if (item.lease) {
          item.lease.ids.add(item.event.id);
          const claim: ClaimedEvent = {
            record: newRecord(item.event, now, item.expiresAt - now),
            event: item.event,
            lease: item.lease,
          };
          outcome.leased.push(claim);
        }
      });
      return outcome;
    },
  };
}

/**
 * Inserts a group's events and their jobs in one statement; returns, per item, whether it was
 * recorded by it. An id twice in the group is offered once: its later items are duplicates.
 */
async function _insert(sql: postgres.Sql, items: readonly _Item[]): Promise<boolean[]> {
  const firstIndex = new Map<string, number>();
  items.forEach((item, i) => {
    if (!firstIndex.has(item.event.id)) firstIndex.set(item.event.id, i);
  });
  const unique = [...firstIndex.values()].map((i) => items[i]!);
  const jobs = unique.flatMap((item) =>
    item.destinations.map((destination, position) => ({ id: item.event.id, destination, position }))
  );
  // In the simple query protocol, with the values inline: postgres.js resolves a statement of the
  // extended protocol at its CommandComplete, which the server sends before the implicit commit;
  // a server that died in between would leave a delivery acknowledged but not stored. A simple
  // query resolves at ReadyForQuery, after the commit. (A transaction would too, but a server
  // dying under one crashes postgres.js 3.4: see `client.ts`.)
  const input = JSON.stringify(unique.map((item, ord) => ({
    ord,
    id: item.event.id,
    kind: item.event.kind,
    received_at: storedMs(item.now),
    ready_at: storedMs(item.lease?.until ?? item.now),
    lease_token: item.lease?.token ?? null,
    expires_at: storedMs(item.expiresAt),
    event: item.json,
    has_jobs: item.destinations.length > 0,
    ..._factColumns(item.event),
  })));
  const jobRows = JSON.stringify(jobs.map((job) => ({
    event_id: job.id,
    destination: job.destination,
    position: job.position,
  })));
  const quote = dollarQuoter([input, jobRows]);
  const rows = await sql.unsafe<{ id: string }[]>(
    `WITH input AS (
      SELECT * FROM jsonb_to_recordset(${quote(input)}::jsonb)
        AS i(ord integer, id text, kind text, received_at bigint, ready_at bigint,
          lease_token uuid, expires_at bigint, event text, has_jobs boolean, field text,
          msg_type text, business_number text, party text)
    ), inserted AS (
      INSERT INTO wa_events
        (id, kind, state, received_at, due_at, ready_at, lease_token, expires_at, event, field,
          msg_type, business_number, party)
      SELECT id, kind, 'pending', received_at, received_at, ready_at, lease_token, expires_at,
        event, field, msg_type, business_number, party
      FROM input ORDER BY ord
      ON CONFLICT (id) DO NOTHING
      RETURNING id, seq, received_at, expires_at, lease_token
    ), jobs AS (
      INSERT INTO wa_jobs
        (destination, event_id, position, state, due_at, created_at, expires_at, event_seq)
      SELECT j.destination, j.event_id, j.position, 'pending', e.received_at, e.received_at,
        e.expires_at, e.seq
      FROM jsonb_to_recordset(${quote(jobRows)}::jsonb)
        AS j(event_id text, destination text, position integer)
      JOIN inserted e ON e.id = j.event_id
    )
    SELECT e.id,
      CASE WHEN e.lease_token IS NULL OR i.has_jobs THEN pg_notify('${DUE_CHANNEL}', '') END
    FROM inserted e JOIN input i ON i.id = e.id`,
  ); // No parameters: postgres.js sends it as a simple query.
  const recorded = new Set(rows.map((row) => row.id));
  return items.map((item, i) => firstIndex.get(item.event.id) === i && recorded.has(item.event.id));
}

/**
 * Longest fact kept in a column: an index entry must fit a B-tree page, and a value from a payload
 * that long is no real field, type, number or party (such an event is not found by that filter).
 */
const MAX_FACT_CHARS = 512;

/** What the event says that the event log filters on, as `wa_events` columns (null for none). */
function _factColumns(event: WebhookEvent): Record<string, string | null> {
  const facts = eventFacts(event);
  const column = (value: string | undefined): string | null =>
    value === undefined || value.length > MAX_FACT_CHARS ? null : value;
  return {
    field: column(facts.field),
    msg_type: column(facts.type),
    business_number: column(facts.businessNumber),
    party: column(facts.party),
  };
}
