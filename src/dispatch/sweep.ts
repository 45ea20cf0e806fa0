/**
 * The sweep: a `Deno.cron` job that wakes the worker once a minute and waits, bounded, until no
 * event is due and none is running.
 *
 * The worker polls the store by itself while its process runs. On Deno Deploy the isolate sleeps when no
 * request comes, and the poll sleeps with it: an event due for a retry, an event replayed, or an
 * event whose isolate died mid-run (its lease expires) would wait for the next delivery. The
 * platform starts the isolate for each cron run, so the job makes sure such events run within a
 * minute or so. Where `Deno.cron` is missing (no `"unstable": ["cron"]`), nothing is registered
 * and the poll alone does the work.
 *
 * @module
 */
import type { Clock } from "../ops/clock.ts";
import type { Logger } from "../ops/log.ts";
import { within } from "../ops/timeout.ts";
import type { Store } from "../store/store.ts";
import type { Worker } from "./worker.ts";

/** The job's name, as the Deno Deploy dashboard and logs show it. */
export const SWEEP_CRON_NAME = "wa-webhook sweep";
/** Every minute: `Deno.cron`'s finest schedule. */
export const SWEEP_SCHEDULE = "* * * * *";
/**
 * How long one sweep may wait for the worker. Under a minute: Deno Deploy skips a run while the
 * previous one is still running.
 */
export const DEFAULT_SWEEP_MAX_MS = 50_000;
/** How often a sweep looks whether the worker has caught up. */
const DEFAULT_CHECK_EVERY_MS = 250;
/**
 * Checks in a row that must find nothing due and nothing running: a claim moves an entry away
 * before its run is counted, so one check could see neither.
 */
const IDLE_CHECKS = 2;
/** Due events counted for the log line at most; a sweep works on all of them regardless. */
const MAX_COUNTED = 1_000;

/** The shape of `Deno.cron` that the sweep uses: name, schedule, options with a signal, handler. */
export type CronFunction = (
  name: string,
  schedule: string,
  options: { signal?: AbortSignal },
  handler: () => Promise<void>,
) => Promise<void>;

/** What a sweep works on: the running service's store and worker. */
export interface SweepTarget {
  store: Pick<Store, "queueFigures">;
  worker: Pick<Worker, "wake" | "running">;
  clock: Clock;
  logger: Logger;
}

/** Options for {@linkcode sweepDueEvents} and {@linkcode registerSweepCron}. */
export interface SweepOptions {
  /** Longest wait for the worker (default {@linkcode DEFAULT_SWEEP_MAX_MS}). */
  maxMs?: number;
  /** How often to check (default 250 ms). */
  checkEveryMs?: number;
}

/** What one sweep found and how it ended. */
export interface SweepResult {
  /** Events due when it started (counted up to 1000). */
  dueAtStart: number;
  /** True when it ended with nothing due and nothing running; false when `maxMs` ran out. */
  isIdle: boolean;
  ms: number;
}

/**
 * Wakes the worker, then waits until no event is due and none is running (checked twice in a
 * row), or until `maxMs` has passed. Events due later (a retry's backoff) are left to later sweeps.
 */
export async function sweepDueEvents(
  target: SweepTarget,
  options: SweepOptions = {},
): Promise<SweepResult> {
  const { store, worker, clock } = target;
  const maxMs = options.maxMs ?? DEFAULT_SWEEP_MAX_MS;
  const checkEveryMs = options.checkEveryMs ?? DEFAULT_CHECK_EVERY_MS;
  const started = clock.now();
  const dueAtStart = (await store.queueFigures(started, MAX_COUNTED)).due;
  let idleChecks = 0;
  for (;;) {
    worker.wake();
    // The first waiting group is due exactly when any is: one read answers "anything due?".
    const isIdleNow = worker.running() === 0 &&
      (await store.queueFigures(clock.now(), 1)).due === 0;
    idleChecks = isIdleNow ? idleChecks + 1 : 0;
    const ms = clock.now() - started;
    if (idleChecks >= IDLE_CHECKS) return { dueAtStart, isIdle: true, ms };
    if (ms >= maxMs) return { dueAtStart, isIdle: false, ms };
    await clock.sleep(Math.min(checkEveryMs, maxMs - ms));
  }
}

/** The registered sweep job. */
export interface SweepCron {
  /** Whether a job was registered: false where `Deno.cron` is missing. */
  isRegistered: boolean;
  /**
   * Hands the started service to the job. A run that comes before (the platform started the
   * isolate for it) waits for this, up to the sweep's `maxMs`.
   */
  connect(target: SweepTarget): void;
  /** Unregisters the job: a registered job keeps the process alive. */
  stop(): void;
}

/**
 * Registers the sweep job with `cron` (pass `Deno.cron` where it exists, `undefined` elsewhere).
 * Call it before any `await` of the entry point: Deno Deploy only finds jobs registered while the
 * main module is evaluated, before the server starts. A sweep's failure is logged, not thrown.
 */
export function registerSweepCron(
  cron: CronFunction | undefined,
  options: SweepOptions = {},
): SweepCron {
  const maxMs = options.maxMs ?? DEFAULT_SWEEP_MAX_MS;
  const unregister = new AbortController();
  let connect: (target: SweepTarget) => void = () => {};
  const connected = new Promise<SweepTarget>((resolve) => (connect = resolve));
  if (cron === undefined) {
    return { isRegistered: false, connect, stop: () => unregister.abort() };
  }

  const runSweep = async (): Promise<void> => {
    const target = await within(connected, maxMs, { signal: unregister.signal });
    if (target === undefined) return; // the service never started, or is stopping
    try {
      const result = await sweepDueEvents(target, options);
      const fields = { due: result.dueAtStart, isIdle: result.isIdle, ms: result.ms };
      if (result.dueAtStart > 0 || !result.isIdle) target.logger.info("sweep", fields);
      else target.logger.debug("sweep", fields);
    } catch (error) {
      // A sweep cut short by shutdown fails on the closed store: that is not worth an error line.
      if (!unregister.signal.aborted) target.logger.error("sweep failed", { error });
    }
  };
  // The promise settles when the job is unregistered; nothing waits for it.
  cron(SWEEP_CRON_NAME, SWEEP_SCHEDULE, { signal: unregister.signal }, runSweep).catch(() => {});
  return { isRegistered: true, connect, stop: () => unregister.abort() };
}
