/**
 * `GET /metrics`: the service's metrics in the Prometheus text format 0.0.4.
 *
 * Protected by `ADMIN_TOKEN` as a bearer token when one is set (Prometheus sends it with
 * `authorization: { credentials: … }`); open when none is set, since the metrics hold counts and
 * names of handlers, never a payload or a secret. Each scrape first refreshes the gauges read from
 * the store (see `ServiceMetrics.collect`).
 *
 * @module
 */
import { requireAdmin } from "../admin/auth.ts";
import type { Clock } from "./clock.ts";
import type { RouteHandler } from "../http/router.ts";
import { PROMETHEUS_CONTENT_TYPE } from "./metrics.ts";
import type { ServiceMetrics } from "./service_metrics.ts";
import type { Store } from "../store/store.ts";

/** What {@linkcode createMetricsHandler} needs. */
export interface MetricsHandlerOptions {
  metrics: ServiceMetrics;
  /** The bearer token scrapers send; `undefined` leaves `/metrics` open. */
  adminToken: string | undefined;
  /** Read at scrape time for the ready-queue gauges. */
  store: Pick<Store, "queueFigures">;
  clock: Clock;
}

/**
 * The handler of `GET /metrics` (the router answers HEAD with it too; the path is in
 * `src/routes.ts`). Answers 401 with `WWW-Authenticate` for a missing or wrong token when
 * `adminToken` is set. A failed collection (the store unreachable) is logged as a warning and the
 * scrape still answers 200, with the gauges it could not fill at `NaN`.
 */
export function createMetricsHandler(options: MetricsHandlerOptions): RouteHandler {
  const { metrics, adminToken, store, clock } = options;
  const scrape: RouteHandler = async (_request, { log }) => {
    const errors = await metrics.collect(store, clock.now());
    for (const error of errors) log.warn("metrics collection failed", { error });
    return new Response(metrics.registry.render(), {
      headers: { "Content-Type": PROMETHEUS_CONTENT_TYPE, "Cache-Control": "no-store" },
    });
  };
  return adminToken === undefined ? scrape : requireAdmin(adminToken, scrape);
}
