/**
 * The worker: claims ready events with a lease, runs their handlers through the dispatcher, and
 * marks each event done, retrying, or dead.
 *
 * A claim is one atomic that checks the record's versionstamp and moves the event's ready entry to
 * the end of its lease, so an event whose worker died becomes due again by itself, and two
 * workers (or processes) never hold the same event. The lease is extended while handlers run, so a
 * slow handler never runs twice; if an extension finds the record changed, the run is aborted.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { WebhookEvent } from "../events/events.ts";
import type { Logger } from "../log.ts";
import { commitWithRetry } from "../store/commit.ts";
import { readEvent } from "../store/inbox.ts";
import {
  type AttemptRecord,
  deadLetterKey,
  eventKey,
  type EventRecord,
  READY_PREFIX,
  readyKey,
} from "../store/keys.ts";
import type { Dispatcher, HandlerServices } from "./dispatcher.ts";

/** How handler failures are retried. */
export interface RetryPolicy {
  /** Runs of an event's handlers before it is dead-lettered (default 8). */
  maxAttempts: number;
  /** Delay before the first retry; doubled for each further one (default 1 s). */
  baseDelayMs: number;
  /** Longest delay between two attempts (default 15 min). */
  maxDelayMs: number;
}

/** Defaults of {@linkcode RetryPolicy}: 1 s, 2 s, 4 s, … up to 15 min, 8 attempts. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 8,
  baseDelayMs: 1_000,
  maxDelayMs: 15 * 60_000,
};

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
  /** Events handled at the same time (default 16). */
  concurrency?: number;
  retry?: Partial<RetryPolicy>;
  /** Returns a number in [0, 1) for jitter; defaults to `Math.random`. */
  random?: () => number;
}

/** A running worker. */
export interface Worker {
  /** Starts the claim loop. */
  start(): void;
  /** Looks for due events now instead of at the next poll (intake calls it after recording). */
  wake(): void;
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

/** Default lease: long enough for most handlers, short enough that a crash costs seconds. */
const DEFAULT_LEASE_MS = 15_000;
/** Shortest sleep between two claim rounds, so an entry that cannot be claimed never spins. */
const MIN_SLEEP_MS = 1;
/** Attempts kept in a record's history, to bound its size. */
const MAX_HISTORY = 20;

interface Claim {
  record: EventRecord;
  versionstamp: string;
  event: WebhookEvent;
}

/** Creates a worker over `kv`; call `start()` to run it. */
export function createWorker(options: WorkerOptions): Worker {
  const { kv, dispatcher, logger, clock } = options;
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const concurrency = options.concurrency ?? 16;
  const retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
  const random = options.random ?? Math.random;

  const runs = new Map<string, { done: Promise<void>; abort: AbortController }>();
  let isStopping = false;
  let loop: Promise<void> | undefined;
  let lastLoopAt = 0;
  let wakeUp: (() => void) | undefined;
  let isWoken = false;

  async function runLoop(): Promise<void> {
    while (!isStopping) {
      lastLoopAt = clock.now();
      isWoken = false;
      const free = concurrency - runs.size;
      let claimed = 0;
      if (free > 0) {
        try {
          claimed = await claimDue(free);
        } catch (error) {
          logger.error("cannot claim events", { error });
        }
      }
      if (isStopping) break;
      if (claimed < free || free === 0) await waitForWork(free === 0);
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
    const due: Deno.KvEntry<string>[] = [];
    const iterator = kv.list<string>(
      { start: READY_PREFIX, end: readyKey(now + 1, "") },
      { limit: limit * 2 },
    );
    for await (const entry of iterator) if (!runs.has(entry.value)) due.push(entry);
    let claimed = 0;
    for (const entry of due) {
      if (claimed >= limit || isStopping) break;
      const claim = await claimOne(entry, now);
      if (!claim) continue;
      claimed++;
      const abort = new AbortController();
      const done = runClaim(claim, abort).finally(() => {
        runs.delete(claim.record.id);
        wake();
      });
      runs.set(claim.record.id, { done, abort });
    }
    return claimed;
  }

  async function claimOne(entry: Deno.KvEntry<string>, now: number): Promise<Claim | null> {
    const id = entry.value;
    const current = await kv.get<EventRecord>(eventKey(id));
    const record = current.value;
    const dueAt = entry.key[1] as number;
    if (!record || current.versionstamp === null || record.dueAt !== dueAt) {
      // An entry whose record expired or moved on: remove it if nobody touched it meanwhile.
      await kv.atomic().check(entry).delete(entry.key).commit();
      return null;
    }
    const leaseUntil = now + leaseMs;
    const claimed: EventRecord = { ...record, state: "processing", dueAt: leaseUntil };
    const result = await commitWithRetry(() =>
      kv.atomic()
        .check(current)
        .check(entry)
        .delete(entry.key)
        .set(readyKey(leaseUntil, id), id)
        .set(eventKey(id), claimed, { expireIn: _remaining(record, now) })
    );
    if (!result.ok) return null; // another worker was faster
    try {
      return {
        record: claimed,
        versionstamp: result.versionstamp,
        event: await readEvent(kv, record),
      };
    } catch (error) {
      logger.error("cannot read event", { eventId: id, error });
      return null;
    }
  }

  async function runClaim(claim: Claim, abort: AbortController): Promise<void> {
    const { event } = claim;
    const log = logger.child({ eventId: event.id, kind: event.kind });
    const attempt = claim.record.attempts + 1;
    const startedAt = clock.now();
    const lease = keepLease(claim, abort, log);

    const completed = new Set(claim.record.completedHandlers);
    const failures: string[] = [];
    for (const handler of dispatcher.handlersFor(event)) {
      if (completed.has(handler.name) || abort.signal.aborted) continue;
      try {
        await handler.handle({
          ...options.services,
          kv,
          event,
          log: log.child({ handler: handler.name }),
          signal: abort.signal,
          attempt,
        });
        completed.add(handler.name);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        failures.push(`${handler.name}: ${message}`);
        log.warn("handler failed", { handler: handler.name, attempt, error });
      }
    }
    await lease.stop();
    if (lease.isLost()) return; // another worker owns the event now

    const now = clock.now();
    const ms = now - startedAt;
    const history: AttemptRecord[] = [
      ...claim.record.history,
      { at: startedAt, ms, ...(failures.length ? { error: failures.join("; ") } : {}) },
    ].slice(-MAX_HISTORY);
    const base = { ...claim.record, attempts: attempt, completedHandlers: [...completed], history };
    const current = { key: eventKey(event.id), versionstamp: lease.versionstamp() };
    const expireIn = _remaining(claim.record, now);

    let next: EventRecord;
    const atomic = (): Deno.AtomicOperation => {
      const op = kv.atomic().check(current).delete(lease.key());
      op.set(eventKey(event.id), next, { expireIn });
      if (next.state === "retrying" && next.dueAt !== null) {
        op.set(readyKey(next.dueAt, event.id), event.id);
      }
      if (next.state === "dead") op.set(deadLetterKey(event.id), event.id, { expireIn });
      return op;
    };
    if (failures.length === 0) {
      next = { ...base, state: "done", dueAt: null };
    } else if (attempt < retry.maxAttempts && !abort.signal.aborted) {
      const delay = _backoffMs(attempt, retry, random);
      next = { ...base, state: "retrying", dueAt: now + delay, lastError: failures.join("; ") };
    } else if (attempt < retry.maxAttempts) {
      // Aborted by shutdown: leave the lease to expire so another worker retries it soon.
      return;
    } else {
      next = { ...base, state: "dead", dueAt: null, lastError: failures.join("; ") };
    }
    const result = await commitWithRetry(atomic);
    if (!result.ok) {
      log.warn("event changed while its handlers ran; result not stored", { state: next.state });
      return;
    }
    if (next.state === "done") log.debug("event done", { attempt, ms });
    else if (next.state === "retrying") {
      log.info("event will be retried", { attempt, dueAt: next.dueAt });
    } else log.error("event dead-lettered", { attempt, lastError: next.lastError });
  }

  /** Extends the lease every third of its length until stopped; aborts the run if it is lost. */
  function keepLease(claim: Claim, abort: AbortController, log: Logger) {
    let versionstamp = claim.versionstamp;
    let dueAt = claim.record.dueAt ?? 0;
    let record = claim.record;
    let isLost = false;
    const stopSleeping = new AbortController();
    const extending = (async () => {
      while (!stopSleeping.signal.aborted) {
        try {
          await clock.sleep(leaseMs / 3, stopSleeping.signal);
        } catch {
          return;
        }
        const now = clock.now();
        const extended: EventRecord = { ...record, dueAt: now + leaseMs };
        const result = await commitWithRetry(() =>
          kv.atomic()
            .check({ key: eventKey(record.id), versionstamp })
            .delete(readyKey(dueAt, record.id))
            .set(readyKey(now + leaseMs, record.id), record.id)
            .set(eventKey(record.id), extended, { expireIn: _remaining(record, now) })
        ).catch((error) => {
          log.warn("cannot extend lease", { error });
          return null;
        });
        if (result?.ok) {
          versionstamp = result.versionstamp;
          dueAt = now + leaseMs;
          record = extended;
        } else if (result && !result.ok) {
          isLost = true;
          log.warn("lease lost: another worker took the event over");
          abort.abort(new Error("Lease lost"));
          return;
        }
      }
    })();
    return {
      async stop(): Promise<void> {
        stopSleeping.abort();
        await extending;
      },
      versionstamp: () => versionstamp,
      key: () => readyKey(dueAt, record.id),
      isLost: () => isLost,
    };
  }

  return {
    start() {
      loop ??= runLoop();
    },
    wake,
    async stop(graceMs) {
      isStopping = true;
      wake();
      await loop;
      const all = Promise.all([...runs.values()].map((run) => run.done));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), graceMs);
      });
      const isLate = await Promise.race([all.then(() => false), timedOut]);
      clearTimeout(timer);
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

/** Exponential backoff with jitter: half the delay fixed, half random, so delays keep growing. */
function _backoffMs(attempt: number, policy: RetryPolicy, random: () => number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** What is left of a record's life, for `expireIn` (a `set` without it would drop the expiry). */
function _remaining(record: EventRecord, now: number): number {
  return Math.max(1, record.expiresAt - now);
}
