/**
 * The deliverer of one destination: a loop that claims the destination's due delivery jobs from
 * the store under a lease, sends each one signed (`signing.ts`) with one attempt (`send.ts`), and
 * settles what the attempt came to.
 *
 * - At most `destination.concurrency` requests are in flight; with `ratePerSecond`, attempts start
 *   at least `1000 / ratePerSecond` ms apart.
 * - It claims ahead (`hold.ts`): it holds (queued in memory under their leases, in flight, or
 *   being settled) what its slots send in 100 ms at the recent pace, and at least four rounds, so
 *   a claim's commit serves many attempts and a fast consumer's slots do not wait for the next
 *   one; it claims again once half of them are gone. A queued job whose lease would end during
 *   its attempt has it extended first (or is left to whoever took it). Queued jobs are let go
 *   (their leases run out) when the circuit opens, when the destination is paused, and at
 *   shutdown.
 * - While the destination's circuit (`circuit.ts`) is open nothing is claimed: the jobs stay due,
 *   and one probe goes out when the circuit allows it.
 * - `delivered` settles the job delivered. `retry` and `rejected` settle it `retrying`, due after
 *   the retry policy's delay (or the answer's `Retry-After` when longer, capped by the policy), or
 *   `dead` once it has had `retry.maxAttempts` attempts, the last reason in `lastError`.
 * - `gone` (410) settles the job `retrying`, due at once, and pauses the destination in the store
 *   (`pauses.ts`), with an error line naming it: its jobs wait, in every process and across
 *   restarts, until an operator resumes it through the admin API.
 * - While the destination is paused (declared so, or at run time) nothing is claimed.
 *
 * A job's lease covers its wait for the rate limit and its whole attempt; when the process dies
 * the lease runs out and the job is claimed again. An attempt's slot is free once its answer is
 * in; the result's commit (which the lease covers) lands beside the next attempts. Log lines name
 * the destination and the event id, never a secret, a signature or a body.
 *
 * @module
 */
import type { Clock } from "../ops/clock.ts";
import { createDeadlines } from "../ops/deadlines.ts";
import { createWakeup } from "../ops/wakeup.ts";
import type { Logger } from "../ops/log.ts";
import { within } from "../ops/timeout.ts";
import type { ClaimedJob, JobOutcome, Store } from "../store/store.ts";
import { retryDelayMs, type RetryPolicy } from "../dispatch/retry_delay.ts";
import { type CircuitState, createCircuitBreaker } from "./circuit.ts";
import type { Destination } from "./declarations.ts";
import { jobsToHold, nextPace } from "./hold.ts";
import type { Pauses } from "./pauses.ts";
import { deliveryBody, webhookId } from "./payload.ts";
import { type AttemptOutcome, sendOnce } from "./send.ts";
import { createSigner } from "./signing.ts";
import { createHttp1Client } from "./http1/client.ts";
import { type DeliveryHttp, fetchPost } from "./transport.ts";

/** What {@linkcode createDeliverer} needs. */
export interface DelivererOptions {
  store: Pick<Store, "claimJobs" | "extendJobLease" | "settleJob">;
  destination: Destination;
  /** Asked before each claim; a 410 pauses the destination through it. */
  pauses: Pick<Pauses, "of" | "pause">;
  clock: Clock;
  logger: Logger;
  /** The retry policy of every job (the configuration's `RETRY_*`). */
  retry: RetryPolicy;
  /** The shortest lease a claim takes, ms (the configuration's `LEASE_MS`). */
  leaseMs: number;
  /** How often to look for due jobs when nothing wakes the loop, ms (default 1 s). */
  pollIntervalMs?: number;
  /** Returns a number in [0, 1) for the retry delays' jitter; defaults to `Math.random`. */
  random?: () => number;
  /**
   * How requests travel (`transport.ts`): `"direct"`, the built-in HTTP/1.1 client with its own
   * connections, closed at `stop`; `"fetch"` (the default), `fetch`.
   */
  http?: DeliveryHttp;
  /** The `fetch` of `http: "fetch"`, the global one by default; given, `http` is ignored. */
  fetch?: typeof fetch;
  /** Told about attempts, settled jobs and circuit changes (metrics); none by default. */
  observer?: DelivererObserver;
}

/** What a deliverer tells its observer; each call names the destination. */
export interface DelivererObserver {
  /** One attempt ended with `outcome`, after `durationMs` on the deliverer's clock. */
  onAttempt?(
    attempt: { destination: string; outcome: AttemptOutcome["kind"]; durationMs: number },
  ): void;
  /**
   * A job's result was stored; `lagMs` (from the event's reception to its delivery) is given for
   * `delivered` only.
   */
  onSettled?(settled: { destination: string; state: JobOutcome["state"]; lagMs?: number }): void;
  /** The destination's circuit changed to `state`. */
  onCircuit?(change: { destination: string; state: CircuitState }): void;
}

/** A destination's delivery loop. */
export interface Deliverer {
  /** Starts the loop. */
  start(): void;
  /** Looks for due jobs now instead of at the next poll (intake calls it after recording). */
  wake(): void;
  /** The destination's circuit in this process. */
  circuit(): CircuitState;
  /**
   * Stops claiming, lets attempts in flight finish within `graceMs`, then aborts the rest (their
   * leases run out and they are claimed again), and waits for the results being stored.
   */
  stop(graceMs: number): Promise<void>;
}

/** Default wait between two looks for due jobs when nothing wakes the loop. */
const DEFAULT_POLL_INTERVAL_MS = 1_000;

/**
 * What an attempt's lease must still have beyond its timeout when it starts: settling takes a
 * commit, which must land while the lease holds.
 */
const SETTLE_MARGIN_MS = 1_000;

/**
 * Added to a claim's lease beyond the rate limit's wait and the attempt's timeout: the settle
 * margin, and how long a job claimed ahead may wait in the queue before its lease needs extending.
 */
const LEASE_MARGIN_MS = 5_000;

/** Shortest sleep of the loop, so a job that cannot be claimed never spins it. */
const MIN_SLEEP_MS = 1;

/**
 * Creates the deliverer of `destination`, its signer made once.
 *
 * @throws {SigningSecretError} when a secret cannot sign (the message names its position only).
 */
export function createDeliverer(options: DelivererOptions): Deliverer {
  const { store, destination, clock, retry } = options;
  const { name, url, timeoutMs, concurrency } = destination;
  const logger = options.logger.child({ destination: name });
  const random = options.random ?? Math.random;
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  const sendInterval = destination.ratePerSecond === undefined
    ? 0
    : 1_000 / destination.ratePerSecond;
  const signer = createSigner(destination.secrets);
  const client = options.http === "direct" && !options.fetch ? createHttp1Client() : undefined;
  const post = client?.post ?? fetchPost(options.fetch);
  const circuit = createCircuitBreaker({
    clock,
    onTransition: (change) => {
      options.observer?.onCircuit?.({ destination: name, state: change.to });
      const fields = { from: change.from, to: change.to, failures: change.consecutiveFailures };
      if (change.to === "open") {
        logger.warn("destination failing: deliveries wait for a probe", {
          ...fields,
          probeInMs: change.probeIntervalMs,
        });
      } else logger.info("destination circuit changed", fields);
    },
  });

  const inFlight = new Set<Promise<void>>();
  /** Jobs claimed ahead, leased, waiting for a free slot, oldest due first. */
  const queue: ClaimedJob[] = [];
  /** Results of attempts being stored. */
  const settles = new Set<Promise<void>>();
  const abort = new AbortController();
  let loop: Promise<void> | undefined;
  let isStopping = false;
  /** Whether the last look found the destination paused, to log its changes once. */
  let wasPaused = false;
  const wakeup = createWakeup(clock);
  /** The attempts' timeouts, on one timer. */
  const deadlines = createDeadlines();
  /** When the next attempt may start under the rate limit. */
  let nextSendAt = 0;
  /** The earliest retry this deliverer scheduled, so the loop wakes for it before the poll. */
  let nextRetryAt = Infinity;
  /** How long attempts have lately taken, ms: a moving average, `undefined` before the first. */
  let attemptMs: number | undefined;

  async function runLoop(): Promise<void> {
    while (!isStopping) {
      wakeup.clear();
      if (await isPaused()) {
        queue.length = 0; // let go: their leases run out, and the pause holds them meanwhile
        await waitForWork();
        continue;
      }
      if (circuit.state() !== "closed") queue.length = 0; // they wait for the probe's answer
      startQueued();
      const limit = claimLimit();
      let claimed = 0;
      if (limit > 0) {
        try {
          claimed = await claim(limit);
        } catch (error) {
          logger.error("cannot claim delivery jobs", { error });
        }
      }
      if (isStopping) break;
      if (limit === 0 || claimed < limit) await waitForWork();
    }
    queue.length = 0; // stopping: their leases run out and the next process claims them
  }

  /** How many jobs to claim now: none while enough are queued; one probe while not closed. */
  function claimLimit(): number {
    if (circuit.state() !== "closed") {
      // One probe at a time, and only when the circuit grants it; the jobs stay due meanwhile.
      return inFlight.size === 0 && circuit.canSend() ? 1 : 0;
    }
    const held = jobsToHold(concurrency, attemptMs);
    if (queue.length >= Math.max(concurrency, held / 2)) return 0;
    let limit = held - queue.length - inFlight.size - settles.size;
    if (sendInterval > 0) {
      // Hold no more than a second's worth of attempts: each waits its turn under its lease.
      limit = Math.min(limit, Math.max(1, Math.floor(1_000 / sendInterval)) - queue.length);
    }
    return Math.max(0, limit);
  }

  /** Starts queued jobs in the free slots (none while the circuit is not closed). */
  function startQueued(): void {
    while (inFlight.size < concurrency && queue.length > 0 && !isStopping) {
      startAttempt(queue.shift()!);
    }
  }

  /** Whether the destination is paused now (or its pause cannot be read): nothing is claimed. */
  async function isPaused(): Promise<boolean> {
    let pause;
    try {
      pause = await options.pauses.of(name);
    } catch (error) {
      logger.error("cannot read whether the destination is paused; claiming nothing", { error });
      return true;
    }
    if ((pause !== undefined) !== wasPaused) {
      wasPaused = pause !== undefined;
      if (pause) logger.info("destination paused: its deliveries wait", { ...pause });
      else logger.info("destination resumed: delivering again");
    }
    return pause !== undefined;
  }

  /** Claims up to `limit` due jobs, queues them and starts what fits; returns how many. */
  async function claim(limit: number): Promise<number> {
    const now = clock.now();
    const waitMs = Math.max(0, nextSendAt - now) + limit * sendInterval;
    const leaseUntil = now + Math.max(options.leaseMs, waitMs + timeoutMs + LEASE_MARGIN_MS);
    const claims = await store.claimJobs(name, { now, limit, leaseUntil });
    queue.push(...claims);
    startQueued();
    return claims.length;
  }

  /** Sleeps until woken, until an attempt ends, until a retry or probe is due, or one poll. */
  async function waitForWork(): Promise<void> {
    if (wakeup.isWoken()) return;
    const now = clock.now();
    let sleepMs = pollIntervalMs;
    if (nextRetryAt > now) sleepMs = Math.min(sleepMs, nextRetryAt - now);
    else if (nextRetryAt !== Infinity) nextRetryAt = Infinity;
    const probeAt = circuit.nextProbeAtMs();
    if (probeAt !== undefined) sleepMs = Math.min(sleepMs, probeAt - now);
    await wakeup.sleep(Math.max(MIN_SLEEP_MS, sleepMs));
  }

  const wake = (): void => wakeup.wake();

  function startAttempt(claim: ClaimedJob): void {
    const startAt = Math.max(clock.now(), nextSendAt);
    nextSendAt = startAt + sendInterval;
    const attempt = deliver(claim, startAt)
      .catch((error) => {
        if (!abort.signal.aborted) {
          logger.error("delivery failed", { eventId: claim.job.eventId, error });
        }
      })
      .finally(() => {
        inFlight.delete(attempt);
        if (circuit.state() === "closed" && !wasPaused) startQueued(); // the free slot, at once
        wake(); // and the loop tops the queue up
      });
    inFlight.add(attempt);
  }

  /**
   * Sends one job once and stores what that came to; the request's slot is free as soon as the
   * answer is in, while the result's commit (which the job's lease covers) lands beside the next
   * attempts.
   */
  async function deliver(claim: ClaimedJob, startAt: number): Promise<void> {
    const result = await attemptOnce(claim, startAt);
    if (result === undefined) return;
    const settling = settle(claim, result)
      .catch((error) => logger.error("cannot store a delivery's result", { error }))
      .finally(() => {
        settles.delete(settling);
        wake(); // room to claim
      });
    settles.add(settling);
  }

  /**
   * Sends one job once (after its turn under the rate limit): what the attempt came to, as the
   * job's next state; `undefined` when the job's lease was lost before it was sent.
   */
  async function attemptOnce(
    claim: ClaimedJob,
    startAt: number,
  ): Promise<{ settled: JobOutcome; fields: Record<string, unknown> } | undefined> {
    const { job, event } = claim;
    const waitMs = startAt - clock.now();
    if (waitMs > 0) await clock.sleep(waitMs, abort.signal);
    if (!(await holdsLeaseThroughAttempt(claim))) {
      logger.debug("queued job's lease lost: left to its new holder", { eventId: event.id });
      return;
    }
    const startedAt = clock.now();
    const body = deliveryBody(event, job.createdAt);
    const headers = signer.sign({
      id: webhookId(name, event.id),
      timestamp: Math.floor(startedAt / 1_000),
      body,
    });
    const outcome = await sendOnce({
      url,
      headers,
      body,
      timeoutMs,
      maxRetryAfterMs: retry.maxDelayMs,
      clock,
      signal: abort.signal,
      deadlines,
      post,
    });
    circuit.record(outcome);
    const endedAt = clock.now();
    const tookMs = endedAt - startedAt;
    attemptMs = nextPace(attemptMs, tookMs);
    options.observer?.onAttempt?.({
      destination: name,
      outcome: outcome.kind,
      durationMs: tookMs,
    });
    const attempt = job.attempts + 1;
    const fields = { eventId: event.id, attempt, status: "status" in outcome ? outcome.status : 0 };
    let settled: JobOutcome;
    if (outcome.kind === "delivered") {
      settled = { state: "delivered", startedAt, endedAt };
    } else {
      const isGone = outcome.kind === "gone";
      const isDead = !isGone && attempt >= retry.maxAttempts;
      // A 410 pauses the destination, which is the wait: the job is due again once resumed.
      const delayMs = isGone ? 0 : retryDelayMs(attempt, retry, {
        random,
        retryAfterMs: outcome.kind === "retry" ? outcome.retryAfterMs ?? 0 : 0,
      });
      settled = isDead ? { state: "dead", startedAt, endedAt, error: outcome.reason } : {
        state: "retrying",
        startedAt,
        endedAt,
        error: outcome.reason,
        retryAt: endedAt + delayMs,
      };
      if (isGone) {
        logger.error(
          "destination answered 410 Gone: paused until resumed through the admin API",
          { ...fields, reason: outcome.reason },
        );
        await options.pauses.pause(name, outcome.reason);
        wake();
      } else if (isDead) {
        logger.error("delivery dead after its last attempt", { ...fields, reason: outcome.reason });
      } else {
        logger.warn("delivery failed, will retry", {
          ...fields,
          retryInMs: delayMs,
          reason: outcome.reason,
        });
      }
      if (settled.state === "retrying" && !isGone) {
        nextRetryAt = Math.min(nextRetryAt, endedAt + delayMs);
      }
    }
    return { settled, fields };
  }

  /** Stores an attempt's result, if the job's lease still holds, and tells the observer. */
  async function settle(
    claim: ClaimedJob,
    { settled, fields }: { settled: JobOutcome; fields: Record<string, unknown> },
  ): Promise<void> {
    const isStored = await store.settleJob(claim, settled);
    const { job, event } = claim;
    if (isStored) {
      const lag = settled.state === "delivered" ? { lagMs: settled.endedAt - job.createdAt } : {};
      options.observer?.onSettled?.({ destination: name, state: settled.state, ...lag });
    }
    if (!isStored) {
      logger.warn("delivery result not stored: the job's lease was lost", { eventId: event.id });
    } else if (settled.state === "delivered") {
      logger.debug("delivered", { ...fields, ms: settled.endedAt - settled.startedAt });
    }
  }

  /**
   * Whether the claim's lease lasts through an attempt starting now, extending it when it would
   * not (a job queued behind slow attempts); `false` when it was lost meanwhile.
   */
  async function holdsLeaseThroughAttempt(claim: ClaimedJob): Promise<boolean> {
    const needed = clock.now() + timeoutMs + SETTLE_MARGIN_MS;
    if (claim.lease.until >= needed) return true;
    const until = Math.max(
      clock.now() + timeoutMs + LEASE_MARGIN_MS,
      clock.now() + options.leaseMs,
    );
    return await store.extendJobLease(claim.lease, until);
  }

  return {
    start() {
      if (loop !== undefined) return;
      loop = runLoop().catch((error) => logger.error("delivery loop failed", { error }));
    },
    wake,
    circuit: () => circuit.state(),
    async stop(graceMs) {
      isStopping = true;
      wake();
      await loop;
      const all = Promise.allSettled([...inFlight]);
      const isLate = await within(all.then(() => false), graceMs, { otherwise: true });
      if (isLate) {
        logger.warn("deliveries still in flight at shutdown; aborting them", {
          inFlight: inFlight.size,
        });
        abort.abort(new Error("Shutting down"));
        await all;
      }
      await Promise.allSettled([...settles]); // the answers already in are stored
      client?.close();
    },
  };
}
