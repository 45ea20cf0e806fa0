/**
 * The recover page's query (`/console/recover`): its filter as typed, the same filter read into
 * the store's range (kind and time of reception), the dead jobs that match it, and how many dead
 * letters a "replay all" would replay, counted up to {@linkcode MAX_REPLAY_PER_REQUEST}.
 *
 * @module
 */
import { pageQuery } from "../admin/page_query.ts";
import { EVENT_KINDS } from "../store/event_record.ts";
import type { JobRecord, ListEventsOptions, Store } from "../store/store.ts";
import type { RecoverFilter } from "./pages/recover.tsx";

/** Matches replayed at most by one "replay all" (the rest: press again); also the count's bound. */
export const MAX_REPLAY_PER_REQUEST = 1_000;

/** The recover page's filter as store options: kind and time of reception. */
export type RecoverRange = Pick<ListEventsOptions, "kind" | "receivedFrom" | "receivedTo">;

/** The recover page's filter as typed, for the form (each field cut to 64 characters). */
export function recoverFilter(query: URLSearchParams): RecoverFilter {
  const text = (name: string): string | undefined => query.get(name)?.slice(0, 64) || undefined;
  return { kind: text("kind"), from: text("from"), to: text("to") };
}

/**
 * Reads the recover filter (a page's query or a form) into store options.
 *
 * @throws {HttpError} 400 for a kind or time that cannot be read
 */
export function recoverRange(query: URLSearchParams): RecoverRange {
  const page = pageQuery(query, "dead letters");
  const range: RecoverRange = {};
  const kind = page.oneOf("kind", EVENT_KINDS);
  if (kind !== undefined) range.kind = kind;
  Object.assign(range, page.receivedRange());
  return range;
}

/** Dead jobs of `destination` matching `range`, newest first, at most `limit`. */
export async function deadJobsMatching(
  store: Store,
  destination: string,
  range: RecoverRange,
  limit: number,
): Promise<JobRecord[]> {
  if (
    range.kind === undefined && range.receivedFrom === undefined && range.receivedTo === undefined
  ) {
    return (await store.listJobs(destination, { state: "dead", limit })).jobs;
  }
  const events = await store.listEvents({ ...range, jobState: "dead", limit: limit * 4 });
  const jobs = await Promise.all(events.events.map((event) => store.getJobs(event.id)));
  return jobs.flat().filter((job) => job.destination === destination && job.state === "dead")
    .slice(0, limit);
}

/**
 * How many dead letters of `target` (`"handlers"` or a destination) match `range`, counted up to
 * {@linkcode MAX_REPLAY_PER_REQUEST}; `atLeast` when the count stopped at that bound.
 */
export async function countMatches(
  store: Store,
  target: string,
  range: RecoverRange,
  now: number,
): Promise<{ count: number; atLeast: boolean }> {
  if (target === "handlers") {
    const found = await store.listEvents({
      ...range,
      state: "dead",
      limit: MAX_REPLAY_PER_REQUEST,
    });
    return { count: found.events.length, atLeast: found.cursor !== undefined };
  }
  const { matched, atLeast } = await walkDeadJobs(store, target, range, now, { dryRun: true });
  return { count: matched, atLeast };
}

/**
 * Walks `destination`'s dead jobs that match `range` with `Store.replayJobs`, a page at a time,
 * until {@linkcode MAX_REPLAY_PER_REQUEST} of them are replayed (or, with `dryRun`, counted):
 * how many matched and were replayed, and `atLeast` when more may match.
 */
export async function walkDeadJobs(
  store: Store,
  destination: string,
  range: RecoverRange,
  now: number,
  { dryRun }: { dryRun: boolean },
): Promise<{ matched: number; replayed: number; atLeast: boolean }> {
  let matched = 0;
  let replayed = 0;
  let cursor: string | undefined;
  do {
    const done = dryRun ? matched : replayed;
    const outcome = await store.replayJobs(destination, {
      ...range,
      now,
      state: "dead",
      limit: MAX_REPLAY_PER_REQUEST - done,
      ...(dryRun ? { dryRun } : {}),
      ...(cursor === undefined ? {} : { cursor }),
    });
    matched += outcome.matched;
    replayed += outcome.replayed;
    cursor = outcome.cursor;
  } while (cursor !== undefined && (dryRun ? matched : replayed) < MAX_REPLAY_PER_REQUEST);
  return { matched, replayed, atLeast: cursor !== undefined };
}
