/**
 * The ready set's figures for metrics: how many events are due and later, and how long the oldest
 * due one has waited. It reads the store's entry format, so it lives beside the store.
 *
 * @module
 */
import { idsOfEntry, READY_PREFIX } from "./keys.ts";

/**
 * Ready-set entries counted per scrape at most. Counting reads every key, so the bound keeps a
 * scrape under a second on a large backlog; a depth equal to it means "at least this many".
 */
export const READY_SCAN_LIMIT = 100_000;

/** The ready set as a scrape sees it. */
export interface ReadyQueueSnapshot {
  /** Entries due by now: the backlog. */
  due: number;
  /** Entries due later: leases of running events and scheduled retries. */
  later: number;
  /** How long the oldest due entry has waited, in ms; 0 when none is due. */
  oldestDueAgeMs: number;
}

/**
 * Reads the ready set (`["ready", dueAt, entryId]`, ordered by `dueAt`): counts the events of at
 * most `limit` entries, split by whether they are due at `now`, and the age of the first (oldest)
 * one.
 */
export async function readReadyQueue(
  kv: Deno.Kv,
  now: number,
  limit: number = READY_SCAN_LIMIT,
): Promise<ReadyQueueSnapshot> {
  const snapshot: ReadyQueueSnapshot = { due: 0, later: 0, oldestDueAgeMs: 0 };
  let isFirst = true;
  for await (const entry of kv.list({ prefix: READY_PREFIX }, { limit, batchSize: 500 })) {
    const dueAt = entry.key[1];
    if (typeof dueAt !== "number") continue;
    if (isFirst && dueAt <= now) snapshot.oldestDueAgeMs = now - dueAt;
    isFirst = false;
    const events = idsOfEntry(entry.value).length;
    if (dueAt <= now) snapshot.due += events;
    else snapshot.later += events;
  }
  return snapshot;
}
