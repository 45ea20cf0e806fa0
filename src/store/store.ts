/**
 * The `Store` interface: everything the pipeline keeps, in words of the domain. Intake records
 * events (deduplicated), the worker claims due ones under a lease and settles each run, the admin
 * API lists and replays them, handlers keep reply records and message statuses, and operations
 * read queue figures and probe readiness.
 *
 * Nothing here names a key, a row, a versionstamp or an entry format: a caller never learns which
 * store it has. Each implementation lives in a folder of its own (`kv/`, `pg/`) and passes the one
 * contract suite (`tests/store_contract.ts`) unchanged; `pg/` is the PostgreSQL one.
 *
 * @module
 */
import type { WebhookEvent } from "../events/events.ts";
import type { EventRecord, EventState } from "./event_record.ts";
import type { JobOutcome, JobRecord, JobState } from "./job_record.ts";
import type { MessageStatusRecord } from "./message_status.ts";
import type { ReplyRecord } from "./reply_record.ts";

export type { AttemptRecord, EventRecord, EventState } from "./event_record.ts";
export { EVENT_STATES } from "./event_record.ts";
export type { JobOutcome, JobRecord, JobState } from "./job_record.ts";
export { JOB_STATES } from "./job_record.ts";
export type { MessageStatusRecord, TrackedStatus } from "./message_status.ts";
export type { ReplyRecord, SentReplyRecord, UnknownReplyRecord } from "./reply_record.ts";

/** Where events live, and the other records of the service. */
export interface Store {
  /** A name for log lines and readiness reasons (`"Deno KV"`). */
  readonly name: string;

  /**
   * Records new events, each with its dedup mark, atomically per group of events committed
   * together; resolves once every event is recorded or known as a duplicate (never an error). With
   * `lease`, the first `lease.count` events (if new) are recorded already leased to the caller until
   * `lease.until` and returned in `leased`, to run without being claimed; the others are due now.
   * An id is remembered until its record is purged ({@linkcode Store.purgeExpired}) or the store
   * expires it by itself. Throws when the store fails: events already recorded stay recorded and
   * deduplicate later.
   */
  recordEvents(events: readonly WebhookEvent[], options: RecordOptions): Promise<RecordOutcome>;

  /**
   * Claims due events (pending or retrying, due by `now`), oldest due first, at most `limit` and
   * no more than `room()` says once the due ones are found: each is leased to the caller until
   * `leaseUntil`, and no other caller can claim it while the lease lasts. Events that `isRunning`
   * are left alone: their lease is the caller's own.
   */
  claimDue(options: ClaimOptions): Promise<ClaimedEvent[]>;

  /**
   * Extends a lease to `until`. Resolves `false` when the lease was lost (another caller claimed
   * its events after it ran out): every run holding it must stop.
   */
  extendLease(lease: Lease, until: number): Promise<boolean>;

  /**
   * Stores what a run came to, if the claim's lease is still held: the event is done, waits for a
   * retry at `retryAt`, or is dead (a dead letter). Resolves `false`, storing nothing, when the
   * lease was lost.
   */
  settle(claim: ClaimedEvent, outcome: RunOutcome): Promise<boolean>;

  /**
   * Makes due at `now` the waiting events due later than `latestDueAt` (versions without capped
   * delays parked some at `Infinity`); returns how many, at most `limit`.
   */
  bringForward(options: { now: number; latestDueAt: number; limit: number }): Promise<number>;

  /** Event `id`'s record and the event itself; `null` when unknown or expired. */
  getEvent(id: string): Promise<StoredEvent | null>;

  /** A page of events, newest first, filtered by state and kind. */
  listEvents(options: ListEventsOptions): Promise<EventPage>;

  /**
   * Puts event `id` back to pending, due at `now`, so every handler runs again with a fresh retry
   * schedule; `busy` while a worker holds its lease.
   */
  replayEvent(id: string, now: number): Promise<ReplayResult>;

  /** Replays every dead letter; returns how many were replayed. */
  replayDeadLetters(now: number): Promise<number>;

  /**
   * Applies a message's status if it moves the message further (`sent < delivered < read <
   * played`, `failed` terminal; see `message_status.ts`), atomically against concurrent writers.
   * Returns whether it changed; the record lives `retentionMs` after its last change.
   */
  advanceMessageStatus(next: MessageStatusRecord, retentionMs: number): Promise<boolean>;

  /** The furthest status of message `wamid`; `null` when never seen or expired. */
  getMessageStatus(wamid: string): Promise<MessageStatusRecord | null>;

  /** The reply record handler `of.handler` keeps for inbound message `of.inboundId`. */
  getReply(of: ReplyOf): Promise<ReplyRecord | null>;

  /**
   * Replaces a reply record only if it is still `expected` (compared by value; `null` for
   * absent): `next` is stored to live `ttlMs`, or the record removed when `next` is `null`.
   * Returns whether it was replaced: two runs racing for one reply never both win.
   */
  swapReply(
    of: ReplyOf,
    expected: ReplyRecord | null,
    next: ReplyRecord | null,
    ttlMs: number,
  ): Promise<boolean>;

  /**
   * The queue at `now`, reading at most `limit` waiting groups in due order: events due, events
   * due later (leases and retries), the age of the oldest due one and when the next is due.
   */
  queueFigures(now: number, limit: number): Promise<QueueFigures>;

  /** Writes and reads back a short-lived probe; throws with the reason when the store fails. */
  probe(now: number): Promise<void>;

  /**
   * Removes the events whose records expired by `now` (and what they leave behind), at most
   * `limit` of them; returns how many. Expiry itself already hides them from every read.
   */
  purgeExpired(now: number, limit: number): Promise<number>;

  // --- Delivery jobs: one per event and destination, written by recordEvents ------------------

  /**
   * Claims `destination`'s due jobs (pending, retrying, or leased with the lease run out), oldest
   * due first, at most `limit`: each is `delivering`, leased to the caller until `leaseUntil`, and
   * no other caller can claim it while the lease lasts. Each comes with its event read back whole.
   */
  claimJobs(destination: string, options: ClaimJobsOptions): Promise<ClaimedJob[]>;

  /**
   * Extends a job's lease to `until`. Resolves `false` when the lease was lost (the job was
   * claimed again after the lease ran out, or replayed): the delivery holding it must stop.
   */
  extendJobLease(lease: Lease, until: number): Promise<boolean>;

  /**
   * Stores what a delivery attempt came to, if the claim's lease still holds: the job is delivered,
   * waits for a retry at `retryAt`, or is dead (a dead letter of its destination). Resolves
   * `false`, storing nothing, when the lease was lost; a claim settles once.
   */
  settleJob(claim: ClaimedJob, outcome: JobOutcome): Promise<boolean>;

  /** Every delivery job of event `eventId`, one per destination; none when unknown or expired. */
  getJobs(eventId: string): Promise<JobRecord[]>;

  /**
   * A page of `destination`'s jobs, newest first (by their event's reception), filtered by state,
   * with a cursor that neither repeats nor skips.
   */
  listJobs(destination: string, options: ListJobsOptions): Promise<JobPage>;

  /**
   * Puts the job of event `eventId` to `destination` back to pending, due at `now`, with a fresh
   * retry schedule; `busy` while a deliverer's lease on it lasts (delivering it again now could
   * deliver it twice at once).
   */
  replayJob(destination: string, eventId: string, now: number): Promise<JobReplayResult>;

  /** Replays every dead job of `destination`; returns how many were replayed. */
  replayDeadJobs(destination: string, now: number): Promise<number>;

  /**
   * `destination`'s waiting jobs at `now`, reading at most `limit` of them in due order: how many
   * are due, how many due later (leased, or waiting for a retry), the oldest due one's age.
   */
  jobFigures(destination: string, options: { now: number; limit: number }): Promise<JobFigures>;

  /**
   * Calls `callback` whenever another instance sharing the store may have made work due (new
   * events or delivery jobs, a replay), so the worker and the deliverers look at once rather than
   * at their next poll; returns its removal. Absent for a store only one instance uses.
   */
  onDue?(callback: () => void): () => void;

  /** Lets go of the store; nothing may be called after. */
  close(): void;
}

/** How a store is set up, whatever its kind. */
export interface StoreOptions {
  /** How long an event id is remembered, so Meta's retries are skipped. */
  dedupTtlMs: number;
  /** How long event records are kept for the admin API. */
  retentionMs: number;
  /**
   * The longest lease a worker takes: a waiting record is kept until at least this long after it
   * is due, so it outlives the first lease of its next run.
   */
  leaseMs: number;
}

/** Options for {@linkcode Store.recordEvents}. */
export interface RecordOptions {
  /** The time of recording, ms since the epoch. */
  now: number;
  /** Records the first `count` events (those that are new) leased to the caller until `until`. */
  lease?: { count: number; until: number };
  /**
   * The names of the destinations each event goes to: every event recorded now gets one delivery
   * job per name, due at `now`, written in the same atomic commit as its record (a duplicate gets
   * none). Absent: no jobs, and no work spent on them.
   */
  destinationsFor?: (event: WebhookEvent) => readonly string[];
}

/** Which events were recorded now and which had been recorded before. */
export interface RecordOutcome {
  recorded: string[];
  duplicates: string[];
  /** The recorded events written already leased to the caller. */
  leased: ClaimedEvent[];
}

/**
 * A lease on claimed events: the events claimed together share one, which the store updates as
 * it is extended and as their results are stored. Opaque but for its end.
 */
export interface Lease {
  /** When the lease ends, ms since the epoch. */
  readonly until: number;
}

/** An event leased to the caller: its record as claimed, the event, and the lease. */
export interface ClaimedEvent {
  record: EventRecord;
  event: WebhookEvent;
  lease: Lease;
}

/** Options for {@linkcode Store.claimDue}. */
export interface ClaimOptions {
  now: number;
  /** Events claimed at most. */
  limit: number;
  /** When the claims' lease ends. */
  leaseUntil: number;
  /** Events the caller already runs; their groups are skipped. */
  isRunning?: (id: string) => boolean;
  /** Room left for claims once the due events are found (slots taken meanwhile). */
  room?: () => number;
}

/** Options for {@linkcode Store.claimJobs}. */
export interface ClaimJobsOptions {
  now: number;
  /** Jobs claimed at most. */
  limit: number;
  /** When the claims' leases end. */
  leaseUntil: number;
}

/** A delivery job leased to the caller: its record as claimed, the event, and the lease. */
export interface ClaimedJob {
  job: JobRecord;
  event: WebhookEvent;
  lease: Lease;
}

/** Options for {@linkcode Store.listJobs}. */
export interface ListJobsOptions {
  /** Only jobs in this state. */
  state?: JobState;
  /** Most jobs returned (at least 1). */
  limit: number;
  /** Where to resume: the `cursor` of the previous page. */
  cursor?: string;
}

/** A page of a destination's jobs. */
export interface JobPage {
  /** Newest first. */
  jobs: JobRecord[];
  /**
   * Present when another matching job follows this page: pass it back to continue. A store may
   * also end a page early with a cursor to bound one call's work.
   */
  cursor?: string;
}

/**
 * What {@linkcode Store.replayJob} did: `replayed` (the job as now stored), `not_found` (unknown
 * or expired), or `busy` (a deliverer's lease on it lasts).
 */
export type JobReplayResult =
  | { status: "replayed"; job: JobRecord }
  | { status: "not_found" }
  | { status: "busy" };

/** A destination's waiting jobs as one reading sees them. */
export interface JobFigures {
  /** Jobs due by now: the backlog. */
  due: number;
  /** Jobs due later: leased ones and scheduled retries. */
  later: number;
  /** How long the oldest due job has waited, in ms; 0 when none is due. */
  oldestDueAgeMs: number;
}

/** What one run of an event's handlers came to, for {@linkcode Store.settle}. */
export interface RunOutcome {
  state: "done" | "retrying" | "dead";
  /** When the run started, ms since the epoch. */
  startedAt: number;
  /** When it ended: the time of settling. */
  endedAt: number;
  /** Every handler that has succeeded so far, this run's included. */
  completedHandlers: string[];
  /** This run's failures, as `handler: message; …`; absent when it succeeded. */
  error?: string;
  /** When a retry is due (`retrying` only). */
  retryAt?: number;
}

/** An event's record and the event read back whole. */
export interface StoredEvent {
  record: EventRecord;
  event: WebhookEvent;
}

/** Options for {@linkcode Store.listEvents}. */
export interface ListEventsOptions {
  /** Only events in this state. */
  state?: EventState;
  /** Only events of this kind. */
  kind?: WebhookEvent["kind"];
  /** Most events returned (at least 1). */
  limit: number;
  /** Where to resume: the `cursor` of the previous page. */
  cursor?: string;
}

/** One line of the event log. */
export interface EventSummary {
  id: string;
  kind: WebhookEvent["kind"];
  state: EventState;
  /** Every run of its handlers so far, replayed ones included. */
  attempts: number;
  /** When intake recorded the event, as an ISO 8601 string (UTC). */
  receivedAt: string;
  /** The error of its last failed run; absent once a run has succeeded and before any failed. */
  lastError?: string;
}

/** A page of the event log. */
export interface EventPage {
  /** Newest first. */
  events: EventSummary[];
  /**
   * Present when another matching event follows this page: pass it back to continue. A store
   * may also end a page early with a cursor to bound one call's work.
   */
  cursor?: string;
}

/** Raised for a cursor that {@linkcode Store.listEvents} did not produce. */
export class InvalidCursorError extends Error {
  override name = "InvalidCursorError";
}

/**
 * What {@linkcode Store.replayEvent} did: `replayed` (the record as now stored), `not_found`
 * (unknown or expired), or `busy` (a worker holds its lease; replaying now could run a handler
 * twice).
 */
export type ReplayResult =
  | { status: "replayed"; record: EventRecord }
  | { status: "not_found" }
  | { status: "busy" };

/** Which reply record: the handler that replies and the inbound message it answers. */
export interface ReplyOf {
  handler: string;
  /** The inbound message's `wamid`. */
  inboundId: string;
}

/** The queue as one reading sees it. */
export interface QueueFigures {
  /** Events due by now: the backlog. */
  due: number;
  /** Events due later: leases of running events and scheduled retries. */
  later: number;
  /** How long the oldest due event has waited, in ms; 0 when none is due. */
  oldestDueAgeMs: number;
  /** When the next waiting event is due, ms since the epoch; absent when none waits. */
  nextDueAt?: number;
}
