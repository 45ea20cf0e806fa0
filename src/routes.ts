/**
 * The service's route table: every method and path it answers, with its handler, in one place and
 * in the order of the README's "Endpoints" table. The handlers are built by their modules and
 * wired in by `app.ts`; the router (`http/router.ts`) answers HEAD with a GET row's handler, 405
 * for another method on a known path and 404 for any path not listed here.
 *
 * @module
 */
import type { AdminHandlers } from "./admin/events.ts";
import type { DestinationHandlers } from "./admin/destinations.ts";
import type { JobHandlers } from "./admin/jobs.ts";
import type { ConsoleHandlers } from "./console/handlers.ts";
import type { Route, RouteHandler } from "./http/router.ts";
import type { HealthHandlers } from "./ops/health.ts";

/** The handlers of every endpoint, as their modules build them. */
export interface ServiceHandlers {
  /** Meta's webhook: the handshake (`webhook/handshake.ts`), deliveries (`webhook/intake.ts`). */
  webhook: { handshake: RouteHandler; intake: RouteHandler };
  /** `createHealthHandlers` (`ops/health.ts`). */
  health: HealthHandlers;
  /** `createMetricsHandler` (`ops/metrics_endpoint.ts`). */
  metrics: RouteHandler;
  /** `createAdminHandlers` (`admin/events.ts`); `undefined` without an admin token. */
  admin: AdminHandlers | undefined;
  /** `createDestinationHandlers` (`admin/destinations.ts`); `undefined` without an admin token. */
  destinations: DestinationHandlers | undefined;
  /** `createJobHandlers` (`admin/jobs.ts`); `undefined` without an admin token. */
  jobs: JobHandlers | undefined;
  /** `createMessageStatusHandler` (`admin/messages.ts`); `undefined` without an admin token. */
  messageStatus: RouteHandler | undefined;
  /**
   * `createFlowsEndpoint` (`flows/endpoint.ts`) on `FLOWS_PATH`; `undefined` without a Flows
   * private key.
   */
  flows?: { path: string; exchange: RouteHandler } | undefined;
  /** `createDoctorHandler` (`admin/doctor.ts`); `undefined` without an admin token. */
  doctor: RouteHandler | undefined;
  /** `createWindowHandler` (`admin/windows.ts`); `undefined` without an admin token. */
  conversationWindow: RouteHandler | undefined;
  /** `createMediaHandler` (`admin/media.ts`); `undefined` without an admin token. */
  media?: RouteHandler | undefined;
  /** `createConsoleHandlers` (`console/handlers.ts`); `undefined` without an admin token. */
  console?: ConsoleHandlers | undefined;
}

/** A row of the table; one whose handler is `undefined` is off. */
interface _Row {
  method: Route["method"];
  path: string;
  handler: RouteHandler | undefined;
}

/**
 * The route table. Rows whose handler is `undefined` (the admin API without `ADMIN_TOKEN`, the
 * Flows endpoint without a private key) are left out, so their paths answer 404 like any unknown
 * path.
 */
export function serviceRoutes(handlers: ServiceHandlers): Route[] {
  const {
    webhook,
    health,
    metrics,
    admin,
    destinations,
    jobs,
    messageStatus,
    media,
    conversationWindow,
    doctor,
    flows,
    console,
  } = handlers;
  const table: _Row[] = [
    { method: "GET", path: "/webhook/whatsapp", handler: webhook.handshake },
    { method: "POST", path: "/webhook/whatsapp", handler: webhook.intake },
    { method: "GET", path: "/healthz", handler: health.healthz },
    { method: "GET", path: "/readyz", handler: health.readyz },
    { method: "GET", path: "/metrics", handler: metrics },
    { method: "GET", path: "/admin/events", handler: admin?.listEvents },
    { method: "GET", path: "/admin/events/:id", handler: admin?.getEvent },
    { method: "POST", path: "/admin/events/:id/replay", handler: admin?.replayEvent },
    { method: "POST", path: "/admin/dead-letters/replay", handler: admin?.replayDeadLetters },
    { method: "GET", path: "/admin/destinations", handler: destinations?.listDestinations },
    {
      method: "POST",
      path: "/admin/destinations/:name/pause",
      handler: destinations?.pauseDestination,
    },
    {
      method: "POST",
      path: "/admin/destinations/:name/resume",
      handler: destinations?.resumeDestination,
    },
    { method: "GET", path: "/admin/destinations/:name/jobs", handler: jobs?.listJobs },
    { method: "POST", path: "/admin/destinations/:name/jobs/replay", handler: jobs?.replayJobs },
    {
      method: "POST",
      path: "/admin/destinations/:name/jobs/:eventId/replay",
      handler: jobs?.replayJob,
    },
    {
      method: "POST",
      path: "/admin/destinations/:name/dead-jobs/replay",
      handler: jobs?.replayDeadJobs,
    },
    { method: "GET", path: "/admin/messages/:wamid", handler: messageStatus },
    { method: "GET", path: "/admin/media/:id", handler: media },
    {
      method: "GET",
      path: "/admin/conversations/:business/:user/window",
      handler: conversationWindow,
    },
    { method: "GET", path: "/admin/doctor", handler: doctor },
    { method: "GET", path: "/console", handler: console?.overview },
    { method: "GET", path: "/console/sign-in", handler: console?.signInPage },
    { method: "POST", path: "/console/sign-in", handler: console?.signIn },
    { method: "POST", path: "/console/sign-out", handler: console?.signOut },
    { method: "GET", path: "/console/assets/console.css", handler: console?.stylesheet },
    { method: "GET", path: "/console/assets/console.js", handler: console?.script },
    { method: "GET", path: "/console/events", handler: console?.events },
    { method: "GET", path: "/console/events/live", handler: console?.liveEvents },
    { method: "GET", path: "/console/events/:id", handler: console?.event },
    { method: "POST", path: "/console/events/:id/replay", handler: console?.replayEvent },
    { method: "GET", path: "/console/destinations", handler: console?.destinations },
    {
      method: "POST",
      path: "/console/destinations/:name/pause",
      handler: console?.pauseDestination,
    },
    {
      method: "POST",
      path: "/console/destinations/:name/resume",
      handler: console?.resumeDestination,
    },
    {
      method: "POST",
      path: "/console/destinations/:name/dead-jobs/replay",
      handler: console?.replayDeadJobs,
    },
    {
      method: "POST",
      path: "/console/destinations/:name/jobs/:eventId/replay",
      handler: console?.replayJob,
    },
    { method: "GET", path: "/console/recover", handler: console?.recover },
    { method: "POST", path: "/console/recover/replay", handler: console?.replayMatching },
    { method: "GET", path: "/console/messages", handler: console?.message },
    { method: "POST", path: flows?.path ?? "/flows", handler: flows?.exchange },
  ];
  return table.filter((row): row is Route => row.handler !== undefined);
}
