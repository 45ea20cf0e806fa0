/**
 * The admin API's event log and replays, for operators: the handlers of `/admin/events…` and
 * `/admin/dead-letters/replay` (their paths are in `src/routes.ts`).
 *
 * Every handler needs `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time. With no
 * admin token configured there are no handlers at all, so the paths answer 404 like any unknown
 * path. Times are ISO 8601 strings (UTC). Event ids hold `:`, `.` and `=` and may hold `/` or `+`:
 * clients percent-encode them in paths (`encodeURIComponent`); they are decoded once here.
 *
 * @module
 */
import type { Clock } from "../ops/clock.ts";
import type { WebhookEvent } from "../events/events.ts";
import { HttpError } from "../http/errors.ts";
import { historyView, isoTime, pageQuery } from "./page_query.ts";
import type { RouteHandler } from "../http/router.ts";
import { requireAdmin } from "./auth.ts";
import { jobView } from "./jobs.ts";
import {
  currentError,
  EVENT_KINDS,
  EVENT_STATES,
  type EventRecord,
  totalAttempts,
} from "../store/event_record.ts";
import { isReplySent } from "../store/reply_record.ts";
import {
  InvalidCursorError,
  type JobRecord,
  type ListEventsOptions,
  type Store,
} from "../store/store.ts";

/** What {@linkcode createAdminHandlers} needs. */
export interface AdminOptions {
  store: Store;
  /** The bearer token operators send; `undefined` turns the admin API off (404). */
  adminToken: string | undefined;
  clock: Clock;
  /** Called after a replay made events ready, so the app can wake the worker at once. */
  onReplay?: () => void;
  /**
   * The names of the handlers of an event (the dispatcher's), to show the reply records they keep
   * for a message (`replies` in `GET /admin/events/:id`); without it no replies are shown.
   */
  handlersFor?: (event: WebhookEvent) => string[];
  /** The media an event captured (`{ media: […] }`, `admin/media.ts`); none shown without it. */
  mediaOf?: (event: WebhookEvent) => Promise<Record<string, unknown>>;
}

/** The handlers of the admin API's event log and replays. */
export interface AdminHandlers {
  /** `GET /admin/events`: a page of event summaries, newest first. */
  listEvents: RouteHandler;
  /**
   * `GET /admin/events/:id`: one record with its event, its delivery jobs (one per destination),
   * whether it is `done` (handlers succeeded, every job delivered or dead) and, for a message, its
   * replies.
   */
  getEvent: RouteHandler;
  /** `POST /admin/events/:id/replay`: runs one event through its handlers again. */
  replayEvent: RouteHandler;
  /** `POST /admin/dead-letters/replay`: runs every dead-lettered event again. */
  replayDeadLetters: RouteHandler;
}

/**
 * The admin handlers (replies shown by `getEvent` need {@linkcode AdminOptions.handlersFor}), or
 * `undefined` when `adminToken` is undefined: the admin API is then off. Handlers throw
 * {@linkcode HttpError}: 400 for a bad query, 401 (with `WWW-Authenticate`) for a missing or
 * wrong token, 404 for an unknown event, 409 for an event a worker is handling.
 */
export function createAdminHandlers(options: AdminOptions): AdminHandlers | undefined {
  const { store, adminToken, clock } = options;
  if (adminToken === undefined) return undefined;
  const guard = (handler: RouteHandler): RouteHandler => requireAdmin(adminToken, handler);

  return {
    listEvents: guard(async (request) => {
      const page = await store.listEvents(_listOptions(new URL(request.url).searchParams))
        .catch((error) => {
          if (error instanceof InvalidCursorError) throw new HttpError(400, error.message);
          throw error;
        });
      return Response.json(page);
    }),
    getEvent: guard(async (_request, { params }) => {
      const id = params.id ?? "";
      const stored = await store.getEvent(id);
      if (!stored) throw new HttpError(404, `Event "${id}" is unknown or has expired`);
      const [replies, jobs, media] = await Promise.all([
        _repliesOf(store, stored.event, options.handlersFor),
        store.getJobs(id),
        options.mediaOf?.(stored.event) ?? {},
      ]);
      return Response.json({
        ..._recordView(stored.record, stored.event),
        ..._completion(stored.record, jobs),
        ...replies,
        jobs: jobs.map(jobView),
        ...media,
      });
    }),
    replayEvent: guard(async (_request, { params, log }) => {
      const id = params.id ?? "";
      const result = await store.replayEvent(id, clock.now());
      if (result.status === "not_found") {
        throw new HttpError(404, `Event "${id}" is unknown or has expired`);
      }
      if (result.status === "busy") {
        throw new HttpError(409, `Cannot replay event "${id}": a worker is handling it now`);
      }
      log.info("event replayed", { eventId: id });
      options.onReplay?.();
      return Response.json({ replayed: id }, { status: 202 });
    }),
    replayDeadLetters: guard(async (_request, { log }) => {
      const replayed = await store.replayDeadLetters(clock.now());
      log.info("dead letters replayed", { replayed });
      if (replayed > 0) options.onReplay?.();
      return Response.json({ replayed }, { status: 202 });
    }),
  };
}

/** Reads `state`, `kind`, `limit` and `cursor`; an empty parameter counts as absent. */
function _listOptions(query: URLSearchParams): ListEventsOptions {
  const page = pageQuery(query, "events");
  const options: ListEventsOptions = { limit: page.limit() };
  const state = page.oneOf("state", EVENT_STATES);
  if (state !== undefined) options.state = state;
  const kind = page.oneOf("kind", EVENT_KINDS);
  if (kind !== undefined) options.kind = kind;
  const cursor = page.cursor();
  if (cursor !== undefined) options.cursor = cursor;
  return options;
}

/**
 * A record as the API shows it: times as ISO strings, the event whole, no storage details;
 * `attempts` counts every run, replayed ones included, and `lastError` is gone once one succeeded.
 */
function _recordView(record: EventRecord, event: WebhookEvent): Record<string, unknown> {
  const lastError = currentError(record);
  return {
    id: record.id,
    kind: record.kind,
    state: record.state,
    attempts: totalAttempts(record),
    receivedAt: isoTime(record.receivedAt),
    dueAt: record.dueAt === null ? null : isoTime(record.dueAt),
    expiresAt: isoTime(record.expiresAt),
    completedHandlers: record.completedHandlers,
    ...(lastError === undefined ? {} : { lastError }),
    history: historyView(record.history),
    event,
  };
}

/**
 * Whether the event is through: `done` once its handlers succeeded (`state: "done"`) and every
 * delivery job is delivered or dead, with its jobs counted by where they are (`jobCounts`), so
 * an operator sees which part still waits.
 */
function _completion(record: EventRecord, jobs: readonly JobRecord[]): Record<string, unknown> {
  const jobCounts = { delivered: 0, dead: 0, waiting: 0 };
  for (const job of jobs) {
    if (job.state === "delivered" || job.state === "dead") jobCounts[job.state]++;
    else jobCounts.waiting++;
  }
  return { done: record.state === "done" && jobCounts.waiting === 0, jobCounts };
}

/**
 * `{ replies: { [handler]: … } }` for a message whose handlers keep reply records: whether each
 * reply was sent (with Meta's id) or its outcome is unknown (with how many sends may have reached
 * the user). Empty for other events.
 */
async function _repliesOf(
  store: Store,
  event: WebhookEvent,
  handlersFor: ((event: WebhookEvent) => string[]) | undefined,
): Promise<{ replies?: Record<string, unknown> }> {
  if (event.kind !== "message" || handlersFor === undefined) return {};
  const message = event.message;
  if (!("id" in message)) return {}; // a message Meta sent without an id has no replies
  const names = handlersFor(event);
  const records = await Promise.all(
    names.map((handler) => store.getReply({ handler, inboundId: message.id })),
  );
  const replies: Record<string, unknown> = {};
  records.forEach((record, n) => {
    if (record !== null) {
      replies[names[n]!] = isReplySent(record) ? { ...record, outcome: "sent" } : record;
    }
  });
  return { replies };
}
