/**
 * How long an event's record lives: a waiting event's record always outlives its next run, and
 * every write of a record keeps the expiry it has.
 *
 * @module
 */
import type { WebhookEvent } from "../events/events.ts";
import { renewParts } from "../store/inbox.ts";
import { type EventRecord, renewedExpiresAt } from "../store/keys.ts";

/** What {@linkcode renewRecordLife} needs beside the record. */
export interface RecordLifeOptions {
  /** The time of the write, ms since the epoch. */
  now: number;
  /** How long a run's lease lasts: the record must outlive the first lease of its next run. */
  leaseMs: number;
  /** How long records live: the longer of the dedup TTL and the retention. */
  recordLifeMs: number;
}

/**
 * The record to store, living long enough after its next run's first lease (its settling, when
 * done or dead): see {@linkcode renewedExpiresAt}. A large event's parts are written again first,
 * to live as long.
 */
export async function renewRecordLife(
  kv: Deno.Kv,
  next: EventRecord,
  event: WebhookEvent,
  { now, leaseMs, recordLifeMs }: RecordLifeOptions,
): Promise<EventRecord> {
  const expiresAt = renewedExpiresAt(next.expiresAt, (next.dueAt ?? now) + leaseMs, recordLifeMs);
  if (expiresAt === next.expiresAt) return next;
  const renewed = { ...next, expiresAt };
  if (next.parts !== undefined) renewed.parts = await renewParts(kv, event, expiresAt - now);
  return renewed;
}

/** What is left of a record's life, for `expireIn` (a `set` without it would drop the expiry). */
export function remainingLifeMs(record: EventRecord, now: number): number {
  return Math.max(1, record.expiresAt - now);
}
