/**
 * The service as a library: {@linkcode createService} takes a configuration, a store and the
 * caller's handlers, and returns `{ fetch, start, stop }`. It never reads the environment nor
 * exits the process: `main.ts` (the binary) does those, and builds the same service through it.
 *
 * @module
 */
import { type App, createApp, storeOptions } from "./app.ts";
import { type ConfigInput, resolveConfig } from "./config.ts";
import { hasWorker } from "./config_rules.ts";
import type { Dispatcher } from "./dispatch/dispatcher.ts";
import type { DeliveryHttp } from "./destinations/transport.ts";
import type { Flows } from "./flows/flows.ts";
import { type Clock, systemClock } from "./ops/clock.ts";
import { createLogger, type Logger } from "./ops/log.ts";
import { openStore } from "./store/open.ts";
import type { Store } from "./store/store.ts";

/** What {@linkcode createService} needs. */
export interface ServiceOptions {
  /** The settings; what is left out takes its default (`DEFAULTS`). */
  config: ConfigInput;
  /**
   * Where events live; by default the store the configuration selects (PostgreSQL at
   * `config.storeUrl`, else Deno KV at `config.kvPath`, its directory created), which `stop()`
   * closes. A store passed in is the caller's to close.
   */
  store?: Store;
  /** The caller's handlers, run beside the built-in ones (logging, status tracking, echo). */
  dispatcher?: Dispatcher;
  /**
   * The WhatsApp Flows screen handlers, served on `config.flowsPath` when
   * `config.flowsPrivateKey` is set (without them the endpoint answers health checks only).
   */
  flows?: Flows;
  /** Where log lines go; by default JSON lines at `config.logLevel`. */
  logger?: Logger;
  /** The time; the system clock by default (tests pass a manual one). */
  clock?: Clock;
  /** The Graph API client's `fetch`; the global one by default. */
  fetch?: typeof fetch;
  /**
   * How deliveries reach destinations: `"fetch"` (the default), Deno's `fetch`, which honours
   * `HTTP_PROXY` and its kin; `"direct"`, the built-in HTTP/1.1 client, about three times cheaper
   * a request, which goes around any proxy.
   */
  deliveryHttp?: DeliveryHttp;
}

/** A service: a request handler and the worker behind it. */
export interface Service {
  /** Answers one request (the webhook, health, metrics and admin routes); never throws. */
  fetch(request: Request): Promise<Response>;
  /** Starts the worker and the destinations' deliverers (none when `workerConcurrency` is 0). */
  start(): void;
  /**
   * Stops: new requests are answered 503 (Meta retries them), requests in flight are answered,
   * running handlers get `graceMs` (default 3 s) to finish, and a store the service opened is
   * closed.
   */
  stop(options?: { graceMs?: number }): Promise<void>;
  /** The app inside, for the binary: its drain and worker. */
  readonly app: App;
}

/** Running handlers get this long to finish on `stop()`; the rest retry after their lease. */
const DEFAULT_STOP_GRACE_MS = 3_000;

/**
 * Builds the service: resolves the configuration (throws a `ConfigError` with every reason; logs
 * each warning), opens the default store when none is given, and wires intake, worker and routes.
 */
export async function createService(options: ServiceOptions): Promise<Service> {
  const { config, warnings } = resolveConfig(options.config);
  const logger = options.logger ??
    createLogger({ level: config.logLevel, format: config.logFormat });
  for (const warning of warnings) logger.warn(warning);
  const opened = options.store ? undefined : await openStore(config, {
    storeOptions: storeOptions(config),
    logger,
    isKvPathSet: true,
    isDeploy: false,
  });
  const store = options.store ?? opened!.store;
  const app = await createApp({
    config,
    logger,
    store,
    clock: options.clock ?? systemClock,
    ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
    ...(options.flows ? { flows: options.flows } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.deliveryHttp ? { deliveryHttp: options.deliveryHttp } : {}),
  });
  return {
    fetch: app.fetch,
    start() {
      if (!hasWorker(config)) return;
      app.worker.start();
      app.deliveries.start();
    },
    async stop(stopOptions = {}) {
      await app.drain();
      const graceMs = stopOptions.graceMs ?? DEFAULT_STOP_GRACE_MS;
      await Promise.all([app.worker.stop(graceMs), app.deliveries.stop(graceMs)]);
      await opened?.close();
    },
    app,
  };
}
