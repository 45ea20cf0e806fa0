/**
 * The service as a web-standard `Request -> Response` function plus its background worker: the
 * handlers wired into the route table (`routes.ts`), the access log, the one place where errors
 * become responses, and the wiring of intake -> record -> worker -> dispatcher (and -> deliverers, `destinations/deliveries.ts`). Everything it needs is passed in, so tests build the
 * same app as `main.ts` does, with a store on a temp file and a manual clock.
 *
 * @module
 */
import { createDoctorHandler } from "./admin/doctor.ts";
import { createAdminHandlers } from "./admin/events.ts";
import { createDestinationHandlers } from "./admin/destinations.ts";
import { createJobHandlers } from "./admin/jobs.ts";
import { createMessageStatusHandler } from "./admin/messages.ts";
import { createWindowHandler } from "./admin/windows.ts";
import { capturedMediaOf, createMediaHandler } from "./admin/media.ts";
import { createConsoleHandlers } from "./console/handlers.ts";
import type { Clock } from "./ops/clock.ts";
import type { Config } from "./config.ts";
import { hasFlows, hasGraphToken, hasWorker } from "./config_rules.ts";
import { Dispatcher, registerLoggingHandlers } from "./dispatch/dispatcher.ts";
import { createWorker, type Worker } from "./dispatch/worker.ts";
import { createDeliveries, type Deliveries } from "./destinations/deliveries.ts";
import type { DeliveryHttp } from "./destinations/transport.ts";
import { createFlowsEndpoint } from "./flows/endpoint.ts";
import { Flows } from "./flows/flows.ts";
import { importFlowsPrivateKey } from "./flows/keys.ts";
import { createGraphClient, type GraphClient } from "./graph/client.ts";
import { registerEchoHandler } from "./handlers/echo.ts";
import { type MediaCaptureOptions, registerMediaCapture } from "./handlers/media_capture.ts";
import { createMediaClient } from "./graph/media.ts";
import type { MediaStore } from "./media/media_store.ts";
import { selectMediaStore } from "./media/select_store.ts";
import { createHealthHandlers } from "./ops/health.ts";
import { closingConnection } from "./http/connection.ts";
import { errorResponse, HttpError, IncompleteBodyError, toHttpError } from "./http/errors.ts";
import { createRouter, pathnameOf } from "./http/router.ts";
import type { Logger } from "./ops/log.ts";
import { createMetricsHandler } from "./ops/metrics_endpoint.ts";
import { instrumentIntake, instrumentVerifier } from "./ops/instrument.ts";
import { createServiceMetrics, type ServiceMetrics } from "./ops/service_metrics.ts";
import { registerStatusTracking } from "./handlers/status_tracker.ts";
import { registerWindowTracking } from "./handlers/window_tracker.ts";
import { registerAlertHandler } from "./handlers/alerts.ts";
import { recordLifeMs } from "./store/event_record.ts";
import type { Store, StoreOptions } from "./store/store.ts";
import { serviceRoutes } from "./routes.ts";
import { discardBody, hasHiddenBody, type ReadBodyOptions } from "./webhook/body.ts";
import { answerHandshake } from "./webhook/handshake.ts";
import { createIntakeHandler } from "./webhook/intake.ts";
import { createRecordStep } from "./webhook/record_step.ts";
import { createSignatureVerifier } from "./webhook/signature.ts";

/** What {@linkcode createApp} needs. */
export interface AppOptions {
  config: Config;
  logger: Logger;
  /** Where events and the other records live. */
  store: Store;
  clock: Clock;
  /**
   * The caller's handlers, run beside the built-in ones: messages and statuses logged at debug,
   * statuses tracked, customer-service windows opened by messages, and text messages echoed when
   * echo replies are on.
   */
  dispatcher?: Dispatcher;
  /** Jitter source for retries; defaults to `Math.random`. */
  random?: () => number;
  /** The Graph API client's `fetch`; defaults to the global one (tests wrap it). */
  fetch?: typeof fetch;
  /**
   * How deliveries reach destinations (`destinations/transport.ts`): `"direct"`, the built-in
   * HTTP/1.1 client, which goes around any proxy; `"fetch"` (the default), Deno's `fetch`, which
   * honours `HTTP_PROXY` and its kin. `main.ts` picks `"direct"` when no proxy variable is set.
   */
  deliveryHttp?: DeliveryHttp;
  /** The metrics to update and serve; defaults to new ones (tests pass their own to read them). */
  metrics?: ServiceMetrics;
  /** The WhatsApp Flows screen handlers, served when a Flows private key is configured. */
  flows?: Flows;
  /**
   * Where captured media go when `mediaCapture` is on; defaults to the directory `mediaDir`
   * (`MEDIA_STORE=kv` needs one: `main.ts` passes `selectMediaStore` over its Deno KV).
   */
  mediaStore?: MediaStore;
}

/** The service: its request handler and its worker. */
export interface App {
  /** Answers one request; never throws. */
  fetch(request: Request): Promise<Response>;
  /**
   * Starts shutting down: new requests are answered 503 (Meta retries them later) and the promise
   * resolves once the requests already in flight have been answered. Bodies still arriving after
   * `bodyGraceMs` are cut off: their requests are answered 503 and their connections closed.
   */
  drain(options?: DrainOptions): Promise<void>;
  /** Runs the handlers of recorded events; `main.ts` starts and stops it. */
  worker: Worker;
  /** Delivers recorded events to the declared destinations; started and stopped with `worker`. */
  deliveries: Deliveries;
}

/** Options for {@linkcode App.drain}. */
export interface DrainOptions {
  /** How long bodies still arriving may take before they are cut off; defaults to 0. */
  bodyGraceMs?: number;
}

/**
 * Builds the app: imports the signing keys once, compiles the route table, builds the Graph API
 * client when an access token is configured, and creates the worker.
 */
export async function createApp(options: AppOptions): Promise<App> {
  const { config, logger, store, clock } = options;
  const metrics = options.metrics ?? createServiceMetrics({ clock });
  const signatures = await createSignatureVerifier(config.appSecrets);
  const verifier = instrumentVerifier(signatures, metrics);
  const graph = hasGraphToken(config) ? _createGraphClient(options, metrics) : undefined;
  const media = config.mediaCapture ? _mediaCapture(options) : undefined;
  const dispatcher = _builtInDispatcher(config, clock, metrics, media);
  if (options.dispatcher) dispatcher.include(options.dispatcher);
  const retry = {
    maxAttempts: config.retryMaxAttempts,
    baseDelayMs: config.retryBaseDelayMs,
    maxDelayMs: config.retryMaxDelayMs,
  };
  const deliveries = createDeliveries({
    destinations: config.destinations,
    store,
    clock,
    logger,
    retry,
    leaseMs: config.leaseMs,
    ...(options.random ? { random: options.random } : {}),
    ...(options.deliveryHttp ? { http: options.deliveryHttp } : {}),
    observer: metrics.destinations.observer(),
  });
  metrics.destinations.watch(config.destinations.map((d) => d.name), store, clock);
  const worker = createWorker({
    store,
    dispatcher,
    logger,
    clock,
    leaseMs: config.leaseMs,
    concurrency: config.workerConcurrency,
    retry,
    // Reply records must outlive every way the event can come back: redelivery and replay.
    replyTtlMs: recordLifeMs(storeOptions(config)),
    ...(options.random ? { random: options.random } : {}),
    ...(graph ? { services: { graph } } : {}),
    ...(media ? { purgeAlso: (now: number) => _purgeMedia(media.store, now, options) } : {}),
    observer: {
      onHandlerRun: (run) => metrics.observeHandlerRun(run.handler, run.outcome),
      onSettled: (settled) => metrics.observeSettled(settled.state),
    },
  });

  // A store shared by several instances says when another one made work due: look at once.
  store.onDue?.(() => {
    worker.wake();
    deliveries.wake();
  });

  let isDraining = false;
  // Aborted during the drain: every body read still waiting then ends with 503.
  const bodyCutOff = new AbortController();
  const bodyLimits: ReadBodyOptions = {
    maxBytes: config.maxBodyBytes,
    timeoutMs: config.bodyTimeoutMs,
    signal: bodyCutOff.signal,
  };

  const routes = serviceRoutes({
    webhook: {
      handshake: (request) => answerHandshake(new URL(request.url), config.verifyToken),
      intake: instrumentIntake(
        createIntakeHandler({
          verifier,
          bodyLimits,
          onDrift: (drift) => metrics.observeDrift(drift),
          recordEvents: createRecordStep({ store, worker, metrics, clock, deliveries }),
        }),
        metrics,
      ),
    },
    health: createHealthHandlers({
      store,
      ...(hasWorker(config) ? { worker } : {}),
      clock,
      isShuttingDown: () => isDraining,
      silenceAfterMs: config.silenceAfterMs,
      lastDeliveryAt: () => metrics.lastDeliveryAt(),
      logger,
      metrics,
      destinations: {
        names: config.destinations.filter((d) => !d.paused).map((d) => d.name),
        store,
      },
    }),
    metrics: createMetricsHandler({ metrics, adminToken: config.adminToken, store, clock }),
    admin: createAdminHandlers({
      store,
      adminToken: config.adminToken,
      clock,
      onReplay: () => worker.wake(),
      handlersFor: (event) => dispatcher.handlersFor(event).map((handler) => handler.name),
      ...(media ? { mediaOf: (event) => capturedMediaOf(media.store, event) } : {}),
    }),
    destinations: createDestinationHandlers({
      store,
      adminToken: config.adminToken,
      clock,
      destinations: config.destinations,
      deliveries,
    }),
    jobs: createJobHandlers({
      store,
      adminToken: config.adminToken,
      clock,
      destinations: config.destinations.map((destination) => destination.name),
      onReplay: () => deliveries.wake(),
    }),
    messageStatus: createMessageStatusHandler({ store, adminToken: config.adminToken }),
    flows: hasFlows(config)
      ? {
        path: config.flowsPath,
        exchange: createFlowsEndpoint({
          privateKey: await importFlowsPrivateKey({
            pem: config.flowsPrivateKey ?? "",
            passphrase: config.flowsKeyPassphrase,
          }),
          flows: options.flows ?? new Flows(),
          verifier: signatures,
          bodyLimits,
          metrics: metrics.flows,
        }),
      }
      : undefined,
    doctor: createDoctorHandler({
      config,
      adminToken: config.adminToken,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    }),
    conversationWindow: createWindowHandler({ store, clock, adminToken: config.adminToken }),
    media: createMediaHandler({ mediaStore: media?.store, adminToken: config.adminToken }),
    console: await createConsoleHandlers({
      store,
      adminToken: config.adminToken,
      clock,
      destinations: config.destinations,
      deliveries,
      hidesText: config.consoleHidesText,
      lastDeliveryAt: () => metrics.lastDeliveryAt(),
      ackLatency: () => metrics.ackLatency(),
      deliveryRate: (now) => metrics.deliveryRate.series(now),
      silenceAfterMs: config.silenceAfterMs,
      onReplay: () => worker.wake(),
      onJobReplay: () => deliveries.wake(),
    }),
  });
  const route = createRouter(routes);
  let inFlight = 0;
  let onIdle: (() => void) | undefined;

  return {
    async fetch(request): Promise<Response> {
      const started = performance.now();
      const requestId = crypto.randomUUID();
      const log = logger.child({ requestId });
      const path = pathnameOf(request.url);
      let response: Response;
      let reason: string | undefined;
      let isClosing = false;
      inFlight++;
      try {
        if (isDraining) {
          if (request.method === "POST" && path === "/webhook/whatsapp") {
            metrics.observeDelivery("unavailable");
          }
          throw new HttpError(503, "Shutting down; retry later");
        }
        response = await route(request, { log, requestId });
      } catch (error) {
        const httpError = toHttpError(error);
        if (httpError.status >= 500 && httpError !== error) {
          log.error("request failed", { error });
        }
        reason = httpError.reason;
        isClosing = httpError instanceof IncompleteBodyError;
        response = errorResponse(httpError);
      }
      // Answer once the body has arrived, or close the connection: after the answer, Deno.serve
      // would read the rest of a stalled body without any limit.
      if (!isClosing && hasHiddenBody(request)) {
        response = closingConnection(response);
      } else if (!isClosing) {
        try {
          await discardBody(request, bodyLimits);
        } catch (error) {
          if (error instanceof IncompleteBodyError) {
            reason = error.reason;
            response = errorResponse(error);
          } else {
            log.error("request failed", { error });
            response = closingConnection(response);
          }
        }
      }
      response.headers.set("X-Request-Id", requestId);
      // The query is never logged: the handshake carries the verify token in it.
      const fields = {
        method: request.method,
        path,
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
    drain(options: DrainOptions = {}): Promise<void> {
      isDraining = true;
      const cutOff = setTimeout(() => bodyCutOff.abort(), options.bodyGraceMs ?? 0);
      if (inFlight === 0) {
        clearTimeout(cutOff);
        bodyCutOff.abort(); // for requests arriving until the server stops accepting them
        return Promise.resolve();
      }
      return new Promise((resolve) => {
        onIdle = () => {
          clearTimeout(cutOff);
          bodyCutOff.abort();
          resolve();
        };
      });
    },
    worker,
    deliveries,
  };
}

/** What the store needs from the configuration: how long records live, and leases. */
export function storeOptions(config: Config): StoreOptions {
  return {
    dedupTtlMs: config.dedupTtlMs,
    retentionMs: config.eventRetentionMs,
    leaseMs: config.leaseMs,
  };
}

/**
 * The built-in handlers: status tracking, window tracking, WhatsApp alerts, the logging handlers when the log level is `debug` (at
 * any other level they would write nothing, yet each run costs a handler's bookkeeping and a name
 * in every record), and the echo handler when echo replies are on.
 */
function _builtInDispatcher(
  config: Config,
  clock: Clock,
  metrics: ServiceMetrics,
  media: MediaCaptureOptions | undefined,
): Dispatcher {
  const logging = config.logLevel === "debug"
    ? registerLoggingHandlers(new Dispatcher())
    : new Dispatcher();
  const dispatcher = registerAlertHandler(
    registerWindowTracking(
      registerStatusTracking(logging, { clock, retentionMs: config.statusRetentionMs }),
      { clock },
    ),
    { metrics: metrics.alerts },
  );
  if (media) registerMediaCapture(dispatcher, media);
  return config.echoReplies ? registerEchoHandler(dispatcher) : dispatcher;
}

/** Media capture's store, Graph API calls (same base URL, version, tokens and timeout) and cap. */
function _mediaCapture(options: AppOptions): MediaCaptureOptions {
  const { config, clock } = options;
  return {
    store: options.mediaStore ?? selectMediaStore(config),
    client: createMediaClient({
      token: config.whatsappToken ?? "",
      tokensByPhoneNumberId: config.whatsappTokens,
      baseUrl: config.graphApiBaseUrl,
      version: config.graphApiVersion,
      timeoutMs: config.graphTimeoutMs,
      clock,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    }),
    maxBytes: config.mediaMaxBytes,
    clock,
    ...(options.random ? { random: options.random } : {}),
  };
}

/** Media are removed with the events: those stored longer ago than the event retention. */
const MEDIA_PURGE_LIMIT = 1_000;

async function _purgeMedia(store: MediaStore, now: number, options: AppOptions): Promise<void> {
  try {
    const purged = await store.purge(now - options.config.eventRetentionMs, MEDIA_PURGE_LIMIT);
    if (purged > 0) options.logger.info("expired media removed", { media: purged });
  } catch (error) {
    options.logger.warn("cannot remove expired media", { error });
  }
}

function _createGraphClient(options: AppOptions, metrics: ServiceMetrics): GraphClient {
  const { config } = options;
  return createGraphClient({
    token: config.whatsappToken ?? "",
    tokensByPhoneNumberId: config.whatsappTokens,
    baseUrl: config.graphApiBaseUrl,
    version: config.graphApiVersion,
    messagesPerSecond: config.graphMessagesPerSecond,
    timeoutMs: config.graphTimeoutMs,
    clock: options.clock,
    logger: options.logger,
    onCall: (call) => metrics.observeGraphCall(call),
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.random ? { random: options.random } : {}),
  });
}
