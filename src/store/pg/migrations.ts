/**
 * The PostgreSQL schema, created and changed at start by versioned migrations. They are SQL in
 * this module (the compiled binary reads no file at run time), applied in order, each in a
 * transaction with the row that records it in `wa_schema_migrations`, under a session advisory
 * lock: several instances starting at once apply each migration once, and the others wait for it.
 *
 * Rules for adding one: append it with the next version and never edit a released one; never
 * rewrite a big table in one statement (no `ALTER TABLE … SET DEFAULT` that rewrites, no
 * `UPDATE` of every row: add a nullable column and backfill in batches from the code, and build
 * indexes on big tables in a later, non-transactional step if ever needed).
 *
 * Tables (all prefixed `wa_`, so they may share a database with others):
 * - `wa_events`: one row per event, its record and the event's JSON; its primary key is the dedup
 *   mark. `ready_at` is when a worker may claim it (its due time while it waits, its lease's end
 *   while leased; null once done or dead), `lease_token` the lease that holds it, and
 *   `listed_state` the state the admin API shows (`processing` while leased). `field`, `msg_type`,
 *   `business_number` and `party` are what the event says (`event_filter.ts`), for the filters.
 * - `wa_jobs`: one row per event and destination, deleted with its event. `due_at` is when it is
 *   due, or its lease's end while `delivering`.
 * - `wa_message_statuses`, `wa_replies`: the furthest status per outbound message and the reply
 *   records of handlers, each with the wall-clock time it expires.
 * - `wa_probe`: the one row the readiness probe writes and reads back.
 * - `wa_destination_pauses`: destinations paused at run time; `wa_windows`: when each
 *   conversation's customer-service window closes, kept (database clock) until `expires_at`.
 *
 * @module
 */
import type postgres from "postgres";

/** One change of the schema. */
export interface Migration {
  /** Applied in increasing order; never reused. */
  version: number;
  /** What it does, for the log and the migrations table. */
  name: string;
  /** The statements, run in one transaction. */
  sql: string;
}

/**
 * The key of the advisory lock migrations run under: any fixed number unlikely to be another
 * application's (the first eight bytes of "wa-webhook" as ASCII).
 */
export const MIGRATION_LOCK_KEY = 0x77612d7765626800n;

/** The store's tables, those with foreign keys first (the order they can be emptied in). */
export const STORE_TABLES = [
  "wa_jobs",
  "wa_events",
  "wa_message_statuses",
  "wa_replies",
  "wa_probe",
  "wa_destination_pauses",
  "wa_windows",
] as const;

/** Every migration, oldest first. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "events, delivery jobs, message statuses, replies, probe",
    sql: `
CREATE TABLE wa_events (
  seq bigint GENERATED ALWAYS AS IDENTITY,
  id text PRIMARY KEY,
  kind text NOT NULL,
  state text NOT NULL CHECK (state IN ('pending', 'retrying', 'done', 'dead')),
  attempts integer NOT NULL DEFAULT 0,
  replayed_attempts integer,
  received_at bigint NOT NULL,
  due_at bigint,
  ready_at bigint,
  lease_token uuid,
  expires_at bigint NOT NULL,
  completed_handlers jsonb NOT NULL DEFAULT '[]',
  last_error text,
  history jsonb NOT NULL DEFAULT '[]',
  event text NOT NULL,
  -- What the event says that the event log filters on (event_filter.ts), null when it has none.
  field text,
  msg_type text,
  business_number text,
  party text,
  listed_state text GENERATED ALWAYS AS (
    CASE WHEN lease_token IS NOT NULL THEN 'processing' ELSE state END
  ) STORED
);
-- Claims: the waiting and leased events in the order they come due.
CREATE INDEX wa_events_ready ON wa_events (ready_at, seq) WHERE ready_at IS NOT NULL;
-- The admin API's listing, newest first, unfiltered, by state, by kind, by both.
CREATE INDEX wa_events_timeline ON wa_events (received_at DESC, seq DESC);
CREATE INDEX wa_events_by_state ON wa_events (listed_state, received_at DESC, seq DESC);
CREATE INDEX wa_events_by_kind ON wa_events (kind, listed_state, received_at DESC, seq DESC);
CREATE INDEX wa_events_by_field ON wa_events (field, received_at DESC, seq DESC)
  WHERE field IS NOT NULL;
CREATE INDEX wa_events_by_type ON wa_events (msg_type, received_at DESC, seq DESC)
  WHERE msg_type IS NOT NULL;
CREATE INDEX wa_events_by_business ON wa_events (business_number, received_at DESC, seq DESC)
  WHERE business_number IS NOT NULL;
CREATE INDEX wa_events_by_party ON wa_events (party, received_at DESC, seq DESC)
  WHERE party IS NOT NULL;
-- Retention.
CREATE INDEX wa_events_expiry ON wa_events (expires_at);

CREATE TABLE wa_jobs (
  destination text NOT NULL,
  event_id text NOT NULL REFERENCES wa_events (id) ON DELETE CASCADE,
  position integer NOT NULL,
  state text NOT NULL
    CHECK (state IN ('pending', 'delivering', 'delivered', 'retrying', 'dead')),
  attempts integer NOT NULL DEFAULT 0,
  replayed_attempts integer,
  due_at bigint,
  lease_token uuid,
  created_at bigint NOT NULL,
  expires_at bigint NOT NULL,
  last_error text,
  history jsonb NOT NULL DEFAULT '[]',
  event_seq bigint NOT NULL,
  PRIMARY KEY (destination, event_id)
);
-- A destination's due order (leased jobs at their lease's end).
CREATE INDEX wa_jobs_due ON wa_jobs (destination, due_at, event_seq) WHERE due_at IS NOT NULL;
-- A destination's jobs newest first, unfiltered and by state.
CREATE INDEX wa_jobs_timeline ON wa_jobs (destination, created_at DESC, event_seq DESC);
CREATE INDEX wa_jobs_by_state ON wa_jobs (destination, state, created_at DESC, event_seq DESC);
-- An event's jobs, and the cascade when it is purged.
CREATE INDEX wa_jobs_event ON wa_jobs (event_id);

CREATE TABLE wa_message_statuses (
  id text PRIMARY KEY,
  status text NOT NULL,
  updated_at bigint NOT NULL,
  errors jsonb,
  expires_at bigint NOT NULL
);
CREATE INDEX wa_message_statuses_expiry ON wa_message_statuses (expires_at);

CREATE TABLE wa_replies (
  handler text NOT NULL,
  inbound_id text NOT NULL,
  record jsonb NOT NULL,
  expires_at bigint NOT NULL,
  PRIMARY KEY (handler, inbound_id)
);
CREATE INDEX wa_replies_expiry ON wa_replies (expires_at);

CREATE TABLE wa_probe (
  id integer PRIMARY KEY,
  at bigint NOT NULL
);

CREATE TABLE wa_destination_pauses (
  destination text PRIMARY KEY,
  reason text NOT NULL,
  since bigint NOT NULL
);

CREATE TABLE wa_windows (
  business text NOT NULL,
  user_id text NOT NULL,
  closes_at bigint NOT NULL,
  expires_at bigint NOT NULL,
  PRIMARY KEY (business, user_id)
);
CREATE INDEX wa_windows_expiry ON wa_windows (expires_at);
`,
  },
];

/** What {@linkcode migrate} did. */
export interface MigrateOutcome {
  /** The versions this call applied (none when another instance had). */
  applied: number[];
  /** The schema's version now. */
  version: number;
}

/**
 * Brings the schema up to the last of {@linkcode MIGRATIONS}: takes the advisory lock on one
 * reserved connection, applies each missing migration in its own transaction, and lets go.
 *
 * @throws when the database fails, or its schema is newer than this version knows (an older
 *   binary started after a newer one migrated: it refuses rather than run on a schema it cannot
 *   read)
 */
export async function migrate(
  sql: postgres.Sql,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<MigrateOutcome> {
  const connection = await sql.reserve();
  try {
    await connection`SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY.toString()}::bigint)`;
    try {
      await connection`
        CREATE TABLE IF NOT EXISTS wa_schema_migrations (
          version integer PRIMARY KEY,
          name text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now()
        )`;
      const rows = await connection<{ version: number }[]>`
        SELECT version FROM wa_schema_migrations`;
      const done = new Set(rows.map((row) => row.version));
      const known = Math.max(0, ...migrations.map((m) => m.version));
      const newest = Math.max(0, ...done);
      if (newest > known) {
        throw new Error(
          `Cannot use the PostgreSQL schema: it is at version ${newest}, newer than this ` +
            `version of wa-webhook knows (${known}); run the newer version`,
        );
      }
      const applied: number[] = [];
      for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
        if (done.has(migration.version)) continue;
        // A reserved connection has no `begin()`: the transaction is written out.
        await connection`BEGIN`;
        try {
          await connection.unsafe(migration.sql);
          await connection`
            INSERT INTO wa_schema_migrations (version, name)
            VALUES (${migration.version}, ${migration.name})`;
          await connection`COMMIT`;
        } catch (error) {
          await connection`ROLLBACK`.catch(() => {});
          throw error;
        }
        applied.push(migration.version);
      }
      return { applied, version: Math.max(newest, ...applied) };
    } finally {
      await connection`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY.toString()}::bigint)`;
    }
  } finally {
    connection.release();
  }
}
