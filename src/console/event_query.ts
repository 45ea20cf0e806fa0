/**
 * The events page's query (`/console/events` and its live JSON): the filter as typed for the
 * form, the same filter read into the store's list options (400 for a bad value), and the rows
 * with their event type, which the store's summaries do not carry.
 *
 * @module
 */
import { HttpError } from "../http/errors.ts";
import { pageQuery } from "../admin/page_query.ts";
import { EVENT_KINDS, EVENT_STATES } from "../store/event_record.ts";
import { JOB_STATES } from "../store/job_record.ts";
import {
  type EventPage,
  type EventSummary,
  InvalidCursorError,
  type ListEventsOptions,
  type Store,
} from "../store/store.ts";
import {
  EVENT_FILTER_FIELDS,
  type EventFilterQuery,
  type EventRow,
  typeOfEvent,
} from "./pages/events.tsx";

/** Events per page of the events page: one screen's worth, cheap to redraw every poll. */
export const CONSOLE_PAGE_SIZE = 50;

/** The events page's filter as typed, for the form (each field cut to 256 characters). */
export function eventFilterQuery(query: URLSearchParams): EventFilterQuery {
  const typed: EventFilterQuery = {};
  for (const field of EVENT_FILTER_FIELDS) typed[field] = (query.get(field) ?? "").slice(0, 256);
  return typed;
}

/**
 * Reads the events page's query into the store's options.
 *
 * @throws {HttpError} 400 for a state, kind, job state or time that cannot be read
 */
export function eventListOptions(query: URLSearchParams, limit: number): ListEventsOptions {
  const page = pageQuery(query, "events");
  const options: ListEventsOptions = { limit };
  const state = page.oneOf("state", EVENT_STATES);
  if (state !== undefined) options.state = state;
  const kind = page.oneOf("kind", EVENT_KINDS);
  if (kind !== undefined) options.kind = kind;
  const jobState = page.oneOf("jobState", JOB_STATES);
  if (jobState !== undefined) options.jobState = jobState;
  const text = (name: string): string | undefined =>
    query.get(name)?.trim().slice(0, 256) || undefined;
  const field = text("field");
  if (field !== undefined) options.field = field;
  const type = text("type");
  if (type !== undefined) options.type = type;
  const business = text("business");
  if (business !== undefined) options.businessNumber = business;
  const party = text("party");
  if (party !== undefined) options.party = party;
  Object.assign(options, page.receivedRange());
  const cursor = page.cursor();
  if (cursor !== undefined) options.cursor = cursor;
  return options;
}

/**
 * The rows with their type (`typeOfEvent`), reading each event back: one page's worth (at most
 * {@linkcode CONSOLE_PAGE_SIZE}), since the store's summaries do not carry it.
 */
export async function withEventTypes(
  store: Store,
  events: readonly EventSummary[],
): Promise<EventRow[]> {
  const stored = await Promise.all(events.map((event) => store.getEvent(event.id)));
  return events.map((event, n) => {
    const type = stored[n] ? typeOfEvent(stored[n].event) : undefined;
    return type === undefined ? event : { ...event, type };
  });
}

/**
 * `store.listEvents(options)` for a page.
 *
 * @throws {HttpError} 400 when the query's cursor is not one the store gave out
 */
export async function listEventsForPage(
  store: Store,
  options: ListEventsOptions,
): Promise<EventPage> {
  return await store.listEvents(options).catch((error) => {
    if (error instanceof InvalidCursorError) throw new HttpError(400, error.message);
    throw error;
  });
}
