/**
 * The record every store keeps per delivery job (one event to one destination), and the pure rules
 * over it that every store shares: a new job, what a delivery attempt's outcome makes of it, and
 * what a replay makes of it.
 *
 * @module
 */
import { type AttemptRecord, withAttempt } from "./event_record.ts";

/** The record of one event's delivery to one destination. */
export interface JobRecord {
  /** The event delivered. */
  eventId: string;
  /** The destination's declared name. */
  destination: string;
  state: JobState;
  /** Delivery attempts since intake or the last replay: the retry schedule's count. */
  attempts: number;
  /** Attempts before the last replay: with `attempts`, every attempt the job has had. */
  replayedAttempts?: number;
  /**
   * When it is due (again); while `delivering`, when its lease ends; `null` once delivered or
   * dead.
   */
  dueAt: number | null;
  /** When intake recorded it (the event's reception), ms since the epoch. */
  createdAt: number;
  /** When the record expires: the event record's expiry at intake, ms since the epoch. */
  expiresAt: number;
  /** The error of the last failed attempt; absent once one succeeded and before any failed. */
  lastError?: string;
  /** One entry per attempt, oldest first, the last `MAX_HISTORY` kept. */
  history: AttemptRecord[];
}

/**
 * Where a job is: waiting, leased to a deliverer, delivered, waiting for a retry, or given up on
 * (a dead letter of its destination).
 */
export type JobState = "pending" | "delivering" | "delivered" | "retrying" | "dead";

/** Every {@linkcode JobState}, for validating query parameters. */
export const JOB_STATES: readonly JobState[] = [
  "pending",
  "delivering",
  "delivered",
  "retrying",
  "dead",
];

/** What one delivery attempt came to, for `Store.settleJob`. */
export interface JobOutcome {
  state: "delivered" | "retrying" | "dead";
  /** When the attempt started, ms since the epoch. */
  startedAt: number;
  /** When it ended: the time of settling. */
  endedAt: number;
  /** Why it failed; absent when it was delivered. */
  error?: string;
  /** When a retry is due (`retrying` only; the end of the attempt when absent). */
  retryAt?: number;
}

/** The job of event `eventId` to `destination`, created at `now`, due then, expiring with it. */
export function newJob(
  eventId: string,
  destination: string,
  { now, expiresAt }: { now: number; expiresAt: number },
): JobRecord {
  return {
    eventId,
    destination,
    state: "pending",
    attempts: 0,
    dueAt: now,
    createdAt: now,
    expiresAt,
    history: [],
  };
}

/** The job leased until `until`: `delivering`, due again when the lease ends. */
export function leasedJob(job: JobRecord, until: number): JobRecord {
  return { ...job, state: "delivering", dueAt: until };
}

/**
 * The job after an attempt: one more attempt in its count and history (the last
 * `MAX_HISTORY` kept) and the state the outcome says; the last error is this attempt's,
 * so a delivery clears an earlier one.
 */
export function settledJob(job: JobRecord, outcome: JobOutcome): JobRecord {
  const { lastError: _earlier, ...rest } = job;
  const history = withAttempt(job.history, outcome);
  const next: JobRecord = {
    ...rest,
    state: outcome.state,
    attempts: job.attempts + 1,
    history,
    dueAt: outcome.state === "retrying" ? outcome.retryAt ?? outcome.endedAt : null,
  };
  if (outcome.error !== undefined && outcome.state !== "delivered") next.lastError = outcome.error;
  return next;
}

/**
 * The job after a replay: pending, due at `now`, with a fresh retry schedule (`attempts` restarts
 * at 0, the attempts so far move to `replayedAttempts`); `history`, `lastError` and the expiry are
 * kept.
 */
export function replayedJob(job: JobRecord, now: number): JobRecord {
  return {
    ...job,
    state: "pending",
    dueAt: now,
    attempts: 0,
    replayedAttempts: totalJobAttempts(job),
  };
}

/** Every attempt of the job: those before its last replay and those since. */
export function totalJobAttempts(job: JobRecord): number {
  return (job.replayedAttempts ?? 0) + job.attempts;
}

/** Whether the job waits in its destination's due order: pending, retrying, or leased. */
export function isWaitingJob(job: JobRecord): boolean {
  return job.dueAt !== null &&
    (job.state === "pending" || job.state === "retrying" || job.state === "delivering");
}
