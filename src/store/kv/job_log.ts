/**
 * The delivery jobs' log: an event's jobs read back, a destination's jobs listed, and jobs
 * replayed (one, or every dead job of a destination) so they are delivered again.
 *
 * @module
 */
import type { JobRecord } from "../job_record.ts";
import { getManyInBatches } from "./get_many.ts";
import { eventKey, jobKey, type KvEventRecord } from "./keys.ts";

/** Every job of event `eventId`, in the order its destinations were given; none when unknown. */
export async function getJobs(kv: Deno.Kv, eventId: string): Promise<JobRecord[]> {
  const record = (await kv.get<KvEventRecord>(eventKey(eventId))).value;
  const destinations = record?.jobs ?? [];
  const entries = await getManyInBatches<JobRecord>(
    kv,
    destinations.map((destination) => jobKey(destination, eventId)),
  );
  return entries.flatMap((entry) => entry.value === null ? [] : [entry.value]);
}
