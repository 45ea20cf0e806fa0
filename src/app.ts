/**
 * The service as a web-standard `Request -> Response` function: the route table, the access log
 * and the one place where errors become responses. Everything it needs is passed in, so tests
 * build the same app as `main.ts` does.
 *
 * @module
 */
import type { Config } from "./config.ts";
import { errorResponse, HttpError, toHttpError } from "./http/errors.ts";
import { createRouter, type Route } from "./http/router.ts";
import type { Logger } from "./log.ts";
import { answerHandshake } from "./webhook/handshake.ts";
import { createIntakeHandler, type DeliveryRecorder } from "./webhook/intake.ts";
import { createSignatureVerifier } from "./webhook/signature.ts";

/** What {@linkcode createApp} needs. */
export interface AppOptions {
  config: Config;
  logger: Logger;
  /** Stores verified deliveries; by default they are only counted in a debug line. */
  recordDelivery?: DeliveryRecorder;
}

/** The service's request handler. */
export interface App {
  /** Answers one request; never throws. */
  fetch(request: Request): Promise<Response>;
  /**
   * Starts shutting down: new requests are answered 503 (Meta retries them later) and the promise
   * resolves once the requests already in flight have been answered.
   */
  drain(): Promise<void>;
}

/** Builds the app: imports the signing keys once and compiles the route table. */
export async function createApp(options: AppOptions): Promise<App> {
  const { config, logger } = options;
  const verifier = await createSignatureVerifier(config.APP_SECRET);

  const routes: Route[] = [
    {
      method: "GET",
      path: "/webhook/whatsapp",
      handler: (request) => answerHandshake(new URL(request.url), config.VERIFY_TOKEN),
    },
    {
      method: "POST",
      path: "/webhook/whatsapp",
      handler: createIntakeHandler({
        verifier,
        maxBodyBytes: config.MAX_BODY_BYTES,
        recordDelivery: options.recordDelivery ?? _logDeliveryCounts,
      }),
    },
    { method: "GET", path: "/healthz", handler: () => Response.json({ status: "ok" }) },
  ];
  const route = createRouter(routes);
  let inFlight = 0;
  let isDraining = false;
  let onIdle: (() => void) | undefined;

  return {
    async fetch(request) {
      const started = performance.now();
      const requestId = crypto.randomUUID();
      const log = logger.child({ requestId });
      let response: Response;
      let reason: string | undefined;
      inFlight++;
      try {
        if (isDraining) throw new HttpError(503, "Shutting down; retry later");
        response = await route(request, { log, requestId });
      } catch (error) {
        const httpError = toHttpError(error);
        if (httpError.status >= 500 && httpError !== error) {
          log.error("request failed", { error });
        }
        reason = httpError.reason;
        response = errorResponse(httpError);
      }
      response.headers.set("X-Request-Id", requestId);
      // The query is never logged: the handshake carries the verify token in it.
      const fields = {
        method: request.method,
        path: new URL(request.url).pathname,
        status: response.status,
        ms: Math.round((performance.now() - started) * 100) / 100,
        ...(reason ? { reason } : {}),
      };
      if (response.status >= 500) log.error("request", fields);
      else if (response.status >= 400) log.warn("request", fields);
      else log.info("request", fields);
      inFlight--;
      if (inFlight === 0) onIdle?.();
      return response;
    },
    drain() {
      isDraining = true;
      if (inFlight === 0) return Promise.resolve();
      return new Promise((resolve) => (onIdle = resolve));
    },
  };
}

function _logDeliveryCounts(
  delivery: { payload: unknown; bytes: number },
  log: Logger,
): Promise<void> {
  const entries = (delivery.payload as { entry?: unknown })?.entry;
  log.debug("delivery received", {
    bytes: delivery.bytes,
    entries: Array.isArray(entries) ? entries.length : 0,
  });
  return Promise.resolve();
}
