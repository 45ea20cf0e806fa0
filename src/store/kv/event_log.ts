/**
 * The event log: listing recorded events newest first, reading one back whole, and replaying
 * events (one, or every dead letter) so the worker runs all their handlers again.
 *
 * Listing walks the `["timeline", receivedAt, firstId]` index in reverse (each entry lists the
 * events of one intake commit) and reads the records beside it, so a page costs one list and a
 * `getMany` per ten events. Events whose record has expired are skipped. A page has a cursor
 * exactly when another matching event follows it (within one call's scan budget).
 *
 * @module
 */
import { eventSummary, replayedRecord } from "../event_record.ts";
import {
  type EventPage,
  InvalidCursorError,
  type ListEventsOptions,
  type ReplayResult,
  type StoredEvent,
} from "../store.ts";
import { commitWithRetry } from "./commit.ts";
import { GET_MANY_MAX_KEYS } from "./get_many.ts";
import { matchesFacts, needsEvent } from "../event_filter.ts";
import type { JobState } from "../job_record.ts";
import {
  DEAD_LETTER_PREFIX,
  deadLetterKey,
  domainRecord,
  eventKey,
  idsOfEntry,
  type KvEventRecord,
  legacyDeadLetterKey,
  readyEntryValue,
  readyKey,
  readyKeyOf,
  TIMELINE_PREFIX,
  timelineKey,
} from "./keys.ts";
import { readJobs } from "./job_records.ts";
import { readEvent } from "./parts.ts";

/**
 * Events one call reads at most, bounding a filter that matches little: 10 per event of the
 * largest page (1000), as before a page had to end where the matches do.
 */
export const MAX_SCAN_EVENTS = 10_000;
/** Most entries fetched per round trip while listing the timeline. */
const LIST_BATCH_SIZE = 500;
/** Attempts of a replay whose record keeps changing under it before giving up. */
const REPLAY_ATTEMPTS = 10;

/** A position in the timeline: an entry (its key parts after the prefix) and an index in it. */
interface TimelinePosition {
  receivedAt: number;
  entryId: string;
  index: number;
}

/** Which page of the timeline {@linkcode pageTimeline} reads. */
export interface TimelinePageOptions {
  /** Most items on the page. */
  limit: number;
  /** Where to resume: the cursor of the previous page. */
  cursor?: string;
  /** Only events received at or after this time, ms since the epoch. */
  receivedFrom?: number;
  /** Only events received at or before this time, ms since the epoch. */
  receivedTo?: number;
}

/** An event's place in the timeline. */
export interface TimelineEvent extends TimelinePosition {
  id: string;
}

/**
 * Lists events newest first, filtered by state and kind, at most `limit` of them, with a cursor
 * exactly when another match follows (it reads one match ahead to know).
 *
 * Reads at most {@linkcode MAX_SCAN_EVENTS} events of the timeline per call; when they run out
 * before the page is settled, the cursor resumes after the last one read. Throws
 * {@linkcode InvalidCursorError} for a cursor it cannot read.
 */
export async function listEvents(kv: Deno.Kv, options: ListEventsOptions): Promise<EventPage> {
  // Dead letters have an index of their own, newest first: a rare state is not found by a scan.
  const index = options.state === "dead" ? "dead" : "timeline";
  const { items, cursor } = await pageTimeline(kv, options, async (batch) => {
    const stored = await kv.getMany<KvEventRecord[]>(batch.map((p) => eventKey(p.id)));
    const records = await withCurrentState(kv, stored.map((entry) => entry.value));
    const matching = records.map((record) => record && _matches(record, options) ? record : null);
    if (needsEvent(options)) {
      const events = await Promise.all(matching.map((record) => record && readEvent(kv, record)));
      events.forEach((event, n) => {
        if (event && !matchesFacts(event, options)) matching[n] = null;
      });
    }
    if (options.jobState !== undefined) await _keepWithJobIn(kv, matching, options.jobState);
    return matching.map((record) => record && eventSummary(record));
  }, index);
  return cursor === undefined ? { events: items } : { events: items, cursor };
}

/**
 * One page of what the timeline lists, newest first: `read` turns each batch of timeline events
 * (ten, one `getMany`) into items, `null` for those that do not match. At most `limit` items, with
 * a cursor exactly when another match follows (it reads one match ahead to know); at most
 * {@linkcode MAX_SCAN_EVENTS} events read per call, after which the cursor resumes behind the last
 * one read. With `receivedFrom` / `receivedTo` only events received in that range (both ends
 * included) are read. Throws {@linkcode InvalidCursorError} for a cursor it cannot read.
 */
export async function pageTimeline<T>(
  kv: Deno.Kv,
  options: TimelinePageOptions,
  read: (batch: readonly TimelineEvent[]) => Promise<(T | null)[]>,
  index: "timeline" | "dead" = "timeline",
): Promise<{ items: T[]; cursor?: string }> {
  const limit = Math.max(1, Math.floor(options.limit));
  const after = options.cursor === undefined ? undefined : _decodeCursor(options.cursor);
  // Each entry holds at least one event: this many entries cover the budget and one more.
  const walk = {
    maxEntries: MAX_SCAN_EVENTS + 1,
    batchSize: Math.min(LIST_BATCH_SIZE, limit + GET_MANY_MAX_KEYS),
  };
  const timeline = index === "dead"
    ? _deadNewestFirst(kv, _rangeSelector(DEAD_LETTER_PREFIX, after, options), walk)
    : _newestFirst(kv, _rangeSelector(TIMELINE_PREFIX, after, options), after, walk);

  const items: T[] = [];
  let scanned = 0;
  let lastReturned: TimelinePosition | undefined;
  let lastScanned: TimelinePosition | undefined;
  let hasMoreMatches = false;
  let isExhausted = false;
  while (!hasMoreMatches && !isExhausted && scanned < MAX_SCAN_EVENTS) {
    const batch: TimelineEvent[] = [];
    while (batch.length < GET_MANY_MAX_KEYS && scanned < MAX_SCAN_EVENTS) {
      const next = await timeline.next();
      if (next.done) {
        isExhausted = true;
        break;
      }
      scanned++;
      batch.push(next.value);
    }
    if (batch.length === 0) continue;
    const found = await read(batch);
    for (let i = 0; i < batch.length; i++) {
      const item = found[i];
      if (item !== null && item !== undefined) {
        if (items.length === limit) {
          hasMoreMatches = true; // read ahead only: the next page starts with it
          break;
        }
        items.push(item);
        lastReturned = batch[i];
      }
      lastScanned = batch[i];
    }
  }
  if (hasMoreMatches) return { items, cursor: _encodeCursor(lastReturned!) };
  // Out of budget with events left: resume after the last one read, all of which were seen.
  if (!isExhausted && lastScanned && !(await timeline.next()).done) {
    return { items, cursor: _encodeCursor(lastScanned) };
  }
  return { items };
}

/**
 * The entries of the index under `prefix` (the timeline, or the dead letters; both keyed
 * `[prefix, receivedAt, id]`) to walk: those before `after` (when given) within the range received
 * (both ends included). A cursor is only made inside the range, so `after` bounds it from above;
 * keys without a time (legacy dead letters) sort before every time and are left out.
 */
function _rangeSelector(
  prefix: Deno.KvKey,
  after: TimelinePosition | undefined,
  range: { receivedFrom?: number; receivedTo?: number },
): Deno.KvListSelector {
  const start = [...prefix, range.receivedFrom ?? 0];
  // Every key of a time `t` sorts before `[…, t + 1]`, so that end includes `receivedTo`.
  const end = after
    ? [...prefix, after.receivedAt, after.entryId]
    : range.receivedTo === undefined
    ? undefined
    : [...prefix, range.receivedTo + 1];
  return end ? { start, end } : { prefix, start };
}

/** The dead letters `selector` picks, newest first, at most `maxEntries`. */
async function* _deadNewestFirst(
  kv: Deno.Kv,
  selector: Deno.KvListSelector,
  { maxEntries, batchSize }: { maxEntries: number; batchSize: number },
): AsyncGenerator<TimelineEvent> {
  const entries = kv.list(selector, { reverse: true, limit: maxEntries, batchSize });
  for await (const entry of entries) {
    const [, receivedAt, id] = entry.key;
    if (typeof receivedAt !== "number" || typeof id !== "string") continue;
    yield { receivedAt, entryId: id, index: 0, id };
  }
}

/**
 * The events of the timeline entries `selector` picks, newest first, after `after` when given:
 * the rest of its entry first, then the older entries, reading at most `maxEntries` of them,
 * `batchSize` per round trip.
 */
async function* _newestFirst(
  kv: Deno.Kv,
  selector: Deno.KvListSelector,
  after: TimelinePosition | undefined,
  { maxEntries, batchSize }: { maxEntries: number; batchSize: number },
): AsyncGenerator<TimelineEvent> {
  if (after) {
    const entry = await kv.get(timelineKey(after.receivedAt, after.entryId));
    const ids = idsOfEntry(entry.value);
    for (let index = Math.min(after.index, ids.length) - 1; index >= 0; index--) {
      yield { receivedAt: after.receivedAt, entryId: after.entryId, index, id: ids[index]! };
    }
  }
  const entries = kv.list(selector, { reverse: true, limit: maxEntries, batchSize });
  for await (const entry of entries) {
    const [, receivedAt, entryId] = entry.key;
    if (typeof receivedAt !== "number" || typeof entryId !== "string") continue;
    const ids = idsOfEntry(entry.value);
    for (let index = ids.length - 1; index >= 0; index--) {
      yield { receivedAt, entryId, index, id: ids[index]! };
    }
  }
}

/** Reads event `id`'s record and the event; `null` when it is unknown or expired. */
export async function getEvent(kv: Deno.Kv, id: string): Promise<StoredEvent | null> {
  const entry = await kv.get<KvEventRecord>(eventKey(id));
  if (entry.value === null) return null;
  const [record] = await withCurrentState(kv, [entry.value]);
  return { record: domainRecord(record!), event: await readEvent(kv, entry.value) };
}

/**
 * The records with their current state: a worker's claim moves an event out of its ready entry
 * (into a lease) without rewriting the record, so a `pending` or `retrying` record that is no
 * longer in its entry at `record.dueAt` is being processed.
 */
export async function withCurrentState(
  kv: Deno.Kv,
  records: readonly (KvEventRecord | null)[],
): Promise<(KvEventRecord | null)[]> {
  const waiting = records.flatMap((record) =>
    record && (record.state === "pending" || record.state === "retrying") && record.dueAt !== null
      ? [record]
      : []
  );
  const claimed = new Set<string>();
  for (let i = 0; i < waiting.length; i += GET_MANY_MAX_KEYS) {
    const chunk = waiting.slice(i, i + GET_MANY_MAX_KEYS);
    const entries = await kv.getMany(chunk.map(readyKeyOf));
    entries.forEach((entry, j) => {
      const record = chunk[j]!;
      if (!idsOfEntry(entry.value).includes(record.id)) claimed.add(record.id);
    });
  }
  return records.map((record) =>
    record && claimed.has(record.id) ? { ...record, state: "processing" } : record
  );
}

/**
 * Puts event `id` back to `pending` (`replayedRecord`). One atomic checks the record's versionstamp, takes the event out of its ready entry (which other events may share) into one of
 * its own at `now`, and removes its dead letter; when the record changed meanwhile, the replay
 * reads it again and retries.
 */
export async function replayEvent(kv: Deno.Kv, id: string, now: number): Promise<ReplayResult> {
  for (let attempt = 1; attempt <= REPLAY_ATTEMPTS; attempt++) {
    const current = await kv.get<KvEventRecord>(eventKey(id));
    const record = current.value;
    if (record === null) return { status: "not_found" };
    // A waiting event must still be in its entry at `record.dueAt`: if a worker took it, it runs.
    const waiting = record.dueAt === null ? null : await kv.get(readyKeyOf(record));
    const others = idsOfEntry(waiting?.value).filter((other) => other !== id);
    if (waiting && others.length === idsOfEntry(waiting.value).length) return { status: "busy" };
    const { readyId: _shared, ...rest } = record;
    const replayed: KvEventRecord = replayedRecord(rest, now);
    const result = await commitWithRetry(() => {
      const atomic = kv.atomic().check(current);
      // It leaves its entry for one of its own; the others stay in theirs.
      if (waiting) atomic.check(waiting);
      if (waiting && others.length > 0) atomic.set(waiting.key, readyEntryValue(others));
      else if (waiting) atomic.delete(waiting.key);
      return atomic
        .set(eventKey(id), replayed, { expireIn: Math.max(1, record.expiresAt - now) })
        .set(readyKey(now, id), id)
        .delete(deadLetterKey(record.receivedAt, id))
        .delete(legacyDeadLetterKey(id));
    });
    if (result.ok) return { status: "replayed", record: domainRecord(replayed) };
  }
  throw new Error(`Cannot replay event "${id}": its record keeps changing`);
}

/**
 * Replays every dead letter (see {@linkcode replayEvent}) and returns how many were replayed.
 * A dead letter whose record has expired is removed.
 */
export async function replayDeadLetters(kv: Deno.Kv, now: number): Promise<number> {
  // Collected first: each replay deletes the entry being listed.
  const entries: Deno.KvEntry<unknown>[] = [];
  for await (const entry of kv.list({ prefix: DEAD_LETTER_PREFIX })) entries.push(entry);
  let replayed = 0;
  for (const entry of entries) {
    const id = entry.key.at(-1); // `["dead", receivedAt, id]`, or a legacy `["dead", id]`
    if (typeof id !== "string") continue;
    const result = await replayEvent(kv, id, now);
    if (result.status === "replayed") replayed++;
    else if (result.status === "not_found") {
      await kv.atomic().check(entry).delete(entry.key).commit();
    }
  }
  return replayed;
}

function _matches(record: KvEventRecord, options: ListEventsOptions): boolean {
  return (options.state === undefined || record.state === options.state) &&
    (options.kind === undefined || record.kind === options.kind);
}

/** Clears (to `null`) the records none of whose delivery jobs is in `state`. */
async function _keepWithJobIn(
  kv: Deno.Kv,
  records: (KvEventRecord | null)[],
  state: JobState,
): Promise<void> {
  const byDestination = new Map<string, KvEventRecord[]>();
  for (const record of records) {
    for (const destination of record?.jobs ?? []) {
      byDestination.set(destination, [...byDestination.get(destination) ?? [], record!]);
    }
  }
  const withJobIn = new Set<KvEventRecord>();
  for (const [destination, listed] of byDestination) {
    const jobs = await readJobs(kv, destination, listed.map((r) => r.id), listed);
    jobs.forEach((read, n) => {
      if (read?.job.state === state) withJobIn.add(listed[n]!);
    });
  }
  records.forEach((record, n) => {
    if (record && !withJobIn.has(record)) records[n] = null;
  });
}

/** A cursor is the last timeline position consumed, as base64url JSON: opaque to clients. */
function _encodeCursor(position: TimelinePosition): string {
  const json = JSON.stringify([position.receivedAt, position.entryId, position.index]);
  const base64 = btoa(String.fromCharCode(...new TextEncoder().encode(json)));
  return base64.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** The position a cursor names; throws {@linkcode InvalidCursorError} for one it did not make. */
function _decodeCursor(cursor: string): TimelinePosition {
  const invalid = new InvalidCursorError(
    `Cannot read "cursor": pass back the cursor of the previous page unchanged`,
  );
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalid;
  let parsed: unknown;
  try {
    const binary = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
    const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw invalid;
  }
  // Cursors of older versions name an entry of one event: `[receivedAt, id]`.
  const [receivedAt, entryId, index = 0] = Array.isArray(parsed) ? parsed : [];
  if (
    !Array.isArray(parsed) || parsed.length < 2 || parsed.length > 3 ||
    typeof receivedAt !== "number" || !Number.isFinite(receivedAt) ||
    typeof entryId !== "string" || !Number.isSafeInteger(index) || index < 0
  ) throw invalid;
  return { receivedAt, entryId, index };
}
