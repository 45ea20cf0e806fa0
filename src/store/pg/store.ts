/**
 * The PostgreSQL store: the {@linkcode Store} interface over one postgres.js pool, for several
 * instances sharing one database. Its schema is in `migrations.ts`; each operation family has a
 * module of its own beside this one (recording, claims, the event log, jobs, statuses, replies,
 * retention, wake-ups), which this module only wires: adding an operation is a function in the
 * module of its area and one line here.
 *
 * @module
 */
import type postgres from "postgres";
import { createLogger, type Logger } from "../../ops/log.ts";
import { recordLifeMs } from "../event_record.ts";
import type { Store, StoreOptions } from "../store.ts";
import {
  bringForward,
  claimDue,
  createSettler,
  extendLease,
  HeldEvents,
  queueFigures,
} from "./claims.ts";
import { guardConnectionErrors } from "./client.ts";
import { getEvent, listEvents, replayDeadLetters, replayEvent } from "./event_log.ts";
import { claimJobs, createJobSettler, extendJobLease } from "./job_claims.ts";
import {
  listPausedDestinations,
  pauseDestination,
  resumeDestination,
} from "./destination_pauses.ts";
import { getJobs, jobFigures, listJobs, replayDeadJobs, replayJob, replayJobs } from "./job_log.ts";
import { getWindow, openWindow } from "./windows.ts";
import { pgLease } from "./lease.ts";
import { advanceMessageStatus, getMessageStatus } from "./message_status.ts";
import { purgeExpired } from "./purge.ts";
import { createInbox } from "./record.ts";
import { getReply, swapReply } from "./replies.ts";
import { createDueListener } from "./wakeups.ts";

/**
 * How long closing waits for statements under way before it cuts the connections, in seconds (as
 * postgres.js counts): the worker and deliverers have stopped by then, so what is left is a commit
 * or two, and the service's shutdown must end within its own grace (4.5 s in `main.ts`).
 */
const END_TIMEOUT_SECONDS = 2;

/** Options for {@linkcode createPgStore}. */
export interface PgStoreOptions extends StoreOptions {
  /** Where the store logs what it skips (an event it cannot read); defaults to JSON lines. */
  logger?: Logger;
  /**
   * Statements of each group-committed kind (recording, results) running at once; more wait and
   * gather into the next. Defaults to 2; `openPgStore` gives half the pool.
   */
  maxInFlight?: number;
}

/** The PostgreSQL store: a {@linkcode Store} whose pool can be closed and awaited. */
export interface PgStore extends Store {
  /** Closes the pool once the statements under way are answered. */
  end(): Promise<void>;
}

/** The {@linkcode Store} over `sql` (migrated: see `open.ts`); closing it ends `sql`. */
export function createPgStore(sql: postgres.Sql, options: PgStoreOptions): PgStore {
  const logger = options.logger ?? createLogger({ level: "info" });
  const lifeMs = recordLifeMs(options);
  const maxInFlight = Math.max(1, options.maxInFlight ?? 2);
  const inbox = createInbox(sql, { ...options, maxInFlight });
  const held = new HeldEvents();
  const settler = createSettler(sql, {
    leaseMs: options.leaseMs,
    recordLifeMs: lifeMs,
    maxInFlight,
    held,
  });
  const jobSettler = createJobSettler(sql, { maxInFlight });
  const dueListener = createDueListener(sql, logger);
  const unguard = guardConnectionErrors((error) =>
    logger.warn("database connection lost; reconnecting", { error })
  );
  let ending: Promise<void> | undefined;
  const end = (): Promise<
    void
  > => (ending ??= sql.end({ timeout: END_TIMEOUT_SECONDS }).finally(unguard));
  return {
    name: "PostgreSQL",
    async recordEvents(events, recordOptions) {
      const outcome = await inbox.record(events, recordOptions);
      const [first] = outcome.leased;
      if (first) held.hold(pgLease(first.lease));
      return outcome;
    },
    claimDue: (claimOptions) => claimDue(sql, claimOptions, { held, logger }),
    extendLease: (lease, until) => extendLease(sql, lease, until),
    settle: (claim, outcome) => settler.settle(claim, outcome),
    bringForward: (forward) =>
      bringForward(sql, { ...forward, leaseMs: options.leaseMs, recordLifeMs: lifeMs }),
    getEvent: (id) => getEvent(sql, id),
    listEvents: (listOptions) => listEvents(sql, listOptions),
    replayEvent: (id, now) => replayEvent(sql, id, now),
    replayDeadLetters: (now) => replayDeadLetters(sql, now),
    advanceMessageStatus: (next, retentionMs) => advanceMessageStatus(sql, next, retentionMs),
    getMessageStatus: (wamid) => getMessageStatus(sql, wamid),
    getReply: (of) => getReply(sql, of),
    swapReply: (of, expected, next, ttlMs) => swapReply(sql, of, expected, next, ttlMs),
    queueFigures: (now, limit) => queueFigures(sql, now, limit),
    async probe(now) {
      const [row] = await sql<{ at: number }[]>`
        INSERT INTO wa_probe (id, at) VALUES (1, ${now})
        ON CONFLICT (id) DO UPDATE SET at = excluded.at
        RETURNING at`;
      if (row?.at !== now) throw new Error("the probe row just written reads back changed");
    },
    purgeExpired: (now, limit) => purgeExpired(sql, { now, limit }),
    claimJobs: (destination, claimOptions) => claimJobs(sql, destination, claimOptions),
    extendJobLease: (lease, until) => extendJobLease(sql, lease, until),
    settleJob: (claim, outcome) => jobSettler.settle(claim, outcome),
    getJobs: (eventId) => getJobs(sql, eventId),
    listJobs: (destination, listOptions) => listJobs(sql, destination, listOptions),
    replayJob: (destination, eventId, now) => replayJob(sql, destination, { eventId, now }),
    replayDeadJobs: (destination, now) => replayDeadJobs(sql, destination, now),
    jobFigures: (destination, figureOptions) => jobFigures(sql, destination, figureOptions),
    replayJobs: (destination, replayOptions) => replayJobs(sql, destination, replayOptions),
    pauseDestination: (pause) => pauseDestination(sql, pause),
    resumeDestination: (destination) => resumeDestination(sql, destination),
    listPausedDestinations: () => listPausedDestinations(sql),
    openWindow: (of, windowOptions) => openWindow(sql, of, windowOptions),
    getWindow: (of) => getWindow(sql, of),
    onDue: (callback) => dueListener.add(callback),
    close: () => void end(),
    end,
  };
}
