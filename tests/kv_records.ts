/**
 * Event records put into a given state the way the worker leaves them, and expiries read from a
 * Deno KV file: for the event log, admin and status tests.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { WebhookEvent } from "../src/events/events.ts";
import type { EventState } from "../src/store/event_record.ts";
import { commitGroup, groupForCommit, prepareEvent } from "../src/store/kv/record.ts";
import { writeParts } from "../src/store/kv/parts.ts";
import {
  deadLetterKey,
  eventKey,
  idsOfEntry,
  type KvEventRecord as EventRecord,
  readyEntryValue,
  readyKey,
  readyKeyOf,
} from "../src/store/kv/keys.ts";

/** The service's default retention: event ids 8 days, records 7 days. */
export const RETENTION = { dedupTtlMs: 8 * 24 * 3_600_000, retentionMs: 7 * 24 * 3_600_000 };

/**
 * Records `events` at `now` with the default retention, in as few commits as fit (one for up to
 * ten small events, so they share a ready entry and a timeline entry); every one must be new. The
 * inbox commits the first events of a call on their own while it gathers the others, so tests of
 * what one commit writes record through this instead.
 */
export async function recordAll(kv: Deno.Kv, events: WebhookEvent[], now: number): Promise<void> {
  const prepared = events.map((event) => prepareEvent(event, { ...RETENTION, now }));
  await Promise.all(prepared.map((event) => writeParts(kv, event)));
  for (const group of groupForCommit(prepared)) {
    const results = await commitGroup(kv, group);
    assert.ok(results.every((result) => result.state === "recorded"), "every event is new");
  }
}

/**
 * Moves event `id`'s record to `state` as the worker would at time `fields.now`, taking the event
 * out of its (possibly shared) ready entry: a claim (`processing`) puts it in an entry of its own at
 * `fields.dueAt` (the lease's end) and leaves the record as it is; `done` and `dead` give it no
 * entry (`dead` adds a dead letter); the other states give it its own entry at its `dueAt`.
 */
export async function setRecordState(
  kv: Deno.Kv,
  id: string,
  state: EventState,
  fields: Partial<EventRecord> & { now: number },
): Promise<EventRecord> {
  const entry = await kv.get<EventRecord>(eventKey(id));
  const current = entry.value;
  assert.ok(current);
  const atomic = kv.atomic().check(entry);
  if (current.dueAt !== null) await leaveReadyEntry(kv, atomic, current);
  if (state === "processing") {
    // A worker's claim: the event moves to a lease entry at its end, the record stays as it is.
    assert.ok(current.dueAt !== null && fields.dueAt !== undefined && fields.dueAt !== null);
    const moved = await atomic.set(readyKey(fields.dueAt, id), id).commit();
    assert.ok(moved.ok);
    return current;
  }
  const { now, ...patch } = fields;
  const isParked = state === "done" || state === "dead";
  const { readyId: _shared, ...own } = current;
  const next: EventRecord = { ...own, dueAt: isParked ? null : current.dueAt, ...patch, state };
  const expireIn = current.expiresAt - now;
  if (next.dueAt !== null) atomic.set(readyKey(next.dueAt, id), id);
  if (state === "dead") atomic.set(deadLetterKey(next.receivedAt, id), id, { expireIn });
  const result = await atomic.set(eventKey(id), next, { expireIn }).commit();
  assert.ok(result.ok);
  return next;
}

/** Adds to `atomic` taking the waiting event `record` out of its (possibly shared) ready entry. */
export async function leaveReadyEntry(
  kv: Deno.Kv,
  atomic: Deno.AtomicOperation,
  record: EventRecord,
): Promise<void> {
  const waiting = await kv.get(readyKeyOf(record));
  const others = idsOfEntry(waiting.value).filter((id) => id !== record.id);
  atomic.check(waiting);
  if (others.length > 0) atomic.set(waiting.key, readyEntryValue(others));
  else atomic.delete(waiting.key);
}

/**
 * When Deno KV will drop `key` (string parts only), read from its SQLite file: reads do not hide
 * expired keys until a cleanup runs, so the file is the only place to see an expiry. `null` for
 * no expiry.
 */
export function expirationMs(path: string, key: string[]): number | null {
  const bytes: number[] = [];
  for (const part of key) {
    bytes.push(0x02);
    for (const byte of new TextEncoder().encode(part)) {
      bytes.push(...(byte === 0 ? [0, 0xff] : [byte]));
    }
    bytes.push(0x00);
  }
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const row = db.prepare("SELECT expiration_ms FROM kv WHERE k = ?").get(new Uint8Array(bytes));
    assert.ok(row, `key ${JSON.stringify(key)} is in the file`);
    const expiration = Number(row.expiration_ms);
    return expiration < 0 ? null : expiration;
  } finally {
    db.close();
  }
}
