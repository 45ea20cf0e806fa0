/**
 * A start-up repair: events that versions without capped delays parked beyond any delay this one
 * sets (at `Infinity` for a `Retry-After` of 400 nines) are made due now, before their records
 * expire.
 *
 * @module
 */
import type { Logger } from "../../ops/log.ts";
import {
  eventKey,
  idsOfEntry,
  type KvEventRecord,
  READY_PREFIX,
  type ReadyEntryValue,
  readyKey,
} from "./keys.ts";
import { readEvent } from "./parts.ts";
import { remainingLifeMs, renewRecordLife } from "./record_life.ts";

/** What {@linkcode bringForward} needs. */
export interface BringForwardOptions {
  /** The time of the start, ms since the epoch. */
  now: number;
  /** Events due later than this are made due now. */
  latestDueAt: number;
  /** Events moved at most. */
  limit: number;
  /** How long a lease lasts. */
  leaseMs: number;
  /** How long records live: the longer of the dedup TTL and the retention. */
  recordLifeMs: number;
  logger: Logger;
}

/**
 * Makes due now the waiting events due later than `latestDueAt` (the caller passes the longest
 * retry delay and a lease from now: later than any delay this version sets): versions that did not cap delays parked events there, at `Infinity`
 * for a `Retry-After` of 400 nines, where their records would expire before they ran. Each moves
 * in an atomic that checks its entry and its record, renewing the record's life as a retry
 * would. Returns how many moved, at most `limit` (the next start does more).
 */
export async function bringForward(kv: Deno.Kv, options: BringForwardOptions): Promise<number> {
  const { now, latestDueAt, leaseMs, recordLifeMs, logger } = options;
  const far = kv.list<ReadyEntryValue>(
    { prefix: READY_PREFIX, start: readyKey(latestDueAt + 1, "") },
    { limit: options.limit },
  );
  let moved = 0;
  for await (const entry of far) {
    const [id, ...others] = idsOfEntry(entry.value);
    // Only such entries are an event's own (a retry's): shared ones are never due later.
    if (id === undefined || others.length > 0) continue;
    try {
      const stored = await kv.get<KvEventRecord>(eventKey(id));
      const record = stored.value;
      // A lease entry's time is not its record's `dueAt`: only retries' own entries move.
      if (record?.state !== "retrying" || !Object.is(record.dueAt, entry.key[1])) continue;
      const event = await readEvent(kv, record);
      const { readyId: _shared, ...own } = record;
      const next = await renewRecordLife(kv, { ...own, dueAt: now }, event, {
        now,
        leaseMs,
        recordLifeMs,
      });
      const result = await kv.atomic()
        .check(entry, stored)
        .delete(entry.key)
        .set(readyKey(now, id), id)
        .set(eventKey(id), next, { expireIn: remainingLifeMs(next, now) })
        .commit();
      if (result.ok) moved++;
    } catch (error) {
      logger.error("cannot bring back a parked event", { eventId: id, error });
    }
  }
  return moved;
}
