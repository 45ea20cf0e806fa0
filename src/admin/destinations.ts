/**
 * The admin API's destinations, for operators: each declared destination's state (paused or not
 * and why, its circuit, its backlog), and pausing and resuming one at run time — the handlers of
 * `/admin/destinations` and `/admin/destinations/:name/pause|resume` (paths in `src/routes.ts`).
 *
 * A pause is kept in the store (`destinations/pauses.ts`): it holds in every process and across
 * restarts until resumed. A destination declared `paused` stays paused whatever is resumed here;
 * its declaration must change. Same rules as the rest of the admin API (`admin/events.ts`).
 *
 * @module
 */
import type { Clock } from "../ops/clock.ts";
import { HttpError } from "../http/errors.ts";
import type { RouteHandler } from "../http/router.ts";
import type { Destination } from "../destinations/declarations.ts";
import type { Deliveries } from "../destinations/deliveries.ts";
import type { PauseView } from "../destinations/pauses.ts";
import type { Store } from "../store/store.ts";
import { requireAdmin } from "./auth.ts";
import { declaredDestination } from "./jobs.ts";
import { isoTime } from "./page_query.ts";

/** The reason kept for a pause an operator made through the API. */
export const OPERATOR_PAUSE_REASON = "paused by an operator through the admin API";

/** Waiting jobs read at most per destination for its backlog figures. */
const BACKLOG_READ_LIMIT = 10_000;

/** What {@linkcode createDestinationHandlers} needs. */
export interface DestinationAdminOptions {
  store: Pick<Store, "jobFigures">;
  /** The bearer token operators send; `undefined` turns the admin API off (404). */
  adminToken: string | undefined;
  clock: Clock;
  destinations: readonly Destination[];
  deliveries: Pick<Deliveries, "pauses" | "circuitOf">;
}

/** The handlers of the admin API's destinations. */
export interface DestinationHandlers {
  /** `GET /admin/destinations`: every declared destination's state. */
  listDestinations: RouteHandler;
  /** `POST /admin/destinations/:name/pause`: pauses its deliveries in every process. */
  pauseDestination: RouteHandler;
  /** `POST /admin/destinations/:name/resume`: lifts a run-time pause. */
  resumeDestination: RouteHandler;
}

/**
 * The destination handlers, or `undefined` when `adminToken` is undefined. Handlers throw
 * {@linkcode HttpError}: 401 for a missing or wrong token, 404 for a destination not declared,
 * 409 for resuming a destination declared paused.
 */
export function createDestinationHandlers(
  options: DestinationAdminOptions,
): DestinationHandlers | undefined {
  const { store, adminToken, clock, destinations, deliveries } = options;
  if (adminToken === undefined) return undefined;
  const guard = (handler: RouteHandler): RouteHandler => requireAdmin(adminToken, handler);
  const destinationOf = declaredDestination(destinations.map((d) => d.name));

  return {
    listDestinations: guard(async () => {
      const now = clock.now();
      const views = await Promise.all(destinations.map(async (destination) => {
        const { name } = destination;
        const [pause, backlog] = await Promise.all([
          deliveries.pauses.of(name),
          store.jobFigures(name, { now, limit: BACKLOG_READ_LIMIT }),
        ]);
        return {
          name,
          url: _shownUrl(destination.url),
          paused: _pauseView(pause),
          circuit: deliveries.circuitOf(name) ?? null,
          backlog,
        };
      }));
      return Response.json({ destinations: views });
    }),
    pauseDestination: guard(async (_request, { params, log }) => {
      const destination = destinationOf(params);
      await deliveries.pauses.pause(destination, OPERATOR_PAUSE_REASON);
      log.info("destination paused by an operator", { destination });
      const pause = await deliveries.pauses.of(destination);
      return Response.json({ destination, paused: _pauseView(pause) });
    }),
    resumeDestination: guard(async (_request, { params, log }) => {
      const destination = destinationOf(params);
      const result = await deliveries.pauses.resume(destination);
      if (result === "declared") {
        throw new HttpError(
          409,
          `Cannot resume destination "${destination}": it is declared paused; ` +
            `change its declaration and restart`,
        );
      }
      log.info("destination resumed by an operator", {
        destination,
        wasPaused: result === "resumed",
      });
      return Response.json({ destination, resumed: result === "resumed" });
    }),
  };
}

/** A pause as the API shows it (its time an ISO string); `null` when not paused. */
function _pauseView(pause: PauseView | undefined): Record<string, unknown> | null {
  if (pause === undefined) return null;
  const { by, reason, since } = pause;
  return { by, reason, ...(since === undefined ? {} : { since: isoTime(since) }) };
}

/** The URL without its query and fragment, which may carry a consumer's token. */
function _shownUrl(url: string): string {
  const { origin, pathname } = new URL(url);
  return origin + pathname;
}
