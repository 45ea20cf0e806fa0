/**
 * The service as a web-standard `Request -> Response` function plus its background worker: the
 * route table, the access log, the one place where errors become responses, and the wiring of
 * intake -> record -> worker -> dispatcher. Everything it needs is passed in, so tests build the
 * same app as `main.ts` does, with a temp KV and a manual clock.
 *
 * @module
 */
import { adminRoutes } from "./admin/routes.ts";
import type { Clock } from "./clock.ts";
import type { Config } from "./config.ts";
import { Dispatcher, registerLoggingHandlers } from "./dispatch/dispatcher.ts";
import { createWorker, type Worker } from "./dispatch/worker.ts";
import { errorResponse, HttpError, toHttpError } from "./http/errors.ts";
import { createRouter, type Route } from "./http/router.ts";
import type { Logger } from "./log.ts";
import { createInbox } from "./store/inbox.ts";
import { answerHandshake } from "./webhook/handshake.ts";
import { createIntakeHandler } from "./webhook/intake.ts";
import { createSignatureVerifier } from "./webhook/signature.ts";

const HOUR_MS = 3_600_000;

/** What {@linkcode createApp} needs. */
export interface AppOptions {
  config: Config;
  logger: Logger;
  kv: Deno.Kv;
  clock: Clock;
  /** The handlers; by default messages and statuses are logged at debug. */
  dispatcher?: Dispatcher;
  /** Jitter source for retries; defaults to `Math.random`. */
  random?: () => number;
}

/** The service: its request handler and its worker. */
export interface App {
  /** Answers one request; never throws. */
  fetch(request: Request): Promise<Response>;
  /**
   * Starts shutting down: new requests are answered 503 (Meta retries them later) and the promise
   * resolves once the requests already in flight have been answered.
   */
  drain(): Promise<void>;
  /** Runs the handlers of recorded events; `main.ts` starts and stops it. */
  worker: Worker;
}

/** Builds the app: imports the signing keys once, compiles the route table, creates the worker. */
export async function createApp(options: AppOptions): Promise<App> {
  const { config, logger, kv, clock } = options;
  const verifier = await createSignatureVerifier(config.APP_SECRET);
  const dispatcher = options.dispatcher ?? registerLoggingHandlers(new Dispatcher());
  const worker = createWorker({
    kv,
    dispatcher,
    logger,
    clock,
    leaseMs: config.LEASE_MS,
    concurrency: config.WORKER_CONCURRENCY,
    retry: {
      maxAttempts: config.RETRY_MAX_ATTEMPTS,
      baseDelayMs: config.RETRY_BASE_DELAY_MS,
      maxDelayMs: config.RETRY_MAX_DELAY_MS,
    },
    ...(options.random ? { random: options.random } : {}),
  });

  const inbox = createInbox(kv, {
    dedupTtlMs: config.DEDUP_TTL_HOURS * HOUR_MS,
    retentionMs: config.EVENT_RETENTION_HOURS * HOUR_MS,
  });

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
        recordEvents: async (events, log) => {
          const outcome = await inbox.record(events, clock.now());
          log.debug("delivery recorded", {
            recorded: outcome.recorded.length,
            duplicates: outcome.duplicates.length,
          });
          if (outcome.recorded.length > 0) worker.wake();
        },
      }),
    },
    { method: "GET", path: "/healthz", handler: () => Response.json({ status: "ok" }) },
    ...adminRoutes({ kv, adminToken: config.ADMIN_TOKEN, clock, onReplay: () => worker.wake() }),
  ];
  const route = createRouter(routes);
  let inFlight = 0;
  let isDraining = false;
  let onIdle: (() => void) | undefined;

  return {
    async fetch(request): Promise<Response> {
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
    drain(): Promise<void> {
      isDraining = true;
      if (inFlight === 0) return Promise.resolve();
      return new Promise((resolve) => (onIdle = resolve));
    },
    worker,
  };
}
