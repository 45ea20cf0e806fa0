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
 * The pages' queries are read in their own modules (`event_query.ts`, `recover_query.ts`), and
 * the overview's chart is counted in `event_rate.ts`; this module wires them to the pages.
 *
 * @module
 */
import type { RateSeries } from "../ops/delivery_rate.ts";
import type { Clock } from "../ops/clock.ts";
import type { AckLatency } from "../ops/service_metrics.ts";
import { HttpError, toHttpError } from "../http/errors.ts";
import type { RouteContext, RouteHandler } from "../http/router.ts";
import { timingSafeEqual } from "../http/secure_compare.ts";
import type { Destination } from "../destinations/declarations.ts";
import type { Deliveries } from "../destinations/deliveries.ts";
import { OPERATOR_PAUSE_REASON } from "../admin/destinations.ts";
import type { Store } from "../store/store.ts";
import { CONSOLE_CSS, CONSOLE_JS } from "./assets.ts";
import { assertCsrfToken, assertSameOrigin, readForm } from "./csrf.ts";
import {
  CONSOLE_PAGE_SIZE,
  eventFilterQuery,
  eventListOptions,
  listEventsForPage,
  withEventTypes,
} from "./event_query.ts";
import { eventRate } from "./event_rate.ts";
import { backTo, noticeOf, withNotice } from "./notices.ts";
import {
  countMatches,
  deadJobsMatching,
  MAX_REPLAY_PER_REQUEST,
  recoverFilter,
  recoverRange,
  walkDeadJobs,
} from "./recover_query.ts";
import { ErrorPage, htmlResponse } from "./layout.tsx";
import { withSecurityHeaders } from "./security_headers.ts";
import { createSessions, isSecureRequest, type Session } from "./session.ts";
import { SignInPage } from "./pages/sign_in.tsx";
import { eventHref, EventsPage } from "./pages/events.tsx";
import { EventPage } from "./pages/event.tsx";
import { destinationHealth, DestinationsPage } from "./pages/destinations.tsx";
import { RecoverPage } from "./pages/recover.tsx";
import { MessagePage } from "./pages/message.tsx";
import { OverviewPage } from "./pages/overview.tsx";

/** Dead letters listed per section of the recover page. */
const RECOVER_LIST_SIZE = 20;
/** Dead jobs shown per destination on the destinations page. */
const LAST_ERRORS_SHOWN = 5;
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
  /** Deliveries recorded per minute by this instance, ending at a time; absent: not shown. */
  deliveryRate?: (now: number) => RateSeries;
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
        eventRate(store, now),
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
        deliveryRate: options.deliveryRate?.(clock.now()),
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
      const query = eventFilterQuery(url.searchParams);
      const listOptions = eventListOptions(url.searchParams, CONSOLE_PAGE_SIZE);
      const found = await listEventsForPage(store, listOptions);
      const filterOnly = new URLSearchParams(
        Object.entries(query).filter(([, value]) => value !== ""),
      );
      const nextHref = found.cursor === undefined
        ? undefined
        : `/console/events?${new URLSearchParams([...filterOnly, ["cursor", found.cursor]])}`;
      return htmlResponse(EventsPage({
        csrf,
        query,
        events: await withEventTypes(store, found.events),
        nextHref,
        liveHref: listOptions.cursor === undefined
          ? `/console/events/live?${filterOnly}`
          : undefined,
        notice: noticeOf(url),
      }));
    }),
    liveEvents: _secured(async (request) => {
      const session = await sessions.verify(request, clock.now());
      if (!session) throw new HttpError(401, "Sign in to the console first");
      const url = new URL(request.url);
      const found = await listEventsForPage(
        store,
        eventListOptions(url.searchParams, CONSOLE_PAGE_SIZE),
      );
      return Response.json({
        events: (await withEventTypes(store, found.events)).map((event) => ({
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
        notice: noticeOf(url),
      }));
    }),
    replayEvent: action(async (form, { params, log }) => {
      const id = params.id ?? "";
      const back = backTo(form, eventHref(id));
      const result = await store.replayEvent(id, clock.now());
      if (result.status === "not_found") {
        throw new HttpError(404, `Event "${id}" is unknown or has expired`);
      }
      if (result.status === "busy") return withNotice(back, "busy");
      log.info("event replayed from the console", { eventId: id });
      options.onReplay?.();
      return withNotice(back, "replayed", 1);
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
        DestinationsPage({ csrf, destinations: views, notice: noticeOf(url) }),
      );
    }),
    pauseDestination: action(async (_form, { params, log }) => {
      const destination = destinationOf(params);
      await options.deliveries.pauses.pause(destination, OPERATOR_PAUSE_REASON);
      log.info("destination paused by an operator", { destination, from: "console" });
      return withNotice("/console/destinations", "paused");
    }),
    resumeDestination: action(async (_form, { params, log }) => {
      const destination = destinationOf(params);
      const result = await options.deliveries.pauses.resume(destination);
      if (result === "declared") return withNotice("/console/destinations", "declared");
      log.info("destination resumed by an operator", { destination, from: "console" });
      return withNotice("/console/destinations", "resumed");
    }),
    replayDeadJobs: action(async (_form, { params, log }) => {
      const destination = destinationOf(params);
      const replayed = await store.replayDeadJobs(destination, clock.now());
      log.info("dead jobs replayed from the console", { destination, replayed });
      if (replayed > 0) options.onJobReplay?.();
      return withNotice("/console/destinations", "replayed", replayed);
    }),
    replayJob: action(async (form, { params, log }) => {
      const destination = destinationOf(params);
      const eventId = params.eventId ?? "";
      const back = backTo(form, eventHref(eventId));
      const result = await store.replayJob(destination, eventId, clock.now());
      if (result.status === "not_found") {
        throw new HttpError(404, `No job of event "${eventId}" to destination "${destination}"`);
      }
      if (result.status === "busy") return withNotice(back, "busy");
      log.info("job replayed from the console", { destination, eventId });
      options.onJobReplay?.();
      return withNotice(back, "replayed", 1);
    }),
    recover: page(async (_request, { csrf, url }) => {
      const filter = recoverFilter(url.searchParams);
      const range = recoverRange(url.searchParams);
      const [deadEvents, deadJobs] = await Promise.all([
        listEventsForPage(store, { ...range, state: "dead", limit: RECOVER_LIST_SIZE }),
        Promise.all(options.destinations.map(async ({ name }) => ({
          destination: name,
          jobs: await deadJobsMatching(store, name, range, RECOVER_LIST_SIZE),
        }))),
      ]);
      const target = url.searchParams.get("confirm");
      let confirmation;
      if (target === "handlers" || (target !== null && declared.has(target))) {
        const { count, atLeast } = await countMatches(store, target, range, clock.now());
        confirmation = { target, count, atLeast };
      }
      return htmlResponse(RecoverPage({
        csrf,
        filter,
        deadEvents: deadEvents.events,
        deadJobs,
        confirmation,
        notice: noticeOf(url),
      }));
    }),
    replayMatching: action(async (form, { log }) => {
      const target = form.get("target") ?? "";
      const range = recoverRange(form);
      const now = clock.now();
      let replayed = 0;
      if (target === "handlers") {
        const found = await listEventsForPage(store, {
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
        ({ replayed } = await walkDeadJobs(store, target, range, now, { dryRun: false }));
        if (replayed > 0) options.onJobReplay?.();
      } else {
        throw new HttpError(400, `Cannot replay: "target" must be "handlers" or a destination`);
      }
      log.info("dead letters replayed from the console", { target, replayed });
      return withNotice("/console/recover", "replayed", replayed);
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
