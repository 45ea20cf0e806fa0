/**
 * The overview's chart: events received per minute over the last three hours, counted from the
 * event log, with a bound on how many events are read to draw it.
 *
 * @module
 */
import type { Store } from "../store/store.ts";
import type { EventRate } from "./pages/overview.tsx";

/** The overview's chart: the last three hours, a bar a minute. */
const RATE_WINDOW_MS = 3 * 3_600_000;
const RATE_BUCKET_MS = 60_000;
/** Events read at most to draw the chart (the page says "+" beyond). */
const RATE_MAX_EVENTS = 20_000;

/**
 * Events per minute over the chart's window ending at `now`, read from the event log; `isPartial`
 * when the reading stopped at its bound, so the counts are a lower bound.
 */
export async function eventRate(store: Store, now: number): Promise<EventRate> {
  const startMs = Math.floor((now - RATE_WINDOW_MS) / RATE_BUCKET_MS) * RATE_BUCKET_MS +
    RATE_BUCKET_MS;
  const counts = new Array<number>(RATE_WINDOW_MS / RATE_BUCKET_MS).fill(0);
  let read = 0;
  let cursor: string | undefined;
  do {
    const page = await store.listEvents({
      receivedFrom: startMs,
      limit: 1_000,
      ...(cursor === undefined ? {} : { cursor }),
    });
    for (const event of page.events) {
      const bucket = Math.floor((Date.parse(event.receivedAt) - startMs) / RATE_BUCKET_MS);
      if (bucket >= 0 && bucket < counts.length) counts[bucket]!++;
    }
    read += page.events.length;
    cursor = page.cursor;
  } while (cursor !== undefined && read < RATE_MAX_EVENTS);
  return { startMs, bucketMs: RATE_BUCKET_MS, counts, isPartial: cursor !== undefined };
}
