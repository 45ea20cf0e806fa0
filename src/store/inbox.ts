/**
 * The record step: each event is stored in Deno KV together with its dedup mark in one atomic
 * commit, and made ready for the worker. Events that were already recorded are skipped and
 * counted as duplicates, never errors.
 *
 * @module
 */
import type { WebhookEvent } from "../events/events.ts";
import { getManyInBatches } from "./get_many.ts";
import { commitWithRetry } from "./commit.ts";
import { createGroupCommitter } from "./group_commit.ts";
import {
  eventKey,
  eventPartKey,
  type EventRecord,
  readyEntryValue,
  readyKey,
  timelineKey,
} from "./keys.ts";

/** The self-hosted KV Connect server allows at most 10 checks per atomic; one check per event. */
export const MAX_EVENTS_PER_COMMIT = 10;
/** Budget per commit, under Deno KV's 800 KiB limit with room for keys and metadata. */
const MAX_COMMIT_BYTES = 600 * 1024;
/** Events whose JSON is longer are stored in chunks: a KV value holds at most 64 KiB. */
const MAX_INLINE_EVENT_CHARS = 24 * 1024;
/** Size of one chunk of a large event's JSON (UTF-8 bytes). */
const PART_BYTES = 60 * 1024;
/** Chunks written per commit. */
const PARTS_PER_COMMIT = 10;

/** How long records and dedup marks live. */
export interface RetentionOptions {
  /** How long an event id is remembered, so Meta's retries are skipped (default 8 days). */
  dedupTtlMs: number;
  /** How long event records are kept for the admin API (default 7 days). */
  retentionMs: number;
}

/**
 * How long a record lives from its due time: the longer of the dedup TTL and the retention, since
 * the record is the dedup mark.
 */
export function recordLifeMs(retention: RetentionOptions): number {
  return Math.max(retention.dedupTtlMs, retention.retentionMs);
}

/** Options for {@linkcode recordEvents} and {@linkcode prepareEvent}. */
export interface RecordOptions extends RetentionOptions {
  /** The time of recording, ms since the epoch. */
  now: number;
  /** Records the event leased to the caller until then: its ready entry is put there. */
  leaseUntil?: number;
}

/** Which events were recorded now and which had been recorded before. */
export interface RecordOutcome {
  recorded: string[];
  duplicates: string[];
  /** The recorded events written already leased to the caller (see {@linkcode LeaseOptions}). */
  leased: LeasedEvent[];
}

/**
 * A lease on a ready entry: the entry's key and versionstamp, and the ids of the events it holds
 * whose results are not stored yet. The events of one entry share one lease object, which the
 * worker updates as it extends the lease and stores results.
 */
export interface Lease {
  key: Deno.KvKey;
  versionstamp: string;
  ids: string[];
}

/**
 * An event recorded with its ready entry at the end of a lease the recorder holds: it can run at
 * once, without being claimed. If the recorder dies, the lease runs out and any worker takes it.
 * The events of a commit recorded leased share one entry and one {@linkcode Lease}.
 */
export interface LeasedEvent {
  record: EventRecord;
  event: WebhookEvent;
  /** The lease, as a claim would hold it. */
  lease: Lease;
  /** The estimated size of the record as read or written, for commit budgets. */
  bytes: number;
}

/** Options for {@linkcode Inbox.record}. */
export interface LeaseOptions {
  /** How many of the events (the first ones) to record leased to the caller. */
  count: number;
  /** When those leases end, ms since the epoch. */
  until: number;
}

/** An event ready to commit: its record and the keys and values to write. */
export interface PreparedEvent {
  id: string;
  event: WebhookEvent;
  record: EventRecord;
  /** The end of the recorder's lease, when it is recorded leased to its recorder. */
  leaseUntil?: number;
  /** Estimated serialised size of the record, for commit budgets. */
  bytes: number;
  /**
   * How long the record and its timeline entry live: {@linkcode recordLifeMs} after the record is
   * due (at once, or when the recorder's lease ends).
   */
  expireInMs: number;
  /** Chunks of a large event's JSON, written before the record. */
  parts: Uint8Array[];
}

/**
 * Records events and their dedup marks, at most {@linkcode MAX_EVENTS_PER_COMMIT} per atomic,
 * without sharing commits with other callers (see {@linkcode createInbox} for that).
 *
 * Resolves once every event is either recorded or known to be a duplicate. Throws when Deno KV
 * fails: events already committed stay recorded and deduplicate when Meta retries.
 */
export async function recordEvents(
  kv: Deno.Kv,
  events: readonly WebhookEvent[],
  options: RecordOptions,
): Promise<RecordOutcome> {
  const prepared = events.map((event) => prepareEvent(event, options));
  await Promise.all(prepared.map((event) => writeParts(kv, event)));
  const groups = groupForCommit(prepared);
  const results = await Promise.all(groups.map((group) => commitGroup(kv, group)));
  return _outcome(groups.flat(), results.flat());
}

/** Records events, sharing atomic commits with the events of concurrent callers. */
export interface Inbox {
  /**
   * Records the events of one delivery; resolves once all are recorded or known duplicates. With
   * `lease`, the first `lease.count` events are recorded already leased to the caller.
   */
  record(
    events: readonly WebhookEvent[],
    now: number,
    lease?: LeaseOptions,
  ): Promise<RecordOutcome>;
}

/**
 * Creates an inbox whose commits gather the events of deliveries that arrive together (group
 * commit), at most {@linkcode MAX_EVENTS_PER_COMMIT} per atomic. A failed commit fails only the
 * deliveries whose events it held.
 */
export function createInbox(kv: Deno.Kv, retention: RetentionOptions): Inbox {
  const committer = createGroupCommitter<PreparedEvent, CommitResult>({
    maxGroupSize: MAX_EVENTS_PER_COMMIT,
    sizeOf: (event) => event.bytes,
    maxGroupBytes: MAX_COMMIT_BYTES,
    commit: (group) => commitGroup(kv, group),
  });
  return {
    async record(events, now, lease) {
      const prepared = events.map((event, i) =>
        prepareEvent(event, {
          ...retention,
          now,
          ...(lease && i < lease.count ? { leaseUntil: lease.until } : {}),
        })
      );
      await Promise.all(prepared.map((event) => writeParts(kv, event)));
      const results = await Promise.all(prepared.map((event) => committer.submit(event)));
      return _outcome(prepared, results);
    },
  };
}

/**
 * What became of one event in a commit: recorded by it (with the lease of the commit's leased
 * events, when it is one of them), or not.
 */
export type CommitResult = { state: "recorded"; lease?: Lease } | { state: "duplicate" };

const _DUPLICATE: CommitResult = { state: "duplicate" };
const _RECORDED: CommitResult = { state: "recorded" };

/** Builds the record of a newly received event. */
export function prepareEvent(event: WebhookEvent, options: RecordOptions): PreparedEvent {
  // A record recorded leased is due when the lease ends: it lives a whole life after that.
  const expireInMs = recordLifeMs(options) +
    Math.max(0, (options.leaseUntil ?? options.now) - options.now);
  const json = JSON.stringify(event);
  const record: EventRecord = {
    id: event.id,
    kind: event.kind,
    state: "pending",
    attempts: 0,
    receivedAt: options.now,
    dueAt: options.now,
    expiresAt: options.now + expireInMs,
    completedHandlers: [],
    history: [],
  };
  let parts: Uint8Array[] = [];
  if (json.length > MAX_INLINE_EVENT_CHARS) {
    parts = _chunk(new TextEncoder().encode(json), PART_BYTES);
    record.parts = parts.length;
  } else {
    record.event = event;
  }
  // Strings may be stored as UTF-16: count two bytes a character, plus the record's own fields.
  const bytes = (record.event ? json.length * 2 : 0) + 512;
  const prepared: PreparedEvent = { id: event.id, event, record, bytes, expireInMs, parts };
  if (options.leaseUntil !== undefined) prepared.leaseUntil = options.leaseUntil;
  return prepared;
}

/** Splits events into groups that each fit one atomic commit. */
export function groupForCommit(events: readonly PreparedEvent[]): PreparedEvent[][] {
  const groups: PreparedEvent[][] = [];
  let current: PreparedEvent[] = [];
  let bytes = 0;
  for (const event of events) {
    const isFull = current.length >= MAX_EVENTS_PER_COMMIT ||
      bytes + event.bytes > MAX_COMMIT_BYTES;
    if (current.length > 0 && isFull) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(event);
    bytes += event.bytes;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

/**
 * Commits one group: per event a check that its record is absent and the record; per commit one
 * ready entry for the events leased to the recorder, one for the others (due now, named by their
 * records' `readyId`) and one timeline entry.
 *
 * When a check fails (an event already recorded: Meta's retry, or a concurrent request), one read
 * finds which events are recorded, they are reported as duplicates, and the others are committed
 * again: a duplicate costs its neighbours one read and one commit more, never a failure or a
 * second record. An id twice in the group is recorded once.
 *
 * Nothing is read before the first commit: duplicates are rare, and reading every group first
 * cost the intake about a quarter of its throughput (the read is a second call to the KV thread).
 */
export async function commitGroup(
  kv: Deno.Kv,
  group: readonly PreparedEvent[],
): Promise<CommitResult[]> {
  const results = new Map<string, CommitResult>();
  let pending = group.filter((event, i) => group.findIndex((e) => e.id === event.id) === i);
  for (let round = 0; pending.length > 0; round++) {
    if (round > MAX_EVENTS_PER_COMMIT) {
      throw new Error("Cannot record events: a dedup check keeps failing without a duplicate");
    }
    // One ready entry for the events leased to the recorder, at the lease's end, and one for the
    // others, due now. Their ids are new, so they never collide with another entry's key.
    const leased = pending.filter((event) => event.leaseUntil !== undefined);
    const waiting = pending.filter((event) => event.leaseUntil === undefined);
    const leaseKey = _sharedReadyKey(leased.map((event) => event.leaseUntil!));
    const waitingKey = _sharedReadyKey(waiting.map((event) => event.record.receivedAt));
    for (const { record } of waiting) {
      record.dueAt = waitingKey![1] as number;
      record.readyId = waitingKey![2] as string;
    }
    const result = await commitWithRetry(() => {
      const atomic = kv.atomic();
      for (const event of pending) addEventWrites(atomic, event);
      if (leaseKey) atomic.set(leaseKey, readyEntryValue(leased.map((event) => event.id)));
      if (waitingKey) atomic.set(waitingKey, readyEntryValue(waiting.map((event) => event.id)));
      return addTimelineEntry(atomic, pending);
    });
    if (result.ok) {
      const lease: Lease | undefined = leaseKey && {
        key: leaseKey,
        versionstamp: result.versionstamp,
        ids: leased.map((event) => event.id),
      };
      for (const event of pending) {
        results.set(event.id, lease && event.leaseUntil ? { state: "recorded", lease } : _RECORDED);
      }
      break;
    }
    const existing = await _findRecorded(kv, pending.map((event) => event.id));
    for (const id of existing) results.set(id, _DUPLICATE);
    pending = pending.filter((event) => !existing.has(event.id));
  }
  // A repeated id in the same group is a duplicate of its first occurrence.
  return group.map((event, i) =>
    group.findIndex((e) => e.id === event.id) === i ? results.get(event.id)! : _DUPLICATE
  );
}

/**
 * Adds one event's check and write to an atomic: its record, which is its dedup mark. (Its ready
 * entry is shared with the other events of the commit: see {@linkcode commitGroup}.)
 */
export function addEventWrites(atomic: Deno.AtomicOperation, event: PreparedEvent): void {
  atomic
    .check({ key: eventKey(event.id), versionstamp: null })
    .set(eventKey(event.id), event.record, { expireIn: event.expireInMs });
}

/** A new ready entry due at the latest of `times`; none for no times. */
function _sharedReadyKey(times: number[]): Deno.KvKey | undefined {
  return times.length > 0 ? readyKey(Math.max(...times), crypto.randomUUID()) : undefined;
}

/**
 * Adds the timeline entry of a commit: one entry listing the ids of all the events it records, in
 * the order they were received, instead of one entry each (a write less per event).
 */
export function addTimelineEntry(
  atomic: Deno.AtomicOperation,
  events: readonly PreparedEvent[],
): Deno.AtomicOperation {
  const first = events[0];
  if (!first) return atomic;
  const receivedAt = Math.max(...events.map((event) => event.record.receivedAt));
  const expireIn = Math.max(...events.map((event) => event.expireInMs));
  return atomic.set(timelineKey(receivedAt, first.id), events.map((event) => event.id), {
    expireIn,
  });
}

/** Reads an event back whole, joining its chunks when it was stored in parts. */
export async function readEvent(kv: Deno.Kv, record: EventRecord): Promise<WebhookEvent> {
  if (record.event) return record.event;
  const keys = Array.from({ length: record.parts ?? 0 }, (_, n) => eventPartKey(record.id, n));
  const chunks: Uint8Array[] = [];
  for (const entry of await getManyInBatches<Uint8Array>(kv, keys)) {
    if (entry.value === null) {
      throw new Error(`Cannot read event "${record.id}": part ${String(entry.key[2])} is missing`);
    }
    chunks.push(entry.value);
  }
  const bytes = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0));
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** Writes the chunks of a large event (nothing for an inline one), before its record. */
export async function writeParts(
  kv: Deno.Kv,
  event: Pick<PreparedEvent, "id" | "parts" | "expireInMs">,
): Promise<void> {
  for (let first = 0; first < event.parts.length; first += PARTS_PER_COMMIT) {
    const result = await commitWithRetry(() => {
      const atomic = kv.atomic();
      event.parts.slice(first, first + PARTS_PER_COMMIT).forEach((part, i) => {
        atomic.set(eventPartKey(event.id, first + i), part, { expireIn: event.expireInMs });
      });
      return atomic;
    });
    if (!result.ok) throw new Error(`Cannot store the parts of event "${event.id}"`);
  }
}

/**
 * Writes the chunks of a large event again, to live `expireInMs` from now, before its record is
 * stored with a longer life: a record must never outlive its parts. Returns the number of chunks,
 * for the record's `parts`.
 */
export async function renewParts(
  kv: Deno.Kv,
  event: WebhookEvent,
  expireInMs: number,
): Promise<number> {
  const parts = _chunk(new TextEncoder().encode(JSON.stringify(event)), PART_BYTES);
  await writeParts(kv, { id: event.id, parts, expireInMs });
  return parts.length;
}

async function _findRecorded(kv: Deno.Kv, ids: string[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (const entry of await getManyInBatches(kv, ids.map(eventKey))) {
    if (entry.versionstamp !== null) found.add(String(entry.key[1]));
  }
  return found;
}

function _outcome(
  events: readonly PreparedEvent[],
  results: readonly CommitResult[],
): RecordOutcome {
  const outcome: RecordOutcome = { recorded: [], duplicates: [], leased: [] };
  events.forEach((event, i) => {
    const result = results[i];
    if (result?.state !== "recorded") return void outcome.duplicates.push(event.id);
    outcome.recorded.push(event.id);
    if (result.lease) {
      outcome.leased.push({
        record: event.record,
        event: event.event,
        lease: result.lease,
        bytes: event.bytes,
      });
    }
  });
  return outcome;
}

function _chunk(bytes: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.slice(i, i + size));
  return chunks;
}
