/**
 * The console's handlers (`/console…`, paths in `src/routes.ts`): pages rendered on the server
 * for operators, beside the JSON admin API and over the same store calls.
 *
 * Every page needs a session (`session.ts`; without one a page redirects to the sign-in page);
 * every POST needs the session, a same-origin request and the session's CSRF token (`csrf.ts`).
 * Every answer, refusals included, carries the console's security headers
 * (`security_headers.ts`). With no admin token there are no handlers at all: `/console` answers
 * 404 like the admin API. The token is never logged; sign-in failures are logged without it.
 *
 * @module
 */
import type { Clock } from "../ops/clock.ts";
import type { AckLatency } from "../ops/service_metrics.ts";
import { HttpError, toHttpError } from "../http/errors.ts";
import type { RouteContext, RouteHandler } from "../http/router.ts";
import { timingSafeEqual } from "../http/secure_compare.ts";
import type { Destination } from "../destinations/declarations.ts";
import type { Deliveries } from "../destinations/deliveries.ts";
import { OPERATOR_PAUSE_REASON } from "../admin/destinations.ts";
import { pageQuery } from "../admin/page_query.ts";
import { EVENT_KINDS, EVENT_STATES } from "../store/event_record.ts";
import { JOB_STATES } from "../store/job_record.ts";
import {
  type EventSummary,
  InvalidCursorError,
  type ListEventsOptions,
  type Store,
} from "../store/store.ts";
import { CONSOLE_CSS, CONSOLE_JS } from "./assets.ts";
import { assertCsrfToken, assertSameOrigin, readForm } from "./csrf.ts";
import { ErrorPage, htmlResponse } from "./layout.tsx";
import { withSecurityHeaders } from "./security_headers.ts";
import { createSessions, isSecureRequest, type Session } from "./session.ts";
import { SignInPage } from "./pages/sign_in.tsx";
import {
  EVENT_FILTER_FIELDS,
  type EventFilterQuery,
  eventHref,
  type EventRow,
  EventsPage,
  typeOfEvent,
} from "./pages/events.tsx";
import { EventPage } from "./pages/event.tsx";
import { destinationHealth, DestinationsPage } from "./pages/destinations.tsx";
import { type RecoverFilter, RecoverPage } from "./pages/recover.tsx";
import { MessagePage } from "./pages/message.tsx";
import { type EventRate, OverviewPage } from "./pages/overview.tsx";

/** Events per page of the events page: one screen's worth, cheap to redraw every poll. */
export const CONSOLE_PAGE_SIZE = 50;
/** Dead letters listed per section of the recover page. */
const RECOVER_LIST_SIZE = 20;
/** Dead jobs shown per destination on the destinations page. */
const LAST_ERRORS_SHOWN = 5;
/** Matches replayed at most by one "replay all" (the rest: press again); also the count's bound. */
export const MAX_REPLAY_PER_REQUEST = 1_000;
/** The overview's chart: the last three hours, a bar a minute. */
const RATE_WINDOW_MS = 3 * 3_600_000;
const RATE_BUCKET_MS = 60_000;
/** Events read at most to draw the chart (the page says "+" beyond). */
const RATE_MAX_EVENTS = 20_000;
/** Waiting groups read for the queue's figures (as the readiness probe's metrics do). */
const QUEUE_READ_LIMIT = 10_000;
/** Waiting jobs read per destination for its backlog (as `GET /admin/destinations`). */
const BACKLOG_READ_LIMIT = 10_000;

/** What {@linkcode createConsoleHandlers} needs. */
export interface ConsoleOptions {
  store: Store;
  /** The token operators sign in with; `undefined` turns the console off (404). */
  adminToken: string | undefined;
  clock: Clock;
  destinations: readonly Destination[];
  deliveries: Pick<Deliveries, "pauses" | "circuitOf">;
  /** `CONSOLE_HIDE_TEXT=on`: message text is never shown. */
  hidesText: boolean;
  /** When this instance last accepted a delivery; `undefined` before the first. */
  lastDeliveryAt: () => number | undefined;
  /** The acknowledgement latency since the start (the service's metrics); absent: not shown. */
  ackLatency?: () => AckLatency;
  /** No delivery for this long shows the silence warning; 0 turns it off. */
  silenceAfterMs: number;
  /** Called after events were replayed, to wake the worker. */
  onReplay?: () => void;
  /** Called after jobs were replayed, to wake the deliverers. */
  onJobReplay?: () => void;
}

/** The console's handlers, one per row of the route table. */
export interface ConsoleHandlers {
  overview: RouteHandler;
  signInPage: RouteHandler;
  signIn: RouteHandler;
  signOut: RouteHandler;
  stylesheet: RouteHandler;
  script: RouteHandler;
  events: RouteHandler;
  liveEvents: RouteHandler;
  event: RouteHandler;
  replayEvent: RouteHandler;
  destinations: RouteHandler;
  pauseDestination: RouteHandler;
  resumeDestination: RouteHandler;
  replayDeadJobs: RouteHandler;
  replayJob: RouteHandler;
  recover: RouteHandler;
  replayMatching: RouteHandler;
  message: RouteHandler;
}

/** What a signed-in handler gets. */
interface _Signed {
  session: Session;
  csrf: string;
  url: URL;
}

/** The notices an action redirects with (`?notice=`), by code: the text is never taken from a URL. */
const _NOTICES: Record<string, (count: string) => string> = {
  replayed: (count) => `Replayed: ${count}.`,
  busy: () => "A worker is handling it now: try again in a moment.",
  paused: () => "Paused: its jobs are kept and wait until it is resumed.",
  resumed: () => "Resumed.",
  declared: () => "It is declared paused: change its declaration and restart to resume it.",
};

/**
 * The console's handlers, or `undefined` when `adminToken` is undefined (the console is off).
 */
export async function createConsoleHandlers(
  options: ConsoleOptions,
): Promise<ConsoleHandlers | undefined> {
  const { store, adminToken, clock } = options;
  if (adminToken === undefined) return undefined;
  const sessions = await createSessions(adminToken);
  const startedAt = clock.now();
  const declared = new Set(options.destinations.map((d) => d.name));

  /** A page: with a session, else a redirect to the sign-in page. */
  const page = (
    handler: (request: Request, signed: _Signed, context: RouteContext) => Promise<Response>,
  ): RouteHandler =>
    _secured(async (request, context) => {
      const session = await sessions.verify(request, clock.now());
      if (!session) return _redirect("/console/sign-in");
      const csrf = await sessions.csrfToken(session);
      return handler(request, { session, csrf, url: new URL(request.url) }, context);
    });
  /** A POST: a session, the same origin, the CSRF token; then a redirect (POST/redirect/GET). */
  const action = (
    handler: (form: URLSearchParams, context: RouteContext) => Promise<string>,
  ): RouteHandler =>
    _secured(async (request, context) => {
      const session = await sessions.verify(request, clock.now());
      if (!session) throw new HttpError(403, "Refused: sign in to the console first");
      assertSameOrigin(request);
      const form = await readForm(request);
      assertCsrfToken(form, await sessions.csrfToken(session));
      return _redirect(await handler(form, context));
    });
  const destinationOf = (params: Record<string, string>): string => {
    const name = params.name ?? "";
    if (!declared.has(name)) throw new HttpError(404, `Destination "${name}" is not declared`);
    return name;
  };

  return {
    overview: page(async (_request, { csrf }) => {
      const now = clock.now();
      const [rate, queue, dead, destinations] = await Promise.all([
        _eventRate(store, now),
        store.queueFigures(now, QUEUE_READ_LIMIT),
        store.listEvents({ state: "dead", limit: MAX_REPLAY_PER_REQUEST }),
        Promise.all(options.destinations.map(async ({ name }) => {
          const [pause, backlog] = await Promise.all([
            options.deliveries.pauses.of(name),
            store.jobFigures(name, { now, limit: BACKLOG_READ_LIMIT }),
          ]);
          const circuit = options.deliveries.circuitOf(name);
          return { name, health: destinationHealth({ pause, circuit, backlog }), due: backlog.due };
        })),
      ]);
      const last = options.lastDeliveryAt();
      const quietMs = now - (last ?? startedAt);
      const isSilent = options.silenceAfterMs > 0 && quietMs > options.silenceAfterMs;
      return htmlResponse(OverviewPage({
        csrf,
        rate,
        queue,
        dead: dead.events.length,
        deadAtLeast: dead.cursor !== undefined,
        silence: isSilent
          ? `No delivery has arrived for ${Math.round(quietMs / 60_000)} min ` +
            `(SILENCE_AFTER_MS): check Meta's webhook subscription, URL and certificate ` +
            `(deno task doctor)`
          : undefined,
        lastDeliveryAt: last,
        ackLatency: options.ackLatency?.(),
        destinations,
      }));
    }),
    signInPage: _secured(async (request) => {
      const session = await sessions.verify(request, clock.now());
      return session ? _redirect("/console") : htmlResponse(SignInPage({}));
    }),
    signIn: _secured(async (request, { log }) => {
      assertSameOrigin(request);
      const form = await readForm(request);
      const token = form.get("token") ?? "";
      if (!timingSafeEqual(token, adminToken)) {
        log.warn("console sign-in refused", { reason: "wrong token" });
        return htmlResponse(SignInPage({ error: "That is not the admin token." }), 401);
      }
      const isSecure = isSecureRequest(request);
      const { setCookie } = await sessions.issue(clock.now(), isSecure);
      log.info("console signed in");
      const response = _redirect("/console");
      response.headers.set("Set-Cookie", setCookie);
      return response;
    }),
    signOut: action(() => Promise.resolve("/console/sign-in")),
    stylesheet: _asset(CONSOLE_CSS, "text/css; charset=utf-8"),
    script: _asset(CONSOLE_JS, "text/javascript; charset=utf-8"),
    events: page(async (_request, { csrf, url }) => {
      const query = _filterQuery(url.searchParams);
      const listOptions = _eventListOptions(url.searchParams, CONSOLE_PAGE_SIZE);
      const found = await _listEvents(store, listOptions);
      const filterOnly = new URLSearchParams(
        Object.entries(query).filter(([, value]) => value !== ""),
      );
      const nextHref = found.cursor === undefined
        ? undefined
        : `/console/events?${new URLSearchParams([...filterOnly, ["cursor", found.cursor]])}`;
      return htmlResponse(EventsPage({
        csrf,
        query,
        events: await _withTypes(store, found.events),
        nextHref,
        liveHref: listOptions.cursor === undefined
          ? `/console/events/live?${filterOnly}`
          : undefined,
        notice: _notice(url),
      }));
    }),
    liveEvents: _secured(async (request) => {
      const session = await sessions.verify(request, clock.now());
      if (!session) throw new HttpError(401, "Sign in to the console first");
      const url = new URL(request.url);
      const found = await _listEvents(
        store,
        _eventListOptions(url.searchParams, CONSOLE_PAGE_SIZE),
      );
      return Response.json({
        events: (await _withTypes(store, found.events)).map((event) => ({
          ...event,
          href: eventHref(event.id),
        })),
      });
    }),
    event: page(async (_request, { csrf, url }, { params }) => {
      const id = params.id ?? "";
      const stored = await store.getEvent(id);
      if (!stored) throw new HttpError(404, `Event "${id}" is unknown or has expired`);
      const jobs = await store.getJobs(id);
      const isWaiting = jobs.some((job) => job.state !== "delivered" && job.state !== "dead");
      return htmlResponse(EventPage({
        csrf,
        record: stored.record,
        event: stored.event,
        jobs,
        isDone: stored.record.state === "done" && !isWaiting,
        hidesText: options.hidesText,
        notice: _notice(url),
      }));
    }),
    replayEvent: action(async (form, { params, log }) => {
      const id = params.id ?? "";
      const back = _backTo(form, eventHref(id));
      const result = await store.replayEvent(id, clock.now());
      if (result.status === "not_found") {
        throw new HttpError(404, `Event "${id}" is unknown or has expired`);
      }
      if (result.status === "busy") return _withNotice(back, "busy");
      log.info("event replayed from the console", { eventId: id });
      options.onReplay?.();
      return _withNotice(back, "replayed", 1);
    }),
    destinations: page(async (_request, { csrf, url }) => {
      const now = clock.now();
      const views = await Promise.all(options.destinations.map(async (destination) => {
        const { name } = destination;
        const [pause, backlog, dead] = await Promise.all([
          options.deliveries.pauses.of(name),
          store.jobFigures(name, { now, limit: BACKLOG_READ_LIMIT }),
          store.listJobs(name, { state: "dead", limit: LAST_ERRORS_SHOWN }),
        ]);
        const { origin, pathname } = new URL(destination.url);
        return {
          name,
          url: origin + pathname,
          pause,
          circuit: options.deliveries.circuitOf(name),
          backlog,
          deadJobs: dead.jobs,
          hasMoreDead: dead.cursor !== undefined,
        };
      }));
      return htmlResponse(
        DestinationsPage({ csrf, destinations: views, notice: _notice(url) }),
      );
    }),
    pauseDestination: action(async (_form, { params, log }) => {
      const destination = destinationOf(params);
      await options.deliveries.pauses.pause(destination, OPERATOR_PAUSE_REASON);
      log.info("destination paused by an operator", { destination, from: "console" });
      return _withNotice("/console/destinations", "paused");
    }),
    resumeDestination: action(async (_form, { params, log }) => {
      const destination = destinationOf(params);
      const result = await options.deliveries.pauses.resume(destination);
      if (result === "declared") return _withNotice("/console/destinations", "declared");
      log.info("destination resumed by an operator", { destination, from: "console" });
      return _withNotice("/console/destinations", "resumed");
    }),
    replayDeadJobs: action(async (_form, { params, log }) => {
      const destination = destinationOf(params);
      const replayed = await store.replayDeadJobs(destination, clock.now());
      log.info("dead jobs replayed from the console", { destination, replayed });
      if (replayed > 0) options.onJobReplay?.();
      return _withNotice("/console/destinations", "replayed", replayed);
    }),
    replayJob: action(async (form, { params, log }) => {
      const destination = destinationOf(params);
      const eventId = params.eventId ?? "";
      const back = _backTo(form, eventHref(eventId));
      const result = await store.replayJob(destination, eventId, clock.now());
      if (result.status === "not_found") {
        throw new HttpError(404, `No job of event "${eventId}" to destination "${destination}"`);
      }
      if (result.status === "busy") return _withNotice(back, "busy");
      log.info("job replayed from the console", { destination, eventId });
      options.onJobReplay?.();
      return _withNotice(back, "replayed", 1);
    }),
    recover: page(async (_request, { csrf, url }) => {
      const filter = _recoverFilter(url.searchParams);
      const range = _recoverRange(url.searchParams);
      const [deadEvents, deadJobs] = await Promise.all([
        _listEvents(store, { ...range, state: "dead", limit: RECOVER_LIST_SIZE }),
        Promise.all(options.destinations.map(async ({ name }) => ({
          destination: name,
          jobs: await _deadJobsMatching(store, name, range, RECOVER_LIST_SIZE),
        }))),
      ]);
      const target = url.searchParams.get("confirm");
      let confirmation;
      if (target === "handlers" || (target !== null && declared.has(target))) {
        const { count, atLeast } = await _countMatches(store, target, range, clock.now());
        confirmation = { target, count, atLeast };
      }
      return htmlResponse(RecoverPage({
        csrf,
        filter,
        deadEvents: deadEvents.events,
        deadJobs,
        confirmation,
        notice: _notice(url),
      }));
    }),
    replayMatching: action(async (form, { log }) => {
      const target = form.get("target") ?? "";
      const range = _recoverRange(form);
      const now = clock.now();
      let replayed = 0;
      if (target === "handlers") {
        const found = await _listEvents(store, {
          ...range,
          state: "dead",
          limit: MAX_REPLAY_PER_REQUEST,
        });
        for (const event of found.events) {
          const result = await store.replayEvent(event.id, now);
          if (result.status === "replayed") replayed++;
        }
        if (replayed > 0) options.onReplay?.();
      } else if (declared.has(target)) {
        let cursor: string | undefined;
        do {
          const outcome = await store.replayJobs(target, {
            ...range,
            now,
            state: "dead",
            limit: MAX_REPLAY_PER_REQUEST - replayed,
            ...(cursor === undefined ? {} : { cursor }),
          });
          replayed += outcome.replayed;
          cursor = outcome.cursor;
        } while (cursor !== undefined && replayed < MAX_REPLAY_PER_REQUEST);
        if (replayed > 0) options.onJobReplay?.();
      } else {
        throw new HttpError(400, `Cannot replay: "target" must be "handlers" or a destination`);
      }
      log.info("dead letters replayed from the console", { target, replayed });
      return _withNotice("/console/recover", "replayed", replayed);
    }),
    message: page(async (_request, { csrf, url }) => {
      const wamid = url.searchParams.get("wamid")?.trim() || undefined;
      if (wamid === undefined) return htmlResponse(MessagePage({ csrf }));
      const status = await store.getMessageStatus(wamid.slice(0, 512));
      return htmlResponse(MessagePage({ csrf, wamid, status }), status ? 200 : 404);
    }),
  };
}

/**
 * Wraps a console handler: every answer gets the security headers, and a refusal becomes an
 * HTML page with its status (the JSON of the admin API would be unreadable in a browser).
 */
function _secured(handler: RouteHandler): RouteHandler {
  return async (request, context) => {
    try {
      return withSecurityHeaders(await handler(request, context));
    } catch (error) {
      const httpError = toHttpError(error);
      if (httpError.status >= 500) throw error;
      const response = htmlResponse(
        ErrorPage({ status: httpError.status, reason: httpError.reason }),
        httpError.status,
      );
      for (const [name, value] of Object.entries(httpError.headers)) {
        response.headers.set(name, value);
      }
      return withSecurityHeaders(response);
    }
  };
}

function _asset(text: string, type: string): RouteHandler {
  return () =>
    withSecurityHeaders(
      new Response(text, {
        headers: { "Content-Type": type, "Cache-Control": "public, max-age=300" },
      }),
      true,
    );
}

function _redirect(location: string): Response {
  return new Response(null, { status: 303, headers: { Location: location } });
}

/** `path` with a notice code (and a count) for the page it redirects to. */
function _withNotice(path: string, code: string, count?: number): string {
  const query = new URLSearchParams({ notice: code });
  if (count !== undefined) query.set("count", String(count));
  return `${path}${path.includes("?") ? "&" : "?"}${query}`;
}

/** The notice a page shows, from its code: unknown codes show nothing. */
function _notice(url: URL): string | undefined {
  const code = url.searchParams.get("notice") ?? "";
  const count = (url.searchParams.get("count") ?? "").replace(/\D/g, "").slice(0, 7) || "0";
  return Object.hasOwn(_NOTICES, code) ? _NOTICES[code]!(count) : undefined;
}

/** The form's `back` when it is a console page, else `fallback`: never a redirect elsewhere. */
function _backTo(form: URLSearchParams, fallback: string): string {
  const back = form.get("back") ?? "";
  return /^\/console(\/[A-Za-z0-9%._~:@!$&'()*+,;=-]*)*$/.test(back) ? back : fallback;
}

/** The events page's filter as typed, for the form. */
function _filterQuery(query: URLSearchParams): EventFilterQuery {
  const typed: EventFilterQuery = {};
  for (const field of EVENT_FILTER_FIELDS) typed[field] = (query.get(field) ?? "").slice(0, 256);
  return typed;
}

/** Reads the events page's query into the store's options (400 for a bad value). */
function _eventListOptions(query: URLSearchParams, limit: number): ListEventsOptions {
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
  const from = page.time("from");
  if (from !== undefined) options.receivedFrom = from;
  const to = page.time("to");
  if (to !== undefined) options.receivedTo = to;
  const cursor = page.cursor();
  if (cursor !== undefined) options.cursor = cursor;
  return options;
}

/**
 * The rows with their type (`typeOfEvent`), reading each event back: one page's worth (at most
 * {@linkcode CONSOLE_PAGE_SIZE}), since the store's summaries do not carry it.
 */
async function _withTypes(store: Store, events: readonly EventSummary[]): Promise<EventRow[]> {
  const stored = await Promise.all(events.map((event) => store.getEvent(event.id)));
  return events.map((event, n) => {
    const type = stored[n] ? typeOfEvent(stored[n].event) : undefined;
    return type === undefined ? event : { ...event, type };
  });
}

async function _listEvents(store: Store, options: ListEventsOptions) {
  return await store.listEvents(options).catch((error) => {
    if (error instanceof InvalidCursorError) throw new HttpError(400, error.message);
    throw error;
  });
}

function _recoverFilter(query: URLSearchParams): RecoverFilter {
  const text = (name: string): string | undefined => query.get(name)?.slice(0, 64) || undefined;
  return { kind: text("kind"), from: text("from"), to: text("to") };
}

/** The recover filter as store options: kind and time of reception. */
function _recoverRange(
  query: URLSearchParams,
): Pick<ListEventsOptions, "kind" | "receivedFrom" | "receivedTo"> {
  const page = pageQuery(query, "dead letters");
  const range: Pick<ListEventsOptions, "kind" | "receivedFrom" | "receivedTo"> = {};
  const kind = page.oneOf("kind", EVENT_KINDS);
  if (kind !== undefined) range.kind = kind;
  const from = page.time("from");
  if (from !== undefined) range.receivedFrom = from;
  const to = page.time("to");
  if (to !== undefined) range.receivedTo = to;
  return range;
}

/** Dead jobs of `destination` matching `range`, newest first, at most `limit`. */
async function _deadJobsMatching(
  store: Store,
  destination: string,
  range: Pick<ListEventsOptions, "kind" | "receivedFrom" | "receivedTo">,
  limit: number,
) {
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

/** How many dead letters of `target` match `range`, counted up to the replay's bound. */
async function _countMatches(
  store: Store,
  target: string,
  range: Pick<ListEventsOptions, "kind" | "receivedFrom" | "receivedTo">,
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
  let count = 0;
  let cursor: string | undefined;
  do {
    const outcome = await store.replayJobs(target, {
      ...range,
      now,
      state: "dead",
      limit: MAX_REPLAY_PER_REQUEST - count,
      dryRun: true,
      ...(cursor === undefined ? {} : { cursor }),
    });
    count += outcome.matched;
    cursor = outcome.cursor;
  } while (cursor !== undefined && count < MAX_REPLAY_PER_REQUEST);
  return { count, atLeast: cursor !== undefined };
}

/** Events per minute over the chart's window, read from the event log. */
async function _eventRate(store: Store, now: number): Promise<EventRate> {
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
