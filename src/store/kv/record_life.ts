/**
 * How long an event's record lives: a waiting event's record always outlives its next run, and
 * every write of a record keeps the expiry it has.
 *
 * @module
 */
import type { WebhookEvent } from "../../events/events.ts";
import { renewedExpiresAt } from "../event_record.ts";
import type { KvEventRecord } from "./keys.ts";
import { renewParts } from "./parts.ts";

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
  next: KvEventRecord,
  event: WebhookEvent,
  { now, leaseMs, recordLifeMs }: RecordLifeOptions,
): Promise<KvEventRecord> {
  const expiresAt = renewedExpiresAt(next.expiresAt, (next.dueAt ?? now) + leaseMs, recordLifeMs);
  if (expiresAt === next.expiresAt) return next;
  const renewed = { ...next, expiresAt };
  if (next.parts !== undefined) renewed.parts = await renewParts(kv, event, expiresAt - now);
  return renewed;
}

/** What is left of a record's life, for `expireIn` (a `set` without it would drop the expiry). */
export function remainingLifeMs(record: KvEventRecord, now: number): number {
  return Math.max(1, record.expiresAt - now);
}
