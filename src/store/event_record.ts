/**
 * The record every store keeps per event, and the pure rules over it that every store shares:
 * what a run's outcome makes of a record, what a replay makes of it, and how long it lives.
 *
 * @module
 */
import type { WebhookEvent } from "../events/events.ts";
import type { EventSummary, RunOutcome } from "./store.ts";

/** The record of an event: where it is in processing, and its attempts. */
export interface EventRecord {
  id: string;
  kind: WebhookEvent["kind"];
  state: EventState;
  /**
   * Handler runs since intake or the last replay (each run of the event's handlers counts once):
   * the retry schedule's count.
   */
  attempts: number;
  /** Runs before the last replay: with `attempts`, every run the event has had. */
  replayedAttempts?: number;
  /** When intake recorded it, ms since the epoch. */
  receivedAt: number;
  /** When it is due to run (again); `null` once it is done or dead. */
  dueAt: number | null;
  /** When the record (and the dedup mark) expires, ms since the epoch. */
  expiresAt: number;
  /** Names of the handlers that already succeeded: a retry runs only the others. */
  completedHandlers: string[];
  /** The last handler error, as `handler: message`. */
  lastError?: string;
  /** One entry per attempt, oldest first. */
  history: AttemptRecord[];
}

/** One run of an event's handlers. */
export interface AttemptRecord {
  /** When it started, ms since the epoch. */
  at: number;
  /** How long it ran. */
  ms: number;
  /** Why it failed; absent when it succeeded. */
  error?: string;
}

/** Where an event is: waiting, being handled, done, waiting for a retry, or given up on. */
export type EventState = "pending" | "processing" | "done" | "retrying" | "dead";

/** Every {@linkcode EventState}, for validating query parameters. */
export const EVENT_STATES: readonly EventState[] = [
  "pending",
  "processing",
  "done",
  "retrying",
  "dead",
];

/** The kind of a {@linkcode WebhookEvent}. */
export type EventKind = WebhookEvent["kind"];

/** Every kind once; `satisfies` makes the compiler flag a kind added to the union but not here. */
const _KINDS = {
  message: true,
  status: true,
  echo: true,
  change: true,
  unknown: true,
} satisfies Record<
  EventKind,
  true
>;

/** Every {@linkcode EventKind}, for validating query parameters. */
export const EVENT_KINDS: readonly EventKind[] = Object.keys(_KINDS) as EventKind[];

/** Attempts kept in a record's history, to bound its size. */
export const MAX_HISTORY = 20;

/** How long records and dedup marks live. */
export interface RetentionOptions {
  /** How long an event id is remembered, so Meta's retries are skipped. */
  dedupTtlMs: number;
  /** How long event records are kept for the admin API. */
  retentionMs: number;
}

/**
 * How long a record lives from its due time: the longer of the dedup TTL and the retention, since
 * the record is the dedup mark.
 */
export function recordLifeMs(retention: RetentionOptions): number {
  return Math.max(retention.dedupTtlMs, retention.retentionMs);
}

/** The record of an event received at `now`, due then, living `lifeMs`. */
export function newRecord(event: WebhookEvent, now: number, lifeMs: number): EventRecord {
  return {
    id: event.id,
    kind: event.kind,
    state: "pending",
    attempts: 0,
    receivedAt: now,
    dueAt: now,
    expiresAt: now + lifeMs,
    completedHandlers: [],
    history: [],
  };
}

/**
 * `history` with one more attempt, from its start and end and its error if it failed; the last
 * {@linkcode MAX_HISTORY} kept. Events' runs and delivery jobs' attempts keep it alike.
 */
export function withAttempt(
  history: readonly AttemptRecord[],
  attempt: { startedAt: number; endedAt: number; error?: string },
): AttemptRecord[] {
  return [...history, {
    at: attempt.startedAt,
    ms: attempt.endedAt - attempt.startedAt,
    ...(attempt.error === undefined ? {} : { error: attempt.error }),
  }].slice(-MAX_HISTORY);
}

/**
 * The record after a run: one more attempt in its count and history (the last
 * {@linkcode MAX_HISTORY} kept), the handlers done so far, and the state the outcome says. The
 * last error is this run's: a run that succeeds clears an earlier one. Its expiry is unchanged
 * (see {@linkcode renewedExpiresAt}); fields a store keeps beside the domain's are kept.
 */
export function settledRecord<R extends EventRecord>(record: R, outcome: RunOutcome): R {
  const { lastError: _earlier, ...rest } = record;
  const history = withAttempt(record.history, outcome);
  const next = {
    ...rest,
    state: outcome.state,
    attempts: record.attempts + 1,
    completedHandlers: [...outcome.completedHandlers],
    history,
    dueAt: outcome.state === "retrying" ? outcome.retryAt ?? outcome.endedAt : null,
  } as R;
  if (outcome.error !== undefined && outcome.state !== "done") next.lastError = outcome.error;
  return next;
}

/**
 * The record after a replay: pending, due at `now`, no handler counted as done, a fresh retry
 * schedule (`attempts` restarts at 0, the runs so far move to `replayedAttempts`); `history`,
 * `lastError` and the expiry are kept.
 */
export function replayedRecord(record: EventRecord, now: number): EventRecord {
  return {
    ...record,
    state: "pending",
    dueAt: now,
    attempts: 0,
    replayedAttempts: totalAttempts(record),
    completedHandlers: [],
  };
}

/**
 * When a record stored now should expire, so that it outlives `untilMs` (for a waiting event, the
 * end of the first lease of its next run): its current `expiresAt` while that leaves at least half
 * of `lifeMs` after `untilMs`, else a whole `lifeMs` after it. Renewing by a whole life, and only
 * when half is left, keeps the rewrites of a large event rare.
 *
 * @param lifeMs how long records live: the longer of the dedup TTL and the retention
 */
export function renewedExpiresAt(expiresAt: number, untilMs: number, lifeMs: number): number {
  return expiresAt - untilMs >= lifeMs / 2 ? expiresAt : untilMs + lifeMs;
}

/** Every run of the event's handlers: those before its last replay and those since. */
export function totalAttempts(record: EventRecord): number {
  return (record.replayedAttempts ?? 0) + record.attempts;
}

/**
 * The error of the event's last failed run, or `undefined` once a run succeeded: the worker clears
 * it then, but records stored by earlier versions kept it.
 */
export function currentError(record: EventRecord): string | undefined {
  return record.state === "done" ? undefined : record.lastError;
}

/**
 * A record as one line of the event log, the same in every store: every run counted (replayed ones
 * included), the reception as an ISO string, the last error while it stands.
 */
export function eventSummary(record: EventRecord): EventSummary {
  const summary: EventSummary = {
    id: record.id,
    kind: record.kind,
    state: record.state,
    attempts: totalAttempts(record),
    receivedAt: new Date(record.receivedAt).toISOString(),
  };
  const lastError = currentError(record);
  if (lastError !== undefined) summary.lastError = lastError;
  return summary;
}
