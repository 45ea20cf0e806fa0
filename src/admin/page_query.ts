/**
 * What the admin API's list endpoints share: reading a page's query (`limit`, a value from a
 * closed set, `cursor`; an empty parameter counts as absent) with one 400 wording, and showing
 * times and attempt histories the same way in every answer.
 *
 * @module
 */
import type { AttemptRecord } from "../store/event_record.ts";
import { clipForReason, HttpError } from "../http/errors.ts";

/** Largest `limit` of a page: a page of summaries or jobs stays well under a megabyte. */
export const MAX_PAGE_LIMIT = 1000;
/** Items listed when the query has no `limit`. */
export const DEFAULT_PAGE_LIMIT = 100;
/** A date and time with a zone (`Z` or `±hh:mm`), so no time is read in the server's zone. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/** A page's query parameters, read on demand; see {@linkcode pageQuery}. */
export interface PageQuery {
  /** `limit`, from 1 to {@linkcode MAX_PAGE_LIMIT}; {@linkcode DEFAULT_PAGE_LIMIT} when absent. */
  limit(): number;
  /** Parameter `name`, which must be one of `allowed` (else a 400 naming them). */
  oneOf<T extends string>(name: string, allowed: readonly T[]): T | undefined;
  /** `cursor`, passed back unread. */
  cursor(): string | undefined;
  /** Parameter `name` as an ISO 8601 time with a date and a zone, in ms since the epoch. */
  time(name: string): number | undefined;
  /** `from` and `to` (times, both included) as a reception range, each only when given. */
  receivedRange(): ReceivedRange;
}

/** A range of reception times, ms since the epoch, both ends included; an end absent is open. */
export interface ReceivedRange {
  receivedFrom?: number;
  receivedTo?: number;
}

/** Reads a page's query: the `what` of its refusals is `"events"` or `"jobs"`. */
export function pageQuery(query: URLSearchParams, what: string): PageQuery {
  const page: PageQuery = {
    /** `limit`, from 1 to {@linkcode MAX_PAGE_LIMIT}; {@linkcode DEFAULT_PAGE_LIMIT} when absent. */
    limit(): number {
      const limit = query.get("limit") || undefined;
      if (limit === undefined) return DEFAULT_PAGE_LIMIT;
      const value = /^\d{1,7}$/.test(limit) ? Number(limit) : NaN;
      if (!(value >= 1 && value <= MAX_PAGE_LIMIT)) {
        throw new HttpError(
          400,
          `Cannot list ${what}: "limit" must be an integer from 1 to ${MAX_PAGE_LIMIT}, got "${
            clipForReason(limit)
          }"`,
        );
      }
      return value;
    },
    /**
     * Parameter `name`, which must be one of `allowed`.
     *
     * @throws {HttpError} 400 naming the parameter, the allowed values and what was sent
     */
    oneOf<T extends string>(name: string, allowed: readonly T[]): T | undefined {
      const value = query.get(name) || undefined;
      if (value === undefined || (allowed as readonly string[]).includes(value)) {
        return value as T | undefined;
      }
      throw new HttpError(
        400,
        `Cannot list ${what}: "${name}" must be one of ${allowed.join(", ")}, got "${
          clipForReason(value)
        }"`,
      );
    },
    /** `cursor`, passed back unread. */
    cursor(): string | undefined {
      return query.get("cursor") || undefined;
    },
    /**
     * Parameter `name` as an ISO 8601 time (`2026-12-04T10:00:00Z`, or with an offset).
     *
     * @throws {HttpError} 400 naming the parameter and what was sent
     */
    time(name: string): number | undefined {
      const value = query.get(name) || undefined;
      if (value === undefined) return undefined;
      const ms = ISO_TIME.test(value) ? Date.parse(value) : NaN;
      if (Number.isNaN(ms)) {
        throw new HttpError(
          400,
          `Cannot list ${what}: "${name}" must be an ISO 8601 time with a zone ` +
            `(2026-12-04T10:00:00Z), got "${clipForReason(value)}"`,
        );
      }
      return ms;
    },
    /** `from` and `to` as a reception range; see {@linkcode PageQuery.time}. */
    receivedRange(): ReceivedRange {
      const range: ReceivedRange = {};
      const from = page.time("from");
      if (from !== undefined) range.receivedFrom = from;
      const to = page.time("to");
      if (to !== undefined) range.receivedTo = to;
      return range;
    },
  };
  return page;
}

/**
 * A time as an ISO string, or `null` for one no `Date` can hold: records written before delays
 * were capped may hold `Infinity` as their `dueAt`, and one bad time must not fail the answer.
 */
export function isoTime(ms: number): string | null {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** An attempt history as the API shows it: times as ISO strings. */
export function historyView(history: readonly AttemptRecord[]): Record<string, unknown>[] {
  return history.map((attempt) => ({
    at: isoTime(attempt.at),
    ms: attempt.ms,
    ...(attempt.error === undefined ? {} : { error: attempt.error }),
  }));
}
