/**
 * The admin API's delivery jobs, for operators: see a destination's jobs and recover dead or stuck
 * ones — the handlers of `/admin/destinations/:name/jobs…` and
 * `/admin/destinations/:name/dead-jobs/replay` (their paths are in `src/routes.ts`).
 *
 * Every handler needs `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time. With no
 * admin token configured there are no handlers at all, so the paths answer 404 like any unknown
 * path. A destination not declared answers 404. Times are ISO 8601 strings (UTC). Event ids are
 * percent-encoded in paths (`encodeURIComponent`); they are decoded once by the router.
 *
 * @module
 */
import type { Clock } from "../ops/clock.ts";
import { clipForReason, HttpError } from "../http/errors.ts";
import { historyView, isoTime, pageQuery } from "./page_query.ts";
import type { RouteHandler } from "../http/router.ts";
import { requireAdmin } from "./auth.ts";
import { totalJobAttempts } from "../store/job_record.ts";
import { EVENT_KINDS } from "../store/event_record.ts";
import {
  InvalidCursorError,
  JOB_STATES,
  type JobRecord,
  type ListJobsOptions,
  type ReplayJobsOptions,
  type Store,
} from "../store/store.ts";

/** What {@linkcode createJobHandlers} needs. */
export interface JobAdminOptions {
  store: Store;
  /** The bearer token operators send; `undefined` turns the admin API off (404). */
  adminToken: string | undefined;
  clock: Clock;
  /** The declared destinations' names; any other name answers 404. */
  destinations: readonly string[];
  /** Called after a replay made jobs due, so the app can wake the deliverers at once. */
  onReplay?: () => void;
}

/** The handlers of the admin API's delivery jobs. */
export interface JobHandlers {
  /** `GET /admin/destinations/:name/jobs`: a page of the destination's jobs, newest first. */
  listJobs: RouteHandler;
  /** `POST /admin/destinations/:name/jobs/:eventId/replay`: delivers one event again. */
  replayJob: RouteHandler;
  /** `POST /admin/destinations/:name/dead-jobs/replay`: delivers every dead job again. */
  replayDeadJobs: RouteHandler;
  /**
   * `POST /admin/destinations/:name/jobs/replay?state&kind&from&to&limit&cursor&dryRun`: delivers
   * again every job matching the filter (or counts them, with `dryRun=true`), `limit` per call.
   */
  replayJobs: RouteHandler;
}

/**
 * The job handlers, or `undefined` when `adminToken` is undefined: the admin API is then off.
 * Handlers throw {@linkcode HttpError}: 400 for a bad query, 401 (with `WWW-Authenticate`) for a
 * missing or wrong token, 404 for a destination not declared or an unknown job, 409 for a job a
 * deliverer is delivering now.
 */
export function createJobHandlers(options: JobAdminOptions): JobHandlers | undefined {
  const { store, adminToken, clock } = options;
  if (adminToken === undefined) return undefined;
  const guard = (handler: RouteHandler): RouteHandler => requireAdmin(adminToken, handler);
  const destinationOf = declaredDestination(options.destinations);

  return {
    listJobs: guard(async (request, { params }) => {
      const destination = destinationOf(params);
      const query = _listOptions(new URL(request.url).searchParams);
      const page = await store.listJobs(destination, query).catch((error) => {
        if (error instanceof InvalidCursorError) throw new HttpError(400, error.message);
        throw error;
      });
      return Response.json({
        jobs: page.jobs.map(jobView),
        ...(page.cursor === undefined ? {} : { cursor: page.cursor }),
      });
    }),
    replayJob: guard(async (_request, { params, log }) => {
      const destination = destinationOf(params);
      const eventId = params.eventId ?? "";
      const result = await store.replayJob(destination, eventId, clock.now());
      if (result.status === "not_found") {
        throw new HttpError(
          404,
          `No job of event "${
            clipForReason(eventId)
          }" to destination "${destination}": unknown or expired`,
        );
      }
      if (result.status === "busy") {
        throw new HttpError(
          409,
          `Cannot replay the job of event "${
            clipForReason(eventId)
          }" to destination "${destination}": ` +
            `a deliverer is delivering it now`,
        );
      }
      log.info("job replayed", { destination, eventId });
      options.onReplay?.();
      return Response.json({ replayed: eventId, destination }, { status: 202 });
    }),
    replayDeadJobs: guard(async (_request, { params, log }) => {
      const destination = destinationOf(params);
      const replayed = await store.replayDeadJobs(destination, clock.now());
      log.info("dead jobs replayed", { destination, replayed });
      if (replayed > 0) options.onReplay?.();
      return Response.json({ replayed }, { status: 202 });
    }),
    replayJobs: guard(async (request, { params, log }) => {
      const destination = destinationOf(params);
      const query = new URL(request.url).searchParams;
      const replay = _replayOptions(query, clock.now());
      const outcome = await store.replayJobs(destination, replay).catch((error) => {
        if (error instanceof InvalidCursorError) throw new HttpError(400, error.message);
        throw error;
      });
      if (replay.dryRun) return Response.json(outcome);
      const { matched, replayed, busy } = outcome;
      log.info("jobs replayed", { destination, matched, replayed, busy });
      if (outcome.replayed > 0) options.onReplay?.();
      return Response.json(outcome, { status: 202 });
    }),
  };
}

/**
 * Reads a route's `:name` parameter, which must name one of `destinations`.
 *
 * @throws {HttpError} 404 for a name not declared
 */
export function declaredDestination(
  destinations: readonly string[],
): (params: Record<string, string>) => string {
  const declared = new Set(destinations);
  return (params) => {
    const name = params.name ?? "";
    if (!declared.has(name)) {
      throw new HttpError(404, `Destination "${clipForReason(name)}" is not declared`);
    }
    return name;
  };
}

/**
 * A job as the API shows it: times as ISO strings, no storage details; `attempts` counts every
 * attempt, replayed ones included, and `lastError` is gone once one succeeded.
 */
export function jobView(job: JobRecord): Record<string, unknown> {
  return {
    eventId: job.eventId,
    destination: job.destination,
    state: job.state,
    attempts: totalJobAttempts(job),
    createdAt: isoTime(job.createdAt),
    dueAt: job.dueAt === null ? null : isoTime(job.dueAt),
    expiresAt: isoTime(job.expiresAt),
    ...(job.lastError === undefined ? {} : { lastError: job.lastError }),
    history: historyView(job.history),
  };
}

/**
 * Reads a filtered replay's query: `state`, `kind`, `from` and `to` (ISO 8601 times, both
 * included), `limit`, `cursor` and `dryRun` (`true` or `false`).
 */
function _replayOptions(query: URLSearchParams, now: number): ReplayJobsOptions {
  const page = pageQuery(query, "jobs");
  const options: ReplayJobsOptions = { now, limit: page.limit() };
  const state = page.oneOf("state", JOB_STATES);
  if (state !== undefined) options.state = state;
  const kind = page.oneOf("kind", EVENT_KINDS);
  if (kind !== undefined) options.kind = kind;
  Object.assign(options, page.receivedRange());
  const cursor = page.cursor();
  if (cursor !== undefined) options.cursor = cursor;
  if (page.oneOf("dryRun", ["true", "false"]) === "true") options.dryRun = true;
  return options;
}

/** Reads `state`, `limit` and `cursor`; an empty parameter counts as absent. */
function _listOptions(query: URLSearchParams): ListJobsOptions {
  const page = pageQuery(query, "jobs");
  const options: ListJobsOptions = { limit: page.limit() };
  const state = page.oneOf("state", JOB_STATES);
  if (state !== undefined) options.state = state;
  const cursor = page.cursor();
  if (cursor !== undefined) options.cursor = cursor;
  return options;
}
