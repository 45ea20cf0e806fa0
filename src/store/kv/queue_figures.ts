/**
 * The ready set's figures for metrics: how many events are due and later, and how long the oldest
 * due one has waited. It reads the store's entry format, so it lives beside the store.
 *
 * @module
 */
import type { QueueFigures } from "../store.ts";
import { idsOfEntry, READY_PREFIX } from "./keys.ts";

/**
 * Reads the ready set (`["ready", dueAt, entryId]`, ordered by `dueAt`): counts the events of at
 * most `limit` entries, split by whether they are due at `now`, and the age of the first (oldest)
 * one.
 */
export async function queueFigures(
  kv: Deno.Kv,
  now: number,
  limit: number,
): Promise<QueueFigures> {
  const figures: QueueFigures = { due: 0, later: 0, oldestDueAgeMs: 0 };
  const batchSize = Math.max(1, Math.min(limit, 500));
  for await (const entry of kv.list({ prefix: READY_PREFIX }, { limit, batchSize })) {
    const dueAt = entry.key[1];
    if (typeof dueAt !== "number") continue;
    if (figures.nextDueAt === undefined) {
      figures.nextDueAt = dueAt;
      if (dueAt <= now) figures.oldestDueAgeMs = now - dueAt;
    }
    const events = idsOfEntry(entry.value).length;
    if (dueAt <= now) figures.due += events;
    else figures.later += events;
  }
  return figures;
}
