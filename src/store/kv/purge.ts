/**
 * Retention in Deno KV: every record is written with `expireIn`, but KV deletes expired entries
 * lazily, so a purge removes the events whose records expired, oldest first, with what they leave
 * behind (parts, a dead letter, their delivery jobs, their timeline entry once it lists no live
 * event; the intake entries their pending jobs share with other events lose their ids).
 *
 * @module
 */
import { commitWithRetry } from "./commit.ts";
import { getManyInBatches } from "./get_many.ts";
import { holdsUnwrittenJob, removeFromEntry, unwrittenJobEntryKey } from "./job_records.ts";
import type { JobRecord } from "../job_record.ts";
import {
  deadLetterKey,
  eventKey,
  eventPartKey,
  idsOfEntry,
  jobDeadKey,
  jobKey,
  jobReadyKey,
  type KvEventRecord,
  legacyDeadLetterKey,
  TIMELINE_PREFIX,
  timelineKey,
} from "./keys.ts";

/**
 * Removes the events whose records expired by `now`, at most `limit`, walking the timeline from
 * its oldest entry up to those received `lifeMs` before `now` (a record lives at least that long
 * after it is received, so later entries hold no expired one). Returns how many were removed.
 */
export async function purgeExpired(
  kv: Deno.Kv,
  options: { now: number; lifeMs: number; limit: number },
): Promise<number> {
  const { now, limit } = options;
  const end = timelineKey(now - options.lifeMs + 1, "");
  let purged = 0;
  for await (const entry of kv.list({ start: TIMELINE_PREFIX, end }, { limit, batchSize: 100 })) {
    if (purged >= limit) break;
    const ids = idsOfEntry(entry.value);
    const records = await getManyInBatches<KvEventRecord>(kv, ids.map(eventKey));
    const expired = records.flatMap((stored) =>
      stored.value !== null && stored.value.expiresAt <= now ? [stored] : []
    );
    const live = records.filter((stored) => stored.value !== null).length - expired.length;
    for (const stored of expired) {
      const record = stored.value!;
      const { keys, sharedEntries } = await _jobKeysOf(kv, record);
      const result = await commitWithRetry(() => {
        const atomic = kv.atomic().check(stored).delete(stored.key)
          .delete(deadLetterKey(record.receivedAt, record.id))
          .delete(legacyDeadLetterKey(record.id));
        for (let n = 0; n < (record.parts ?? 0); n++) atomic.delete(eventPartKey(record.id, n));
        for (const key of keys) atomic.delete(key);
        // Its pending jobs leave the entries they share with other events, which keep theirs.
        for (const entry of sharedEntries) {
          atomic.check(entry);
          removeFromEntry(atomic, entry, new Set([record.id]), now);
        }
        return atomic;
      });
      if (result.ok) purged++;
    }
    if (live === 0) await kv.atomic().check(entry).delete(entry.key).commit();
  }
  return purged;
}

/**
 * Every key of an event's delivery jobs: each job's record, its own due-order entry (where its
 * record says it waits, or where an older intake wrote it alone) and its dead letter; and the
 * intake entries still listing a job of it without a record, to rewrite without it.
 */
async function _jobKeysOf(
  kv: Deno.Kv,
  record: KvEventRecord,
): Promise<{ keys: Deno.KvKey[]; sharedEntries: Deno.KvEntry<unknown>[] }> {
  const destinations = record.jobs ?? [];
  if (destinations.length === 0) return { keys: [], sharedEntries: [] };
  const jobs = await getManyInBatches<JobRecord>(
    kv,
    destinations.map((destination) => jobKey(destination, record.id)),
  );
  const keys: Deno.KvKey[] = [];
  const unwritten: Deno.KvKey[] = [];
  jobs.forEach((entry, i) => {
    const destination = destinations[i]!;
    keys.push(entry.key, jobDeadKey(destination, record.id));
    const dueAt = entry.value?.dueAt;
    if (typeof dueAt === "number") keys.push(jobReadyKey(destination, dueAt, record.id));
    // No record: the job may still be listed where intake wrote it.
    if (entry.value === null) unwritten.push(unwrittenJobEntryKey(record, destination));
  });
  if (record.jobsEntry === undefined) return { keys: [...keys, ...unwritten], sharedEntries: [] };
  const entries = await getManyInBatches(kv, unwritten);
  const sharedEntries = entries.flatMap((entry) =>
    holdsUnwrittenJob(entry, record.id) ? [entry as Deno.KvEntry<unknown>] : []
  );
  return { keys, sharedEntries };
}
