/**
 * The worker: claims ready events with a lease, runs their handlers through the dispatcher, and
 * marks each event done, retrying, or dead.
 *
 * A claim moves the events of up to ten due ready entries into one new lease entry at the end of
 * the lease, in an atomic that checks each entry's versionstamp, so two workers (or processes)
 * never hold the same event and events whose worker died become due again by themselves. Intake
 * writes such a lease entry itself for the events it records leased to this worker. The record is
 * not rewritten by a claim: an event is "processing" while it is away from its entry at
 * `record.dueAt` (see `withCurrentState` in `event_log.ts`).
 *
 * Events recorded leased to this worker run at once in free slots, or wait in memory for one (the
 * keeper extends their leases meanwhile; if the process dies, their leases run out as for runs).
 * The runs of a lease's events share it. Leases are extended while handlers run, by one loop for
 * all runs, so a slow handler never runs twice; if an extension finds the entry changed, the runs
 * holding it are aborted. Results and extensions go through one commit at a time, a check per
 * lease: a result stores its record and takes its event out of the lease entry, which goes with
 * the last one. So the worker keeps up with the intake.
 *
 * Every retry is due within `maxDelayMs`, whatever a handler asked (`retry_delay.ts`), and its
 * record is renewed to outlive that time (`record_life.ts`). On start, the worker makes due now
 * the events older versions parked later (`unpark.ts`).
 *
 * @module
 */
import { DEFAULTS } from "../config.ts";
import { within } from "../ops/timeout.ts";
import type { Clock } from "../ops/clock.ts";
import type { WebhookEvent } from "../events/events.ts";
import type { Logger } from "../ops/log.ts";
import { commitWithRetry } from "../store/commit.ts";
import { createGroupCommitter } from "../store/group_commit.ts";
import { type Lease, type LeasedEvent, readEvent } from "../store/inbox.ts";
import {
  type AttemptRecord,
  deadLetterKey,
  eventKey,
  type EventRecord,
  idsOfEntry,
  READY_PREFIX,
  type ReadyEntryValue,
  readyEntryValue,
  readyKey,
} from "../store/keys.ts";
import { annotateSpan, withSpan } from "../ops/telemetry.ts";
import type { Dispatcher, HandlerServices } from "./dispatcher.ts";
import { PermanentError, RetryLaterError } from "./handler_errors.ts";
import { remainingLifeMs, renewRecordLife } from "./record_life.ts";
import { DEFAULT_RETRY_POLICY, retryDelayMs, type RetryPolicy, waitAsked } from "./retry_delay.ts";
import { unparkFarEvents } from "./unpark.ts";

/** Options for {@linkcode createWorker}. */
export interface WorkerOptions {
  kv: Deno.Kv;
  dispatcher: Dispatcher;
  logger: Logger;
  clock: Clock;
  /** Services passed to every handler beside `kv`. */
  services?: Omit<HandlerServices, "kv">;
  /** How long a claim holds an event before another worker may take it (default 15 s). */
  leaseMs?: number;
  /** How often to look for due events when nothing wakes the worker (default 1 s). */
  pollIntervalMs?: number;
  /** Events handled at the same time (default 64). */
  concurrency?: number;
  retry?: Partial<RetryPolicy>;
  /**
   * How long a record lives after it is due (the longer of the dedup TTL and the retention; default
   * 8 days, `DEDUP_TTL_HOURS`'s default). A result whose record would expire less than half of
   * this after its next run's first lease ends (its settling, when done or dead) renews it to live
   * this long after that, so no waiting event expires before it runs.
   */
  recordLifeMs?: number;
  /** Returns a number in [0, 1) for jitter; defaults to `Math.random`. */
  random?: () => number;
  /** Told about handler runs and stored results, for metrics. */
  observer?: WorkerObserver;
}

/** One run of one handler, as reported to {@linkcode WorkerObserver.onHandlerRun}. */
export interface HandlerRun {
  handler: string;
  eventId: string;
  kind: WebhookEvent["kind"];
  attempt: number;
  outcome: "success" | "failure";
}

/** A stored result of a run, as reported to {@linkcode WorkerObserver.onSettled}. */
export interface SettledRun {
  eventId: string;
  kind: WebhookEvent["kind"];
  attempt: number;
  state: "done" | "retrying" | "dead";
}

/** Told what the worker did; an observer that throws is logged and ignored. */
export interface WorkerObserver {
  /** After each handler run. */
  onHandlerRun?(run: HandlerRun): void;
  /** After a run's result was stored (not when the lease was lost or shutdown aborted it). */
  onSettled?(settled: SettledRun): void;
}

/** A running worker. */
export interface Worker {
  /** Starts the claim loop. */
  start(): void;
  /** Looks for due events now instead of at the next poll (intake calls it after recording). */
  wake(): void;
  /**
   * Reserves up to `count` places for events about to be recorded already leased to this worker,
   * so they run without being claimed: free slots, and places to wait in memory for one (four per
   * slot). None while stopped or stopping; while due events wait for slots, a claim's worth of
   * slots is left to them and none of the places in memory are offered.
   */
  reserve(count: number): Reservation;
  /**
   * Stops claiming, lets running handlers finish within `graceMs`, then aborts the rest (their
   * leases expire and another worker takes them over).
   */
  stop(graceMs: number): Promise<void>;
  /** When the claim loop last went round, ms since the epoch (0 before it started). */
  lastLoopAt(): number;
  /** Events being handled right now. */
  running(): number;
}

/** Slots held for events being recorded leased to the worker; see {@linkcode Worker.reserve}. */
export interface Reservation {
  /** Slots held: record at most this many events leased to the worker. */
  readonly count: number;
  /** When the leases of those events end, ms since the epoch. */
  readonly until: number;
  /**
   * Runs the events that were recorded leased to the worker and frees the slots left over. Call
   * it once, with no events when recording failed.
   */
  run(events: readonly LeasedEvent[]): void;
}

/** Shortest sleep between two claim rounds, so an entry that cannot be claimed never spins. */
const MIN_SLEEP_MS = 1;
/** Attempts kept in a record's history, to bound its size. */
const MAX_HISTORY = 20;
/** Ready entries per claim, and leases per result commit: one check each, KV Connect's limit. */
const EVENTS_PER_COMMIT = 10;
/**
 * Results and lease extensions per commit. The results of a lease share its check, so a commit
 * may store many: fewer, fuller commits raised the in-process rate by 15-20% on a KV file.
 */
const CHANGES_PER_COMMIT = 50;
/** Bytes of records per result commit, under Deno KV's 800 KiB limit with room for the rest. */
const MAX_COMMIT_BYTES = 600 * 1024;
/**
 * Events recorded leased to the worker that may wait in memory for a slot, per slot. Without them
 * a burst of batched deliveries went to the ready set, whose claims could not keep up beside the
 * intake: 10-event deliveries at 32 connections were handled at 5.5k events/s instead of 18k.
 */
const QUEUED_PER_SLOT = 4;

/**
 * A claimed event: its record as read, its lease (shared with the other events of its entry, and
 * updated as it is extended and shrinks), and the event itself; the same as an event recorded
 * already leased to this worker.
 */
type Claim = LeasedEvent;

/** A lease a run holds while its handlers run. */
interface HeldLease {
  claim: Claim;
  /** Aborts the run when the lease is lost. */
  abort: AbortController;
  log: Logger;
  isLost: boolean;
  /** The extension under way, if any: the run's result waits for it. */
  extending: Promise<void> | undefined;
}

/** The outcome of a run, to be committed with others. */
interface Outcome {
  claim: Claim;
  next: EventRecord;
  log: Logger;
}

/** A change to a lease, committed with others: a run's result, or the lease's extension. */
type LeaseChange =
  | { kind: "result"; outcome: Outcome }
  | { kind: "extend"; lease: Lease; until: number };

/** The lease a change is to. */
function _leaseOf(change: LeaseChange): Lease {
  return change.kind === "result" ? change.outcome.claim.lease : change.lease;
}

/**
 * The estimated size of what a change writes: a result's record (the event's JSON as its claim
 * measured it, plus the new error text, two bytes a character as strings may be stored), or a
 * lease entry's ids.
 */
function _changeBytes(change: LeaseChange): number {
  if (change.kind === "extend") return 64 * change.lease.ids.length;
  const { claim, next } = change.outcome;
  return claim.bytes + 4 * (next.lastError?.length ?? 0) + 1024;
}

/** Creates a worker over `kv`; call `start()` to run it. */
export function createWorker(options: WorkerOptions): Worker {
  const { kv, dispatcher, logger, clock } = options;
  const leaseMs = options.leaseMs ?? DEFAULTS.leaseMs;
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const concurrency = options.concurrency ?? DEFAULTS.workerConcurrency;
  const retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
  // The default dedup TTL is the longer default (longer than the event retention).
  const recordLifeMs = options.recordLifeMs ?? DEFAULTS.dedupTtlMs;
  const random = options.random ?? Math.random;
  const changes = createGroupCommitter<LeaseChange, boolean>({
    maxGroupSize: CHANGES_PER_COMMIT,
    // One check per lease: the changes of one lease (its events' results) share it.
    checkOf: _leaseOf,
    maxChecks: EVENTS_PER_COMMIT,
    sizeOf: _changeBytes,
    maxGroupBytes: MAX_COMMIT_BYTES,
    // One commit at a time: results that finish meanwhile gather into the next one (fuller
    // commits drained a KV file about 1.8 times as fast as four smaller ones in flight), and a
    // lease is never changed by two commits at once.
    maxInFlight: 1,
    commit: (batch) => commitChanges(batch),
  });

  const runs = new Map<string, { done: Promise<void>; abort: AbortController }>();
  const leases = new Set<HeldLease>();
  let isKeeping = false;
  let keeperSleep: AbortController | undefined;
  let isStopping = false;
  let loop: Promise<void> | undefined;
  let lastLoopAt = 0;
  let wakeUp: (() => void) | undefined;
  let isWoken = false;
  /** Due events may be waiting for a slot: finished runs wake the claim loop. */
  let isBacklogged = true;
  /** Slots whose event's handlers are running. */
  let busy = 0;
  /** Slots reserved for events being recorded already leased to this worker. */
  let reserved = 0;
  /** Events recorded leased to this worker that wait for a slot, oldest first. */
  let queue: Claim[] = [];
  const maxQueued = QUEUED_PER_SLOT * concurrency;

  async function runLoop(): Promise<void> {
    try {
      const unparked = await unparkFarEvents(kv, {
        now: clock.now(),
        maxDelayMs: retry.maxDelayMs,
        leaseMs,
        recordLifeMs,
        logger,
      });
      if (unparked > 0) {
        logger.warn("events parked beyond the longest retry delay are due now", {
          events: unparked,
        });
      }
    } catch (error) {
      logger.error("cannot bring back events parked beyond the longest retry delay", { error });
    }
    while (!isStopping) {
      lastLoopAt = clock.now();
      isWoken = false;
      const free = freeSlots();
      // While runs are going, claim only once a batch's worth of slots is free: claiming each
      // freed slot on its own would spend one commit per event.
      const isWorthClaiming = free > 0 &&
        (busy === 0 || free >= Math.min(EVENTS_PER_COMMIT, concurrency / 2));
      let claimed = 0;
      if (isWorthClaiming) {
        try {
          claimed = await claimDue(free);
        } catch (error) {
          logger.error("cannot claim events", { error });
        }
      }
      if (isStopping) break;
      // Every due event was claimed unless the round was limited by free slots.
      isBacklogged = !isWorthClaiming || claimed === free;
      if (!isWorthClaiming || claimed < free) await waitForWork(!isWorthClaiming);
    }
  }

  /**
   * Sleeps until woken (new events, a finished run), until the next ready entry is due, or for
   * one poll interval. When every slot is busy only a finished run or the poll wakes it.
   */
  async function waitForWork(isFull: boolean): Promise<void> {
    if (isWoken) return;
    let sleepMs = pollIntervalMs;
    if (!isFull) {
      try {
        for await (const next of kv.list({ prefix: READY_PREFIX }, { limit: 1 })) {
          const untilDue = (next.key[1] as number) - clock.now();
          sleepMs = Math.max(MIN_SLEEP_MS, Math.min(sleepMs, untilDue));
        }
      } catch { /* the poll interval will do */ }
    }
    if (isWoken) return;
    const cancelSleep = new AbortController();
    const woken = new Promise<void>((resolve) => (wakeUp = resolve));
    await Promise.race([clock.sleep(sleepMs, cancelSleep.signal).catch(() => {}), woken]);
    cancelSleep.abort();
    wakeUp = undefined;
  }

  function wake(): void {
    isWoken = true;
    wakeUp?.();
  }

  /** Claims up to `limit` due events and starts their runs; returns how many it claimed. */
  async function claimDue(limit: number): Promise<number> {
    const now = clock.now();
    const due: Deno.KvEntry<ReadyEntryValue>[] = [];
    let dueEvents = 0;
    const iterator = kv.list<ReadyEntryValue>(
      { start: READY_PREFIX, end: readyKey(now + 1, "") },
      { limit },
    );
    for await (const entry of iterator) {
      const ids = idsOfEntry(entry.value);
      // An entry holding an event this worker runs is its own expired lease: the keeper has it.
      if (ids.some((id) => runs.has(id))) continue;
      due.push(entry);
      dueEvents += ids.length;
      if (dueEvents >= limit) break;
    }
    let claimed = 0;
    // Slots the intake reserved meanwhile are not claimed. (Events it records while this round
    // commits its claims may still take the cap over by a few, briefly.)
    let room = Math.max(0, freeSlots());
    const batches: { entries: Deno.KvEntry<ReadyEntryValue>[]; room: number }[] = [];
    for (let i = 0; i < due.length && room > 0; i += EVENTS_PER_COMMIT) {
      const entries = due.slice(i, i + EVENTS_PER_COMMIT);
      const events = entries.reduce((sum, entry) => sum + idsOfEntry(entry.value).length, 0);
      batches.push({ entries, room: Math.min(room, events) });
      room -= Math.min(room, events);
    }
    // The batches are claimed at once, so their reads and commits overlap in Deno KV.
    await Promise.all(batches.map(async (batch) => {
      if (isStopping) return;
      const claims = await withSpan("worker.claim", async (span) => {
        const claims = await claimBatch(batch.entries, now, batch.room);
        span.setAttributes({
          "wa.events.due": batch.entries.length,
          "wa.events.claimed": claims.length,
        });
        return claims;
      }, { root: true });
      for (const claim of claims) {
        claimed++;
        startRun(claim, now);
      }
    }));
    return claimed;
  }

  /**
   * Slots free for a run now: running handlers count against the concurrency, and all runs,
   * those still storing their results included, against twice the concurrency.
   */
  function openSlots(): number {
    return Math.min(concurrency - busy, 2 * concurrency - runs.size);
  }

  /** Slots free for claims: those no queued or reserved event will take. */
  function freeSlots(): number {
    return openSlots() - queue.length - reserved;
  }

  /** Starts queued events while slots are open. */
  function runQueued(): void {
    while (queue.length > 0 && openSlots() > 0 && !isStopping) {
      startRun(queue.shift()!, clock.now());
    }
  }

  /**
   * Starts running a claimed (or recorded-leased) event's handlers in a slot of its own. The slot
   * is freed once the handlers are done: storing the result, shared with others, does not hold it.
   */
  function startRun(claim: Claim, now: number): void {
    const abort = new AbortController();
    busy++;
    let isSlotHeld = true;
    // Called when the handlers are done, and again when the run ends (its result stored): each
    // may open a slot, for a queued event or for the claim loop.
    const freeSlot = (): void => {
      if (isSlotHeld) busy--;
      isSlotHeld = false;
      runQueued();
      // A freed slot matters to the claim loop only when due events may be waiting for one.
      if (isBacklogged) wake();
    };
    const done = withSpan("worker.run", () => runClaim(claim, abort, freeSlot), {
      root: true,
      attributes: {
        "wa.event.id": claim.event.id,
        "wa.event.kind": claim.event.kind,
        "wa.attempt": claim.record.attempts + 1,
        // How late the worker took it: the event's age, and its wait since it became due.
        "wa.event.age_ms": now - claim.record.receivedAt,
        "wa.event.wait_ms": now - (claim.record.dueAt ?? claim.record.receivedAt),
      },
    })
      .catch((error) => logger.error("run failed", { eventId: claim.event.id, error }))
      .finally(() => {
        runs.delete(claim.record.id);
        freeSlot();
      });
    runs.set(claim.record.id, { done, abort });
  }

  /**
   * Claims due entries in one atomic, each checked by its versionstamp: their claimable events (at
   * most `room` in all) move to one new lease entry at the lease's end, the rest stay where they
   * are, and events that are done, dead or expired are dropped. If another worker took one of the
   * entries, they are claimed one by one.
   */
  async function claimBatch(
    entries: Deno.KvEntry<ReadyEntryValue>[],
    now: number,
    room: number,
  ): Promise<Claim[]> {
    const ids = entries.flatMap((entry) => idsOfEntry(entry.value));
    const records = new Map<string, EventRecord>();
    for (let i = 0; i < ids.length; i += EVENTS_PER_COMMIT) {
      const read = await kv.getMany<EventRecord[]>(
        ids.slice(i, i + EVENTS_PER_COMMIT).map(eventKey),
      );
      for (const entry of read) {
        const record = entry.value;
        if (record && (record.state === "pending" || record.state === "retrying")) {
          records.set(record.id, record);
        }
      }
    }
    const plans = _planClaims(entries, records, room);
    const leaseUntil = now + leaseMs;
    // Together, the events claimed from every entry share one lease; alone, each entry's do.
    const claim = async (group: _ClaimPlan[]): Promise<Lease | undefined> => {
      const ids = group.flatMap((plan) => plan.taken);
      const key = readyKey(leaseUntil, crypto.randomUUID());
      const result = await commitWithRetry(() => {
        const atomic = kv.atomic();
        for (const { entry, rest } of group) {
          atomic.check(entry);
          if (rest.length > 0) atomic.set(entry.key, readyEntryValue(rest));
          else atomic.delete(entry.key);
        }
        if (ids.length > 0) atomic.set(key, readyEntryValue(ids));
        return atomic;
      });
      return result.ok && ids.length > 0
        ? { key, versionstamp: result.versionstamp, ids }
        : undefined;
    };
    const won: Lease[] = [];
    const together = await claim(plans);
    if (together || plans.every((plan) => plan.taken.length === 0)) {
      if (together) won.push(together);
    } else {
      for (const plan of plans) {
        const alone = await claim([plan]);
        if (alone) won.push(alone);
      }
    }
    const claims: Claim[] = [];
    for (const lease of won) {
      for (const id of [...lease.ids]) {
        const record = records.get(id)!;
        try {
          const event = await readEvent(kv, record);
          // Strings may be stored as UTF-16: two bytes a character.
          claims.push({ record, lease, event, bytes: 2 * JSON.stringify(record).length });
        } catch (error) {
          logger.error("cannot read event", { eventId: id, error });
        }
      }
    }
    return claims;
  }

  async function runClaim(
    claim: Claim,
    abort: AbortController,
    freeSlot: () => void,
  ): Promise<void> {
    const { event } = claim;
    const log = logger.child({ eventId: event.id, kind: event.kind });
    const attempt = claim.record.attempts + 1;
    const startedAt = clock.now();
    const lease = holdLease(claim, abort, log);

    const completed = new Set(claim.record.completedHandlers);
    const failures: string[] = [];
    let isPermanent = false; // a handler threw PermanentError: dead-letter without retrying
    let retryAfterMs = 0; // the longest wait a RetryLaterError asked for
    for (const handler of dispatcher.handlersFor(event)) {
      if (completed.has(handler.name) || abort.signal.aborted) continue;
      const reportRun = (outcome: "success" | "failure"): void =>
        observe(() =>
          options.observer?.onHandlerRun?.({
            handler: handler.name,
            eventId: event.id,
            kind: event.kind,
            attempt,
            outcome,
          })
        );
      try {
        const context = {
          ...options.services,
          kv,
          event,
          log: log.child({ handler: handler.name }),
          signal: abort.signal,
          attempt,
        };
        await withSpan("worker.handler", () => handler.handle(context), {
          attributes: {
            "wa.handler": handler.name,
            "wa.event.id": event.id,
            "wa.event.kind": event.kind,
            "wa.attempt": attempt,
          },
        });
        completed.add(handler.name);
        reportRun("success");
      } catch (error) {
        reportRun("failure");
        const message = error instanceof Error ? error.message : String(error);
        failures.push(`${handler.name}: ${message}`);
        if (error instanceof PermanentError) isPermanent = true;
        if (error instanceof RetryLaterError) {
          retryAfterMs = Math.max(retryAfterMs, waitAsked(error));
        }
        log.warn("handler failed", { handler: handler.name, attempt, error });
      }
    }
    await releaseLease(lease);
    freeSlot();
    if (lease.isLost) {
      annotateSpan({ "wa.event.outcome": "lease_lost" });
      return; // another worker owns the event now
    }

    const now = clock.now();
    const history: AttemptRecord[] = [
      ...claim.record.history,
      {
        at: startedAt,
        ms: now - startedAt,
        ...(failures.length ? { error: failures.join("; ") } : {}),
      },
    ].slice(-MAX_HISTORY);
    // A retry waits in an entry of its own: the record no longer names a shared one. The last
    // error is this run's: a run that succeeds clears an earlier one.
    const { readyId: _shared, lastError: _earlier, ...record } = claim.record;
    const base = { ...record, attempts: attempt, completedHandlers: [...completed], history };
    const lastError = failures.join("; ");
    let next: EventRecord;
    if (failures.length === 0) {
      next = { ...base, state: "done", dueAt: null };
    } else if (attempt < retry.maxAttempts && !isPermanent && !abort.signal.aborted) {
      const delay = retryDelayMs(attempt, retry, { random, retryAfterMs });
      next = { ...base, state: "retrying", dueAt: now + delay, lastError };
    } else if (attempt < retry.maxAttempts && !isPermanent) {
      // Aborted by shutdown: leave the lease to expire so another worker retries it soon.
      annotateSpan({ "wa.event.outcome": "aborted" });
      return;
    } else {
      next = { ...base, state: "dead", dueAt: null, lastError };
    }
    next = await renewRecordLife(kv, next, event, { now, leaseMs, recordLifeMs });
    const isStored = await withSpan("worker.result", async (span) => {
      const isStored = await changes.submit({ kind: "result", outcome: { claim, next, log } });
      span.setAttribute("wa.result.stored", isStored);
      return isStored;
    }, { attributes: { "wa.event.id": event.id, "wa.event.state": next.state } });
    annotateSpan({ "wa.event.outcome": isStored ? next.state : "not_stored" });
    if (!isStored) {
      log.warn("event changed while its handlers ran; result not stored", { state: next.state });
      return;
    }
    const state = next.state as SettledRun["state"];
    observe(() =>
      options.observer?.onSettled?.({ eventId: event.id, kind: event.kind, attempt, state })
    );
    if (next.state === "done") {
      log.debug("event done", { attempt, ms: now - startedAt });
    } else if (next.state === "retrying") {
      log.info("event will be retried", { attempt, dueAt: next.dueAt });
    } else {
      log.error("event dead-lettered", { attempt, lastError });
    }
  }

  /** Calls an observer; one that throws must not break the worker. */
  function observe(call: () => void): void {
    try {
      call();
    } catch (error) {
      logger.warn("worker observer failed", { error });
    }
  }

  /**
   * Commits changes to leases in one atomic, with one check per lease: results store their
   * records and leave their lease (which shrinks, and goes once empty); extensions move a lease to
   * its new end. When a lease was lost meanwhile, each lease's changes are committed on their own:
   * those of a lost lease are not stored, and every run holding it is aborted.
   */
  async function commitChanges(batch: LeaseChange[]): Promise<boolean[]> {
    const byLease = new Map<Lease, LeaseChange[]>();
    for (const change of batch) {
      const lease = _leaseOf(change);
      byLease.set(lease, [...(byLease.get(lease) ?? []), change]);
    }
    const commit = async (leases: Lease[]): Promise<boolean> => {
      const now = clock.now();
      const next = new Map<Lease, { key: Deno.KvKey; ids: string[] }>();
      const result = await commitWithRetry(() => {
        const atomic = kv.atomic();
        for (const lease of leases) {
          next.set(lease, writeChanges(atomic, lease, byLease.get(lease)!, now));
        }
        return atomic;
      });
      if (!result.ok) return false;
      for (const [lease, { key, ids }] of next) {
        Object.assign(lease, { key, ids, versionstamp: result.versionstamp });
      }
      return true;
    };
    const leases = [...byLease.keys()];
    const isCommitted = new Map<Lease, boolean>();
    if (await commit(leases)) {
      for (const lease of leases) isCommitted.set(lease, true);
    } else {
      await Promise.all(leases.map(async (lease) => isCommitted.set(lease, await commit([lease]))));
    }
    for (const [lease, ok] of isCommitted) if (!ok) loseLease(lease);
    return batch.map((change) => isCommitted.get(_leaseOf(change))!);
  }

  /** Adds one lease's changes to an atomic; returns the lease's key and events after it. */
  function writeChanges(
    atomic: Deno.AtomicOperation,
    lease: Lease,
    leaseChanges: LeaseChange[],
    now: number,
  ): { key: Deno.KvKey; ids: string[] } {
    const finished = new Set<string>();
    let until = _leaseEnd(lease);
    for (const change of leaseChanges) {
      if (change.kind === "extend") until = Math.max(until, change.until);
      else {
        finished.add(change.outcome.claim.record.id);
        writeResult(atomic, change.outcome, now);
      }
    }
    const ids = lease.ids.filter((id) => !finished.has(id));
    const key = readyKey(until, lease.key[2] as string);
    atomic.check({ key: lease.key, versionstamp: lease.versionstamp });
    if (ids.length === 0 || until !== _leaseEnd(lease)) atomic.delete(lease.key);
    if (ids.length > 0) atomic.set(key, readyEntryValue(ids));
    return { key, ids };
  }

  /** Adds a run's result to an atomic: the record, and a retry's entry or a dead letter. */
  function writeResult(atomic: Deno.AtomicOperation, { claim, next }: Outcome, now: number): void {
    const id = claim.record.id;
    const expireIn = remainingLifeMs(next, now);
    atomic.set(eventKey(id), next, { expireIn });
    if (next.state === "retrying" && next.dueAt !== null) atomic.set(readyKey(next.dueAt, id), id);
    if (next.state === "dead") atomic.set(deadLetterKey(id), id, { expireIn });
  }

  /** Another worker took a lease over: every run holding it stops, and its queued events go. */
  function loseLease(lease: Lease): void {
    const kept = queue.filter((claim) => claim.lease !== lease);
    if (kept.length < queue.length) {
      logger.warn("lease lost: another worker took queued events over", {
        events: queue.length - kept.length,
      });
      queue = kept;
    }
    for (const held of leases) {
      if (held.claim.lease !== lease || held.isLost) continue;
      held.isLost = true;
      held.log.warn("lease lost: another worker took the event over");
      held.abort.abort(new Error("Lease lost"));
    }
  }

  /** Holds a claim's lease until {@linkcode releaseLease}: the keeper extends it meanwhile. */
  function holdLease(claim: Claim, abort: AbortController, log: Logger): HeldLease {
    const held: HeldLease = { claim, abort, log, isLost: false, extending: undefined };
    leases.add(held);
    if (!isKeeping) keepLeases();
    return held;
  }

  /** Stops extending a lease, once an extension under way has landed. */
  async function releaseLease(held: HeldLease): Promise<void> {
    leases.delete(held);
    if (leases.size === 0 && queue.length === 0) keeperSleep?.abort();
    await held.extending;
  }

  /**
   * One loop for every held lease, while there are any (those of runs and of events waiting in
   * memory): every sixth of a lease it extends those with two thirds or less left (the events of
   * one entry share its lease), through the same commits as results, so a run never outlives its
   * lease and each run costs no timer of its own.
   */
  async function keepLeases(): Promise<void> {
    isKeeping = true;
    try {
      while (leases.size > 0 || queue.length > 0) {
        keeperSleep = new AbortController();
        try {
          await clock.sleep(leaseMs / 6, keeperSleep.signal);
        } catch {
          continue; // the last lease was released; a new one may have come since
        } finally {
          keeperSleep = undefined;
        }
        const now = clock.now();
        const due = new Set<Lease>();
        for (const { lease } of [...[...leases].map((held) => held.claim), ...queue]) {
          if (_leaseEnd(lease) - now <= (leaseMs * 2) / 3) due.add(lease);
        }
        await Promise.all([...due].map((lease) => {
          const extending = changes.submit({ kind: "extend", lease, until: now + leaseMs })
            .then(() => {}, (error) => logger.warn("cannot extend a lease", { error }));
          for (const held of leases) if (held.claim.lease === lease) held.extending = extending;
          return extending;
        }));
      }
    } finally {
      isKeeping = false;
    }
  }

  function reserve(count: number): Reservation {
    // While due events wait for slots, a claim's worth of slots is left to them, so they keep
    // running beside the new ones, and new events do not queue ahead of them.
    const kept = isBacklogged ? Math.min(EVENTS_PER_COMMIT, concurrency / 2) : 0;
    const free = freeSlots() - kept + (isBacklogged ? 0 : maxQueued);
    const held = loop && !isStopping ? Math.max(0, Math.min(count, Math.floor(free))) : 0;
    reserved += held;
    let isUsed = false;
    return {
      count: held,
      until: clock.now() + leaseMs,
      run(events) {
        if (isUsed) throw new Error("A reservation runs its events once");
        isUsed = true;
        reserved -= held;
        // Once stopping, leased events wait for their lease to run out, as after a crash.
        if (isStopping) return;
        // Those without an open slot wait in memory; the keeper extends their leases meanwhile.
        queue.push(...events.slice(0, held));
        if (queue.length > 0 && !isKeeping) keepLeases();
        runQueued();
      },
    };
  }

  return {
    start() {
      loop ??= runLoop();
    },
    wake,
    reserve,
    async stop(graceMs) {
      isStopping = true;
      // Queued events wait for their leases to run out, as after a crash.
      queue = [];
      keeperSleep?.abort();
      wake();
      await loop;
      const all = Promise.all([...runs.values()].map((run) => run.done));
      const isLate = await within(all.then(() => false), graceMs, { otherwise: true });
      if (isLate) {
        logger.warn("handlers still running at shutdown; aborting them", { running: runs.size });
        for (const run of runs.values()) run.abort.abort(new Error("Shutting down"));
        await all;
      }
    },
    lastLoopAt: () => lastLoopAt,
    running: () => runs.size,
  };
}

/** What a claim does to one due entry: the events it takes, and those it leaves there. */
interface _ClaimPlan {
  entry: Deno.KvEntry<ReadyEntryValue>;
  taken: string[];
  /** Claimable events beyond the room for runs; events that are not claimable are dropped. */
  rest: string[];
}

/**
 * Plans the claim of due entries: the claimable events (those in `records`) of each are taken, up
 * to `room` in all. An entry that would stay as it is gets no plan.
 */
function _planClaims(
  entries: readonly Deno.KvEntry<ReadyEntryValue>[],
  records: ReadonlyMap<string, EventRecord>,
  room: number,
): _ClaimPlan[] {
  let left = room;
  const plans: _ClaimPlan[] = [];
  for (const entry of entries) {
    const ids = idsOfEntry(entry.value);
    const claimable = ids.filter((id) => records.has(id));
    const taken = claimable.slice(0, Math.max(0, left));
    left -= taken.length;
    const rest = claimable.slice(taken.length);
    if (taken.length > 0 || rest.length < ids.length) plans.push({ entry, taken, rest });
  }
  return plans;
}

/** When a lease ends: the time in its ready entry's key. */
function _leaseEnd(lease: Lease): number {
  return lease.key[1] as number;
}
