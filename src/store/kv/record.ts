/**
 * Recording: each event is stored in Deno KV together with its dedup mark in one atomic
 * commit, and made ready for the worker. Events that were already recorded are skipped and
 * counted as duplicates, never errors.
 *
 * @module
 */
import type { WebhookEvent } from "../../events/events.ts";
import { newRecord, recordLifeMs, type RetentionOptions } from "../event_record.ts";
import { createGroupCommitter } from "../group_commit.ts";
import type { RecordOptions } from "../store.ts";
import { commitWithRetry } from "./commit.ts";
import type { SharedJobsEntry } from "./job_records.ts";
import { getManyInBatches } from "./get_many.ts";
import { KV_CONNECT_CHECKS_PER_ATOMIC } from "./location.ts";
import {
  eventKey,
  jobReadyKey,
  type KvEventRecord,
  readyEntryValue,
  readyKey,
  timelineKey,
} from "./keys.ts";
import { type KvClaim, KvLease } from "./lease.ts";
import { chunkEvent, MAX_INLINE_EVENT_CHARS, writeParts } from "./parts.ts";

/**
 * Events per commit that every backend takes (one dedup check each, and KV Connect allows ten per
 * atomic), for commits made outside an inbox (`groupForCommit`); an inbox takes the store's own.
 */
export const MAX_EVENTS_PER_COMMIT = KV_CONNECT_CHECKS_PER_ATOMIC;
/** Budget per commit, under Deno KV's 800 KiB limit with room for keys and metadata. */
const MAX_COMMIT_BYTES = 600 * 1024;
/**
 * Mutations of the events of one commit at most (a record each, and one per delivery job: the
 * commit's shared due-order entries are at most one per destination), well under Deno KV's 1000 per
 * atomic with room for the commit's own three (ready entries and timeline).
 */
export const MAX_COMMIT_MUTATIONS = 500;
/**
 * Estimated bytes a delivery job adds to its commit, at most: a shared due-order entry
 * (destination, time and id in the key) and its event id in the list (two bytes a character as
 * strings may be stored).
 */
const JOB_BYTES = 512;

/** Options for {@linkcode prepareEvent}. */
export interface PrepareOptions extends RetentionOptions {
  /** The time of recording, ms since the epoch. */
  now: number;
  /** Records the event leased to the caller until then: its ready entry is put there. */
  leaseUntil?: number;
  /** The destinations the event goes to: one delivery job each, due at `now`. */
  destinations?: readonly string[];
}

/** Which events were recorded now and which had been recorded before. */
export interface KvRecordOutcome {
  recorded: string[];
  duplicates: string[];
  /** The recorded events written already leased to the caller. */
  leased: KvClaim[];
}

/** An event ready to commit: its record and the keys and values to write. */
export interface PreparedEvent {
  id: string;
  event: WebhookEvent;
  record: KvEventRecord;
  /** The end of the recorder's lease, when it is recorded leased to its recorder. */
  leaseUntil?: number;
  /** Estimated serialised size of the record and its jobs, for commit budgets. */
  bytes: number;
  /** The writes it adds to its commit at most: its record, and a shared entry per job. */
  mutations: number;
  /** The destinations of its delivery jobs, each listed in the commit's entry for it. */
  destinations: string[];
  /**
   * How long the record and its timeline entry live: {@linkcode recordLifeMs} after the record is
   * due (at once, or when the recorder's lease ends).
   */
  expireInMs: number;
  /** Chunks of a large event's JSON, written before the record. */
  parts: Uint8Array[];
}

/** Records events, sharing atomic commits with the events of concurrent callers. */
export interface Inbox {
  /**
   * Records the events of one delivery; resolves once all are recorded or known duplicates. With
   * `lease`, the first `lease.count` events are recorded already leased to the caller.
   */
  record(events: readonly WebhookEvent[], options: RecordOptions): Promise<KvRecordOutcome>;
}

/**
 * Creates an inbox whose commits gather the events of deliveries that arrive together (group
 * commit), at most `eventsPerCommit` per atomic (one dedup check each: the checks the backend
 * allows). A failed commit fails only the deliveries whose events it held.
 */
export function createInbox(
  kv: Deno.Kv,
  retention: RetentionOptions,
  eventsPerCommit: number,
): Inbox {
  const committer = createGroupCommitter<PreparedEvent, CommitResult>({
    maxGroupSize: eventsPerCommit,
    sizeOf: (event) => event.bytes,
    maxGroupBytes: MAX_COMMIT_BYTES,
    mutationsOf: (event) => event.mutations,
    maxGroupMutations: MAX_COMMIT_MUTATIONS,
    commit: (group) => commitGroup(kv, group),
  });
  return {
    async record(events, { now, lease, destinationsFor }) {
      const prepared = events.map((event, i) =>
        prepareEvent(event, {
          ...retention,
          now,
          ...(lease && i < lease.count ? { leaseUntil: lease.until } : {}),
          ...(destinationsFor ? { destinations: destinationsFor(event) } : {}),
        })
      );
      await Promise.all(prepared.map((event) => writeParts(kv, event)));
      // A delivery's events go into the same commits: one disk sync for as many as one holds.
      const results = await committer.submitAll(prepared);
      return _outcome(prepared, results);
    },
  };
}

/**
 * What became of one event in a commit: recorded by it (with the lease of the commit's leased
 * events, when it is one of them), or not.
 */
export type CommitResult = { state: "recorded"; lease?: KvLease } | { state: "duplicate" };

const _DUPLICATE: CommitResult = { state: "duplicate" };
const _RECORDED: CommitResult = { state: "recorded" };

/** Builds the record of a newly received event. */
export function prepareEvent(event: WebhookEvent, options: PrepareOptions): PreparedEvent {
  // A record recorded leased is due when the lease ends: it lives a whole life after that.
  const expireInMs = recordLifeMs(options) +
    Math.max(0, (options.leaseUntil ?? options.now) - options.now);
  const json = JSON.stringify(event);
  const record: KvEventRecord = newRecord(event, options.now, expireInMs);
  let parts: Uint8Array[] = [];
  if (json.length > MAX_INLINE_EVENT_CHARS) {
    parts = chunkEvent(json);
    record.parts = parts.length;
  } else {
    record.event = event;
  }
  // A name given twice is one job.
  const destinations = options.destinations?.length ? [...new Set(options.destinations)] : [];
  if (destinations.length > 0) record.jobs = destinations;
  // Strings may be stored as UTF-16: count two bytes a character, plus the record's own fields.
  const bytes = (record.event ? json.length * 2 : 0) + 512 + JOB_BYTES * destinations.length;
  const mutations = 1 + destinations.length;
  const prepared: PreparedEvent = {
    id: event.id,
    event,
    record,
    bytes,
    mutations,
    destinations,
    expireInMs,
    parts,
  };
  if (options.leaseUntil !== undefined) prepared.leaseUntil = options.leaseUntil;
  return prepared;
}

/** Splits events into groups that each fit one atomic commit. */
export function groupForCommit(events: readonly PreparedEvent[]): PreparedEvent[][] {
  const groups: PreparedEvent[][] = [];
  let current: PreparedEvent[] = [];
  let bytes = 0;
  let mutations = 0;
  for (const event of events) {
    const isFull = current.length >= MAX_EVENTS_PER_COMMIT ||
      bytes + event.bytes > MAX_COMMIT_BYTES ||
      mutations + event.mutations > MAX_COMMIT_MUTATIONS;
    if (current.length > 0 && isFull) {
      groups.push(current);
      current = [];
      bytes = 0;
      mutations = 0;
    }
    current.push(event);
    bytes += event.bytes;
    mutations += event.mutations;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

/**
 * Commits one group: per event a check that its record is absent and the record; per commit one
 * ready entry for the events leased to the recorder, one for the others (due now, named by their
 * records' `readyId`), one due-order entry per destination listing the events with a job to it
 * (named by their records' `jobsEntry`), and one timeline entry.
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
  // Each failed round drops the duplicates it finds, so a round per event is the most it needs.
  const maxRounds = Math.max(MAX_EVENTS_PER_COMMIT, group.length);
  for (let round = 0; pending.length > 0; round++) {
    if (round > maxRounds) {
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
    const jobEntries = _sharedJobEntries(pending);
    const result = await commitWithRetry(() => {
      const atomic = kv.atomic();
      for (const event of pending) addEventWrites(atomic, event);
      if (leaseKey) atomic.set(leaseKey, readyEntryValue(leased.map((event) => event.id)));
      if (waitingKey) atomic.set(waitingKey, readyEntryValue(waiting.map((event) => event.id)));
      for (const { key, value, expireIn } of jobEntries) atomic.set(key, value, { expireIn });
      return addTimelineEntry(atomic, pending);
    });
    if (result.ok) {
      const lease = leaseKey &&
        new KvLease(leaseKey, result.versionstamp, leased.map((event) => event.id));
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
 * entry, its timeline entry and its jobs' due-order entries are shared with the other events of
 * the commit: see {@linkcode commitGroup}.)
 */
export function addEventWrites(atomic: Deno.AtomicOperation, event: PreparedEvent): void {
  atomic
    .check({ key: eventKey(event.id), versionstamp: null })
    .set(eventKey(event.id), event.record, { expireIn: event.expireInMs });
}

/**
 * The due-order entries of a commit's new delivery jobs: one per destination, listing the events
 * with a job to it, due at the latest reception among them, under one new id named by each such
 * event's record (`jobsEntry`): the jobs have no records until claimed (`job_records.ts`).
 */
function _sharedJobEntries(
  events: readonly PreparedEvent[],
): { key: Deno.KvKey; value: SharedJobsEntry; expireIn: number }[] {
  const withJobs = events.filter((event) => event.destinations.length > 0);
  if (withJobs.length === 0) return [];
  const entry = {
    dueAt: Math.max(...withJobs.map((event) => event.record.receivedAt)),
    id: crypto.randomUUID(),
  };
  // Each lives as long as the longest-lived of the commit's events (a little longer: it is
  // written after they were prepared), and says until when, for whoever rewrites it.
  const expireIn = Math.max(...withJobs.map((event) => event.expireInMs));
  const expiresAt = Math.max(...withJobs.map((event) => event.record.expiresAt));
  const byDestination = new Map<string, string[]>();
  for (const event of withJobs) {
    event.record.jobsEntry = entry;
    for (const destination of event.destinations) {
      const ids = byDestination.get(destination);
      if (ids) ids.push(event.id);
      else byDestination.set(destination, [event.id]);
    }
  }
  return [...byDestination].map(([destination, ids]) => ({
    key: jobReadyKey(destination, entry.dueAt, entry.id),
    value: { ids, expiresAt },
    expireIn,
  }));
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
): KvRecordOutcome {
  const outcome: KvRecordOutcome = { recorded: [], duplicates: [], leased: [] };
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
