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
import type { OpenWindowOptions, WindowOf, WindowRecord } from "./conversation_window.ts";

export type { AttemptRecord, EventRecord, EventState } from "./event_record.ts";
export { EVENT_STATES } from "./event_record.ts";
export type { JobOutcome, JobRecord, JobState } from "./job_record.ts";
export { JOB_STATES } from "./job_record.ts";
export type { MessageStatusRecord, TrackedStatus } from "./message_status.ts";
export type { ReplyRecord, SentReplyRecord, UnknownReplyRecord } from "./reply_record.ts";
export type { OpenWindowOptions, WindowOf, WindowRecord } from "./conversation_window.ts";

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

  /**
   * A page of events, newest first, filtered by state, kind, time of reception, what the event
   * says (field, type, business number, party) and its jobs' states; every filter set must hold.
   */
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

  /**
   * Opens or extends the customer-service window of `of` (business number and user) until
   * `options.closesAt`, if that is later than its stored close (see `conversation_window.ts`):
   * never moved backwards, atomically against concurrent writers (racing openings keep the
   * latest close). Returns whether it changed. The record lives until `closesAt` plus
   * `WINDOW_KEPT_AFTER_CLOSE_MS` (counted from `options.now`); a window already past that is not
   * written (`false`), nor one whose ids a store cannot key (over 256 characters, or empty).
   */
  openWindow(of: WindowOf, options: OpenWindowOptions): Promise<boolean>;

  /**
   * The stored window of `of`; `null` when none was opened or it is no longer kept. Its
   * `closesAt` may be past: whether it is open is the caller's comparison with its clock.
   */
  getWindow(of: WindowOf): Promise<WindowRecord | null>;

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
   * Replays `destination`'s jobs that match `options` (see {@linkcode replayJob}), walking its
   * jobs newest first by their event's reception: at most `limit` matches per call, with a cursor
   * when more may follow. With `dryRun` it only counts the matches. Jobs a deliverer's lease holds
   * are counted `busy` and left alone.
   */
  replayJobs(destination: string, options: ReplayJobsOptions): Promise<JobsReplayed>;

  // --- Destinations paused at run time (by an operator, or by a 410 Gone) ---------------------

  /**
   * Pauses `pause.destination` until {@linkcode Store.resumeDestination}: its deliverers, in every
   * process, claim nothing meanwhile. Pausing a paused destination keeps its first pause.
   */
  pauseDestination(pause: DestinationPause): Promise<void>;

  /** Lifts `destination`'s pause; returns whether it was paused. */
  resumeDestination(destination: string): Promise<boolean>;

  /** Every destination paused now, with why and since when. */
  listPausedDestinations(): Promise<DestinationPause[]>;

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

/** Options for {@linkcode Store.replayJobs}: which jobs, and how much work per call. */
export interface ReplayJobsOptions {
  /** The time of the replay: replayed jobs are due then. */
  now: number;
  /** Only jobs in this state. */
  state?: JobState;
  /** Only jobs of events of this kind. */
  kind?: WebhookEvent["kind"];
  /** Only jobs of events received at or after this time, ms since the epoch. */
  receivedFrom?: number;
  /** Only jobs of events received at or before this time, ms since the epoch. */
  receivedTo?: number;
  /** Most matching jobs handled per call (at least 1). */
  limit: number;
  /** Where to resume: the `cursor` of the previous call. */
  cursor?: string;
  /** Count the matching jobs without replaying them. */
  dryRun?: boolean;
}

/** What {@linkcode Store.replayJobs} did. */
export interface JobsReplayed {
  /** Jobs that matched in this call. */
  matched: number;
  /** Of those, the jobs replayed (none with `dryRun`). */
  replayed: number;
  /** Of those, the jobs a deliverer's lease held, left alone. */
  busy: number;
  /** Present when more jobs may match: pass it back to continue. */
  cursor?: string;
}

/** A destination paused at run time. */
export interface DestinationPause {
  destination: string;
  /** Why, in words for the operator (`"paused by an operator"`, the 410's reason). */
  reason: string;
  /** Since when, ms since the epoch. */
  since: number;
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
  /** Only events received at or after this time, ms since the epoch. */
  receivedFrom?: number;
  /** Only events received at or before this time, ms since the epoch. */
  receivedTo?: number;
  /**
   * Only events whose webhook field is this: a change's field (an unknown one's as Meta sent
   * it), an echo's field. Exact match, like the three below (`store/event_filter.ts` decides).
   */
  field?: string;
  /** Only events of this type: a message's or echo's `type`, a status's value (`read`). */
  type?: string;
  /** Only events of this business number (`phone_number_id`). */
  businessNumber?: string;
  /** Only events with this other party: a message's sender, a status's or echo's recipient. */
  party?: string;
  /** Only events with at least one delivery job (to any destination) in this state. */
  jobState?: JobState;
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
