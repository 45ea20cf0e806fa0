/**
 * Every Deno KV key the service writes, built by small named functions (never array literals
 * scattered through the code), and the record stored for each event.
 *
 * Layout, per event:
 * - `["events", id]`: the {@linkcode EventRecord}. Its presence is also the dedup mark: intake
 *   commits it only if the key is absent.
 * - `["ready", dueAt, entryId]`: the ready set, ordered by when its events are due. An event
 *   waiting on its own (a retry, a replay) has an entry whose id is the event's and whose value is
 *   that id. The events an intake commit records share one entry with a new random id whose value
 *   lists their ids (their records name it as `readyId`). A lease (a claim, or the events of an
 *   intake commit recorded already leased to its worker) is such an entry too; it sits at the
 *   lease's end, so events whose worker died become due again by themselves.
 * - `["timeline", receivedAt, firstId]`: newest-first listing for the admin API. One entry per
 *   intake commit, listing the ids of the events it recorded (`firstId` is the first of them);
 *   entries written before that hold a single id as a string.
 * - `["dead", id]`: dead letters, for replaying them all.
 * - `["event_parts", id, n]`: the JSON of an event too large for one KV value, in chunks.
 *
 * Per reply a handler sent:
 * - `["replies", handler, inboundWamid]`: the {@linkcode ReplyRecord} of the reply that handler
 *   sent to an inbound message. A handler that finds it sent does not send again, which makes its
 *   reply exactly once across Meta's redeliveries, worker retries and admin replays; one that
 *   finds it `unknown` knows how many sends may have reached the user already.
 *
 * Per outbound message (status tracking, `handlers/status_tracker.ts`):
 * - `["message_status", wamid]`: the furthest status of a message the business sent, applied
 *   monotonically; it expires after the status retention.
 *
 * Operations:
 * - `["health", "probe"]`: a short-lived key `/readyz` writes and reads back to prove Deno KV
 *   answers; it expires by itself.
 *
 * @module
 */
import type { WebhookEvent } from "../events/events.ts";

/** The record of an event: the event, where it is in processing, and its attempts. */
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
  /** The time of this event's `["ready", …]` entry; `null` when it has none (done, dead). */
  dueAt: number | null;
  /**
   * The id of the ready entry it waits in when that entry is shared with the other events of its
   * intake commit (`["ready", dueAt, readyId]`); absent when the entry is its own
   * (`["ready", dueAt, id]`).
   */
  readyId?: string;
  /** When the record (and the dedup mark) expires, ms since the epoch. */
  expiresAt: number;
  /** Names of the handlers that already succeeded: a retry runs only the others. */
  completedHandlers: string[];
  /** The last handler error, as `handler: message`. */
  lastError?: string;
  /** One entry per attempt, oldest first. */
  history: AttemptRecord[];
  /** The event itself, unless it was too large and is stored in `parts` chunks. */
  event?: WebhookEvent;
  /** Number of `["event_parts", id, n]` chunks holding the event's JSON. */
  parts?: number;
}

/**
 * When a record stored now should expire, so that it outlives `untilMs` (for a waiting event, the
 * end of the first lease of its next run): its current `expiresAt` while that leaves at least half
 * of `lifeMs` after `untilMs`, else a whole `lifeMs` after it. Renewing by a whole life, and only
 * when half is left, keeps the rewrites of a large event's parts rare.
 *
 * @param lifeMs how long records live: the longer of the dedup TTL and the retention
 */
export function renewedExpiresAt(expiresAt: number, untilMs: number, lifeMs: number): number {
  return expiresAt - untilMs >= lifeMs / 2 ? expiresAt : untilMs + lifeMs;
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

/** The record of event `id` (and its dedup mark). */
export function eventKey(id: string): Deno.KvKey {
  return ["events", id];
}

/** The ready-set entry `entryId` (an event's id, or a shared entry's random id), due at `dueAt`. */
export function readyKey(dueAt: number, entryId: string): Deno.KvKey {
  return ["ready", dueAt, entryId];
}

/**
 * The key of the ready entry a waiting event is in, from its record: its own entry, or the one it
 * shares with the other events of its intake commit (`readyId`).
 */
export function readyKeyOf(record: EventRecord): Deno.KvKey {
  return readyKey(record.dueAt!, record.readyId ?? record.id);
}

/** The value of a ready entry: one event id, or the ids of the events sharing it. */
export type ReadyEntryValue = string | string[];

/** The event ids an entry of the ready set or the timeline holds: one id, or a list of them. */
export function idsOfEntry(value: unknown): string[] {
  if (typeof value === "string") return [value];
  return Array.isArray(value) ? value.filter((id): id is string => typeof id === "string") : [];
}

/** The value to store for a ready entry of `ids`: one id as a string, several as a list. */
export function readyEntryValue(ids: readonly string[]): ReadyEntryValue {
  return ids.length === 1 ? ids[0]! : [...ids];
}

/** The prefix of the whole ready set. */
export const READY_PREFIX: Deno.KvKey = ["ready"];

/** The timeline entry of the commit whose first event is `firstId`, received at `receivedAt`. */
export function timelineKey(receivedAt: number, firstId: string): Deno.KvKey {
  return ["timeline", receivedAt, firstId];
}

/** The prefix of the whole timeline. */
export const TIMELINE_PREFIX: Deno.KvKey = ["timeline"];

/** The dead-letter entry of event `id`. */
export function deadLetterKey(id: string): Deno.KvKey {
  return ["dead", id];
}

/** The prefix of all dead letters. */
export const DEAD_LETTER_PREFIX: Deno.KvKey = ["dead"];

/** Chunk `n` of the JSON of a large event. */
export function eventPartKey(id: string, n: number): Deno.KvKey {
  return ["event_parts", id, n];
}

/**
 * What a handler keeps about its reply to an inbound message: the reply Meta accepted, or, while
 * no send got an answer, that its outcome is unknown and how many sends that makes.
 */
export type ReplyRecord = SentReplyRecord | UnknownReplyRecord;

/** A reply Meta accepted. Records written before `outcome` existed have none and are this kind. */
export interface SentReplyRecord {
  outcome?: "sent";
  /** The `wamid` Meta gave the reply; its status webhooks refer to it. */
  messageId: string;
  /** The business number the reply was sent from. */
  phoneNumberId: string;
  /**
   * Earlier sends whose outcome stayed unknown (a timeout, a lost connection): the user may have
   * received that many more copies. Absent when there were none.
   */
  unknownSends?: number;
}

/**
 * A reply sent without an answer: written before each send (so that a process that dies during
 * it leaves the count behind) and kept when the send ends without a verdict from Meta.
 */
export interface UnknownReplyRecord {
  outcome: "unknown";
  /** The business number the reply is sent from. */
  phoneNumberId: string;
  /** Sends that may have reached the user, the one in flight included; at least 1. */
  unknownSends: number;
}

/** Whether a reply record says Meta accepted the reply (records without `outcome` did). */
export function isReplySent(record: ReplyRecord): record is SentReplyRecord {
  return record.outcome !== "unknown";
}

/**
 * The {@linkcode ReplyRecord} of the reply that handler `handler` sent to the inbound message
 * `inboundWamid`. Keyed by handler too, so that two handlers may each answer the same message.
 */
export function replyKey(inboundWamid: string, handler: string): Deno.KvKey {
  return ["replies", handler, inboundWamid];
}

/** The tracked status of the outbound message `wamid` (see `handlers/status_tracker.ts`). */
export function messageStatusKey(wamid: string): Deno.KvKey {
  return ["message_status", wamid];
}

/** The key `/readyz` writes and reads back to probe Deno KV. */
export function healthProbeKey(): Deno.KvKey {
  return ["health", "probe"];
}
