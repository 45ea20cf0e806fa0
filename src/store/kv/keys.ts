/**
 * Every Deno KV key the service writes, built by small named functions (never array literals
 * scattered through the code), and the record stored for each event.
 *
 * Layout, per event:
 * - `["events", id]`: the {@linkcode KvEventRecord}. Its presence is also the dedup mark: intake
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
 * - `["dead", receivedAt, id]`: dead letters, newest first by reception, for listing and
 *   replaying them all (versions before 2026-12-04 wrote `["dead", id]`: still read and removed).
 * - `["event_parts", id, n]`: the JSON of an event too large for one KV value, in chunks.
 *
 * Per delivery job (an event to one destination; `job_record.ts`):
 * - `["jobs", destination, eventId]`: the job's record, written the first time the job changes (a
 *   claim, a replay) and expiring with its event. Intake writes no record for a new job: it lists
 *   the job's event id in the due-order entry its commit's events share for that destination, in
 *   the events' commit (their dedup checks cover it); until its record is written the job is
 *   pending, due at that entry's time (`job_records.ts`). The event's record lists the
 *   destinations of its jobs (`jobs`) and names the shared entry (`jobsEntry`), so an event's jobs
 *   are read without a scan.
 * - `["job_ready", destination, dueAt, id]`: a destination's due order. An entry of a job with a
 *   record has the event id as `id` and as its value; a commit's shared entry of pending jobs has a
 *   new random `id` and lists their event ids (an older intake's entry of one pending job has the
 *   event id and `job_records.ts`'s marker). Every waiting job (pending, retrying, or leased: a
 *   claim writes the job's record and moves it to an entry of its own at the lease's end, so jobs
 *   whose deliverer died become due again by themselves) is in exactly one entry, at its record's
 *   `dueAt` (its shared entry's time while it has no record): whatever moves a job writes its
 *   record, so checking the record's versionstamp (or, for a job without one, the entry's) guards
 *   both.
 * - `["job_dead", destination, eventId]`: a destination's dead jobs, for replaying them all.
 *
 * - `["destination_pause", destination]`: a destination paused at run time (`DestinationPause`),
 *   until an operator resumes it; never expires.
 *
 * Per reply a handler sent:
 * - `["replies", handler, inboundWamid]`: the reply record (`reply_record.ts`) that handler
 *   sent to an inbound message. A handler that finds it sent does not send again, which makes its
 *   reply exactly once across Meta's redeliveries, worker retries and admin replays; one that
 *   finds it `unknown` knows how many sends may have reached the user already.
 *
 * Per outbound message (`message_status.ts`):
 * - `["message_status", wamid]`: the furthest status of a message the business sent, applied
 *   monotonically; it expires after the status retention.
 *
 * Per conversation (`conversation_window.ts`):
 * - `["windows", businessPhoneNumberId, user]`: when the customer-service window of that business
 *   number and user (BSUID or phone number) closes, moved forward only; it expires a week after
 *   the window closed.
 *
 * Operations:
 * - `["health", "probe"]`: a short-lived key `/readyz` writes and reads back to prove Deno KV
 *   answers; it expires by itself.
 *
 * @module
 */
import type { WebhookEvent } from "../../events/events.ts";
import type { EventRecord } from "../event_record.ts";

/**
 * The record as Deno KV stores it: the domain record, the event inline or the number of its
 * parts, and the shared ready entry it waits in.
 */
export interface KvEventRecord extends EventRecord {
  /**
   * The id of the ready entry it waits in when that entry is shared with the other events of its
   * intake commit (`["ready", dueAt, readyId]`); absent when the entry is its own
   * (`["ready", dueAt, id]`).
   */
  readyId?: string;
  /** The event itself, unless it was too large and is stored in `parts` chunks. */
  event?: WebhookEvent;
  /** Number of `["event_parts", id, n]` chunks holding the event's JSON. */
  parts?: number;
  /** The destinations of its delivery jobs (`["jobs", destination, id]`); absent for none. */
  jobs?: string[];
  /**
   * The due-order entry its pending jobs share with the other events of its intake commit, in
   * each of their destinations' order (`["job_ready", destination, dueAt, id]`); absent when it
   * has no jobs, or an older intake wrote each of its jobs an entry of its own.
   */
  jobsEntry?: { dueAt: number; id: string };
}

/** The domain record of a stored one: without the fields of KV's format. */
export function domainRecord(stored: KvEventRecord): EventRecord {
  const {
    readyId: _entry,
    event: _event,
    parts: _parts,
    jobs: _jobs,
    jobsEntry: _jobsEntry,
    ...record
  } = stored;
  return record;
}

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
export function readyKeyOf(record: KvEventRecord): Deno.KvKey {
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

/** The dead-letter entry of event `id`, received at `receivedAt`. */
export function deadLetterKey(receivedAt: number, id: string): Deno.KvKey {
  return ["dead", receivedAt, id];
}

/**
 * The dead letter of event `id` as versions before 2026-12-04 wrote it (no reception time): still
 * removed and replayed, never written.
 */
export function legacyDeadLetterKey(id: string): Deno.KvKey {
  return ["dead", id];
}

/** The prefix of all dead letters. */
export const DEAD_LETTER_PREFIX: Deno.KvKey = ["dead"];

/** Chunk `n` of the JSON of a large event. */
export function eventPartKey(id: string, n: number): Deno.KvKey {
  return ["event_parts", id, n];
}

/** The delivery job of event `eventId` to `destination`. */
export function jobKey(destination: string, eventId: string): Deno.KvKey {
  return ["jobs", destination, eventId];
}

/**
 * The due-order entry `id` of `destination`, due (or leased) until `dueAt`: a job's own (`id` is
 * its event's) or an intake commit's shared one (`id` is new).
 */
export function jobReadyKey(destination: string, dueAt: number, id: string): Deno.KvKey {
  return ["job_ready", destination, dueAt, id];
}

/** The prefix of `destination`'s due order. */
export function jobReadyPrefix(destination: string): Deno.KvKey {
  return ["job_ready", destination];
}

/** The dead-letter entry of event `eventId`'s job to `destination`. */
export function jobDeadKey(destination: string, eventId: string): Deno.KvKey {
  return ["job_dead", destination, eventId];
}

/** The prefix of `destination`'s dead jobs. */
export function jobDeadPrefix(destination: string): Deno.KvKey {
  return ["job_dead", destination];
}

/** The run-time pause of `destination`. */
export function destinationPauseKey(destination: string): Deno.KvKey {
  return ["destination_pause", destination];
}

/** The prefix of every destination's run-time pause. */
export const DESTINATION_PAUSE_PREFIX: Deno.KvKey = ["destination_pause"];

/**
 * The reply record (`reply_record.ts`) of the reply that handler `handler` sent to the inbound message
 * `inboundWamid`. Keyed by handler too, so that two handlers may each answer the same message.
 */
export function replyKey(inboundWamid: string, handler: string): Deno.KvKey {
  return ["replies", handler, inboundWamid];
}

/** The tracked status of the outbound message `wamid` (`message_status.ts`). */
export function messageStatusKey(wamid: string): Deno.KvKey {
  return ["message_status", wamid];
}

/** The customer-service window of `user` (BSUID or phone number) on business number `business`. */
export function windowKey(business: string, user: string): Deno.KvKey {
  return ["windows", business, user];
}

/** The key the readiness probe writes and reads back. */
export function healthProbeKey(): Deno.KvKey {
  return ["health", "probe"];
}
