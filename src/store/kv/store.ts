/**
 * The Deno KV store: the {@linkcode Store} interface over one `Deno.Kv` (a file, `:memory:`, KV
 * Connect, or Deno Deploy's database). Its keys and entry formats are in `keys.ts`; each
 * operation family has a module of its own beside this one, which only wires them.
 *
 * @module
 */
import { createLogger, type Logger } from "../../ops/log.ts";
import { recordLifeMs, settledRecord } from "../event_record.ts";
import type { Store, StoreOptions } from "../store.ts";
import { bringForward } from "./bring_forward.ts";
import { claimDue } from "./claims.ts";
import { getEvent, listEvents, replayDeadLetters, replayEvent } from "./event_log.ts";
import { claimJobs, createJobSettler, extendJobLease } from "./job_claims.ts";
import { KV_CONNECT_CHECKS_PER_ATOMIC } from "./location.ts";
import {
  listPausedDestinations,
  pauseDestination,
  resumeDestination,
} from "./destination_pauses.ts";
import { getJobs, jobFigures, listJobs, replayDeadJobs, replayJob, replayJobs } from "./job_log.ts";
import { healthProbeKey } from "./keys.ts";
import { kvClaim, kvLease } from "./lease.ts";
import { createLeaseChanges } from "./lease_changes.ts";
import { advanceMessageStatus, getMessageStatus } from "./message_status.ts";
import { purgeExpired } from "./purge.ts";
import { queueFigures } from "./queue_figures.ts";
import { createInbox } from "./record.ts";
import { renewRecordLife } from "./record_life.ts";
import { getReply, swapReply } from "./replies.ts";
import { getWindow, openWindow } from "./windows.ts";

/** How long the readiness probe's key lives: it expires by itself. */
const PROBE_TTL_MS = 60_000;

/** Options for {@linkcode createKvStore}. */
export interface KvStoreOptions extends StoreOptions {
  /** Where the store logs what it skips (an event it cannot read); defaults to JSON lines. */
  logger?: Logger;
  /**
   * The checks one atomic may hold (`location.ts`'s `checksPerAtomicAt`): how many new events share
   * an intake commit (a dedup check each), how many ready entries a claim takes at once, how many
   * leases a commit of results changes, and how many delivery jobs share a claim's or a settle's
   * commit. Defaults to KV Connect's 10, which every backend allows.
   */
  checksPerAtomic?: number;
}

/** The {@linkcode Store} over `kv`; closing it closes `kv`. */
export function createKvStore(kv: Deno.Kv, options: KvStoreOptions): Store {
  const logger = options.logger ?? createLogger({ level: "info" });
  const lifeMs = recordLifeMs(options);
  const checksPerAtomic = options.checksPerAtomic ?? KV_CONNECT_CHECKS_PER_ATOMIC;
  const inbox = createInbox(kv, options, checksPerAtomic);
  const leaseChanges = createLeaseChanges(kv, checksPerAtomic);
  const jobSettler = createJobSettler(kv, checksPerAtomic);
  return {
    name: "Deno KV",
    recordEvents: (events, recordOptions) => inbox.record(events, recordOptions),
    claimDue: (claimOptions) =>
      claimDue(kv, claimOptions, { logger, entriesPerClaim: checksPerAtomic }),
    extendLease: (lease, until) => leaseChanges.extend(kvLease(lease), until),
    async settle(claimed, outcome) {
      const claim = kvClaim(claimed);
      // A retry waits in an entry of its own: the record no longer names a shared one.
      const { readyId: _shared, ...record } = claim.record;
      const now = outcome.endedAt;
      const next = await renewRecordLife(
        kv,
        settledRecord(record, outcome),
        claim.event,
        {
          now,
          leaseMs: options.leaseMs,
          recordLifeMs: lifeMs,
        },
      );
      return await leaseChanges.settle(claim, next, now);
    },
    bringForward: ({ now, latestDueAt, limit }) =>
      bringForward(kv, {
        now,
        latestDueAt,
        limit,
        leaseMs: options.leaseMs,
        recordLifeMs: lifeMs,
        logger,
      }),
    getEvent: (id) => getEvent(kv, id),
    listEvents: (listOptions) => listEvents(kv, listOptions),
    replayEvent: (id, now) => replayEvent(kv, id, now),
    replayDeadLetters: (now) => replayDeadLetters(kv, now),
    advanceMessageStatus: (next, retentionMs) => advanceMessageStatus(kv, next, retentionMs),
    getMessageStatus: (wamid) => getMessageStatus(kv, wamid),
    openWindow: (of, openOptions) => openWindow(kv, of, openOptions),
    getWindow: (of) => getWindow(kv, of),
    getReply: (of) => getReply(kv, of),
    swapReply: (of, expected, next, ttlMs) => swapReply(kv, of, expected, next, ttlMs),
    queueFigures: (now, limit) => queueFigures(kv, now, limit),
    async probe(now) {
      await kv.set(healthProbeKey(), now, { expireIn: PROBE_TTL_MS });
      const read = await kv.get(healthProbeKey());
      if (read.versionstamp === null) throw new Error("the probe key just written reads as absent");
    },
    claimJobs: (destination, claimOptions) =>
      claimJobs(kv, destination, { ...claimOptions, checksPerAtomic }),
    extendJobLease: (lease, until) => extendJobLease(kv, lease, until),
    settleJob: (claim, outcome) => jobSettler.settle(claim, outcome),
    getJobs: (eventId) => getJobs(kv, eventId),
    listJobs: (destination, listOptions) => listJobs(kv, destination, listOptions),
    replayJob: (destination, eventId, now) => replayJob(kv, destination, { eventId, now }),
    replayDeadJobs: (destination, now) => replayDeadJobs(kv, destination, now),
    jobFigures: (destination, figureOptions) => jobFigures(kv, destination, figureOptions),
    replayJobs: (destination, replayOptions) => replayJobs(kv, destination, replayOptions),
    pauseDestination: (pause) => pauseDestination(kv, pause),
    resumeDestination: (destination) => resumeDestination(kv, destination),
    listPausedDestinations: () => listPausedDestinations(kv),
    purgeExpired: (now, limit) => purgeExpired(kv, { now, lifeMs, limit }),
    close: () => kv.close(),
  };
}
