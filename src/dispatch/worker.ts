/**
 * The worker: the run loop and its slots. It claims due events from the store under a lease, runs
 * each one's handlers in a slot of its own (`run_handlers.ts`), and settles the run in the store;
 * the lease keeper (`lease_keeper.ts`) extends the leases meanwhile.
 *
 * Events the intake records leased to this worker (`reserve`) run at once in free slots, or wait
 * in memory for one (the keeper extends their leases meanwhile; if the process dies, their leases
 * run out and any worker claims them). A slot is freed once the handlers are done: storing the
 * result, shared with other runs' results by the store, does not hold it.
 *
 * Every retry is due within `maxDelayMs`, whatever a handler asked (`retry_delay.ts`). The store's
 * upkeep runs in the loop (`upkeep.ts`): on start the events older versions parked later than
 * that are made due now, and expired events are purged every ten minutes.
 *
 * @module
 */
import { DEFAULTS } from "../config.ts";
import type { WebhookEvent } from "../events/events.ts";
import type { Clock } from "../ops/clock.ts";
import type { Logger } from "../ops/log.ts";
import { annotateSpan, withSpan } from "../ops/telemetry.ts";
import { within } from "../ops/timeout.ts";
import { createWakeup } from "../ops/wakeup.ts";
import type { ClaimedEvent, Store } from "../store/store.ts";
import type { Dispatcher, HandlerServices } from "./dispatcher.ts";
import { createLeaseKeeper } from "./lease_keeper.ts";
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./retry_delay.ts";
import { runHandlers } from "./run_handlers.ts";
import { createUpkeep } from "./upkeep.ts";

/** Options for {@linkcode createWorker}. */
export interface WorkerOptions {
  store: Store;
  dispatcher: Dispatcher;
  logger: Logger;
  clock: Clock;
  /** Services passed to every handler beside the store. */
  services?: Omit<HandlerServices, "store">;
  /** How long a claim holds an event before another worker may take it (`DEFAULTS.leaseMs`). */
  leaseMs?: number;
  /** How often to look for due events when nothing wakes the worker (default 1 s). */
  pollIntervalMs?: number;
  /** Events handled at the same time (`DEFAULTS.workerConcurrency`). */
  concurrency?: number;
  retry?: Partial<RetryPolicy>;
  /** Returns a number in [0, 1) for jitter; defaults to `Math.random`. */
  random?: () => number;
  /**
   * How long handlers' reply records are kept: as long as an event can come back (the longer of
   * the dedup TTL and the retention; `DEFAULTS.dedupTtlMs`).
   */
  replyTtlMs?: number;
  /** Told about handler runs and stored results, for metrics. */
  observer?: WorkerObserver;
  /** Run beside each purge of expired events (media past the retention); must not throw. */
  purgeAlso?: (now: number) => Promise<void>;
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
  run(events: readonly ClaimedEvent[]): void;
}

/** Shortest sleep between two claim rounds, so an entry that cannot be claimed never spins. */
const MIN_SLEEP_MS = 1;
/** Events per claim round worth a commit: fewer would spend a claim's commit on a handful. */
const CLAIM_BATCH = 10;
/**
 * Events recorded leased to the worker that may wait in memory for a slot, per slot. Without them
 * a burst of batched deliveries went to the ready set, whose claims could not keep up beside the
 * intake: 10-event deliveries at 32 connections were handled at 5.5k events/s instead of 18k.
 */
const QUEUED_PER_SLOT = 4;

/** An event waiting in memory for a slot, and the release of its lease's hold. */
interface _Queued {
  claim: ClaimedEvent;
  release: () => Promise<void>;
}

/** Creates a worker over `store`; call `start()` to run it. */
export function createWorker(options: WorkerOptions): Worker {
  const { store, dispatcher, logger, clock } = options;
  const leaseMs = options.leaseMs ?? DEFAULTS.leaseMs;
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const concurrency = options.concurrency ?? DEFAULTS.workerConcurrency;
  const retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
  const random = options.random ?? Math.random;
  const services: HandlerServices = { ...options.services, store };
  const keeper = createLeaseKeeper({ store, clock, logger, leaseMs });
  const upkeep = createUpkeep({
    store,
    logger,
    latestDueInMs: retry.maxDelayMs + leaseMs,
    ...(options.purgeAlso ? { purgeAlso: options.purgeAlso } : {}),
  });

  const runs = new Map<string, { done: Promise<void>; abort: AbortController }>();
  let isStopping = false;
  let loop: Promise<void> | undefined;
  let lastLoopAt = 0;
  const wakeup = createWakeup(clock);
  /** Due events may be waiting for a slot: finished runs wake the claim loop. */
  let isBacklogged = true;
  /** Slots whose event's handlers are running. */
  let busy = 0;
  /** Slots reserved for events being recorded already leased to this worker. */
  let reserved = 0;
  /** Events recorded leased to this worker that wait for a slot, oldest first. */
  let queue: _Queued[] = [];
  const maxQueued = QUEUED_PER_SLOT * concurrency;

  async function runLoop(): Promise<void> {
    await upkeep.bringForwardParked(clock.now());
    while (!isStopping) {
      lastLoopAt = clock.now();
      wakeup.clear();
      upkeep.purgeWhenDue(lastLoopAt);
      const free = freeSlots();
      // While runs are going, claim only once a batch's worth of slots is free: claiming each
      // freed slot on its own would spend one commit per event.
      const isWorthClaiming = free > 0 &&
        (busy === 0 || free >= Math.min(CLAIM_BATCH, concurrency / 2));
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
   * Sleeps until woken (new events, a finished run), until the next waiting event is due, or for
   * one poll interval. When every slot is busy only a finished run or the poll wakes it.
   */
  async function waitForWork(isFull: boolean): Promise<void> {
    if (wakeup.isWoken()) return;
    let sleepMs = pollIntervalMs;
    if (!isFull) {
      try {
        const { nextDueAt } = await store.queueFigures(clock.now(), 1);
        if (nextDueAt !== undefined) {
          sleepMs = Math.max(MIN_SLEEP_MS, Math.min(sleepMs, nextDueAt - clock.now()));
        }
      } catch { /* the poll interval will do */ }
    }
    await wakeup.sleep(sleepMs);
  }

  const wake = (): void => wakeup.wake();

  /** Claims up to `limit` due events and starts their runs; returns how many it claimed. */
  async function claimDue(limit: number): Promise<number> {
    const now = clock.now();
    const claims = await store.claimDue({
      now,
      limit,
      leaseUntil: now + leaseMs,
      isRunning: (id) => runs.has(id),
      // Slots the intake reserved meanwhile are not claimed. (Events it records while the claim
      // commits may still take the cap over by a few, briefly.)
      room: () => Math.max(0, freeSlots()),
    });
    for (const claim of claims) startRun(claim, now);
    return claims.length;
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
      const { claim, release } = queue.shift()!;
      startRun(claim, clock.now());
      void release(); // the run holds the lease now
    }
  }

  /**
   * Starts running a claimed (or recorded-leased) event's handlers in a slot of its own. The slot
   * is freed once the handlers are done: storing the result, shared with others, does not hold it.
   */
  function startRun(claim: ClaimedEvent, now: number): void {
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

  /** Runs a claim's handlers while holding its lease, then settles the run in the store. */
  async function runClaim(
    claim: ClaimedEvent,
    abort: AbortController,
    freeSlot: () => void,
  ): Promise<void> {
    const { event } = claim;
    const log = logger.child({ eventId: event.id, kind: event.kind });
    const attempt = claim.record.attempts + 1;
    let isLost = false;
    const release = keeper.hold(claim.lease, () => {
      isLost = true;
      log.warn("lease lost: another worker took the event over");
      abort.abort(new Error("Lease lost"));
    });
    const outcome = await runHandlers(claim, {
      dispatcher,
      services,
      log,
      signal: abort.signal,
      retry,
      random,
      // The default dedup TTL is the longer default (longer than the event retention).
      replyTtlMs: options.replyTtlMs ?? DEFAULTS.dedupTtlMs,
      now: () => clock.now(),
      onHandlerRun: (handler, result) =>
        observe(() =>
          options.observer?.onHandlerRun?.({
            handler,
            eventId: event.id,
            kind: event.kind,
            attempt,
            outcome: result,
          })
        ),
    });
    await release();
    freeSlot();
    if (isLost) {
      annotateSpan({ "wa.event.outcome": "lease_lost" });
      return; // another worker owns the event now
    }
    if (outcome === undefined) {
      // Aborted by shutdown: the lease runs out and another worker retries it soon.
      annotateSpan({ "wa.event.outcome": "aborted" });
      return;
    }
    const isStored = await withSpan("worker.result", async (span) => {
      const isStored = await store.settle(claim, outcome);
      span.setAttribute("wa.result.stored", isStored);
      return isStored;
    }, { attributes: { "wa.event.id": event.id, "wa.event.state": outcome.state } });
    annotateSpan({ "wa.event.outcome": isStored ? outcome.state : "not_stored" });
    if (!isStored) {
      keeper.lose(claim.lease);
      log.warn("event changed while its handlers ran; result not stored", {
        state: outcome.state,
      });
      return;
    }
    const state = outcome.state;
    observe(() =>
      options.observer?.onSettled?.({ eventId: event.id, kind: event.kind, attempt, state })
    );
    if (state === "done") {
      log.debug("event done", { attempt, ms: outcome.endedAt - outcome.startedAt });
    } else if (state === "retrying") {
      log.info("event will be retried", { attempt, dueAt: outcome.retryAt });
    } else {
      log.error("event dead-lettered", { attempt, lastError: outcome.error });
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

  /** Queues an event recorded leased to this worker; the keeper holds its lease meanwhile. */
  function enqueue(claim: ClaimedEvent): void {
    const queued: _Queued = {
      claim,
      release: keeper.hold(claim.lease, () => {
        const before = queue.length;
        queue = queue.filter((other) => other !== queued);
        if (queue.length < before) {
          logger.warn("lease lost: another worker took queued events over", { events: 1 });
        }
      }),
    };
    queue.push(queued);
  }

  function reserve(count: number): Reservation {
    // While due events wait for slots, a claim's worth of slots is left to them, so they keep
    // running beside the new ones, and new events do not queue ahead of them.
    const kept = isBacklogged ? Math.min(CLAIM_BATCH, concurrency / 2) : 0;
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
        for (const claim of events.slice(0, held)) enqueue(claim);
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
      for (const { release } of queue) void release();
      queue = [];
      wake();
      await loop;
      await upkeep.purged();
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
