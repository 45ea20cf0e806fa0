/**
 * wa-webhook: a WhatsApp Cloud API webhook receiver.
 *
 * The only module that touches the outside world at start: it reads the environment, opens Deno KV,
 * serves HTTP and handles signals, then hands everything to {@linkcode createApp}.
 *
 * Usage: `deno task dev` (development, with `.env.example` and `.env`), `deno task start`
 * (production), the binary from `deno task compile`, or Deno Deploy with no flags at all. For
 * `deno serve --parallel`, `serve.ts` builds the same service through {@linkcode startServeEntry}.
 *
 * @module
 */
import { type App, createApp, storeOptions } from "./src/app.ts";
import { systemClock } from "./src/ops/clock.ts";
import { type Config, ConfigError } from "./src/config.ts";
import { hasWorker } from "./src/config_rules.ts";
import { CONFIG_NAMES, loadConfig } from "./src/config_env.ts";
import { isDenoDeploy } from "./src/ops/deno_deploy.ts";
import {
  keepServing,
  type KeepServingOptions,
  onResponseError,
  type Servers,
} from "./src/http/server.ts";
import type { Dispatcher } from "./src/dispatch/dispatcher.ts";
import { type CronFunction, registerSweepCron } from "./src/dispatch/sweep.ts";
import { isListenError, listenFailureReason } from "./src/http/listen_errors.ts";
import { readDestinationsFile } from "./src/destinations/declarations.ts";
import { deliveryHttpFor } from "./src/destinations/transport.ts";
import type { Flows } from "./src/flows/flows.ts";
import { readFlowsKeyFile } from "./src/flows/keys.ts";
import type { MediaStore } from "./src/media/media_store.ts";
import { selectMediaStore } from "./src/media/select_store.ts";
import { type OpenedStore, openStore, StoreOpenError } from "./src/store/open.ts";
import type { Store } from "./src/store/store.ts";
import { createLogger, LOG_FORMATS, type LogFormat, type Logger } from "./src/ops/log.ts";
import { redactSpanUrls } from "./src/ops/telemetry.ts";

/** After SIGINT/SIGTERM, the process exits within this bound whatever is still running. */
const SHUTDOWN_GRACE_MS = 4_500;
/** Running handlers get this long to finish; the rest is aborted and retried after its lease. */
const HANDLER_GRACE_MS = 3_000;
/** Bodies still arriving at shutdown get this long, then are cut off with 503 (Meta retries). */
const BODY_GRACE_MS = 1_000;
/**
 * A server retired by a rotation lets requests in flight finish for the body deadline plus this,
 * so that a body still arriving ends in its own 408 rather than a cut connection.
 */
const RETIRE_MARGIN_MS = 1_000;

/** Options for {@linkcode runService}, {@linkcode startService} and {@linkcode startServeEntry}. */
export interface ServiceOptions {
  /** Command-line arguments: `--dev` accepts the `.env.example` placeholders. */
  args: string[];
  /** The handlers to run; defaults to the built-in ones. */
  dispatcher?: Dispatcher;
  /** The WhatsApp Flows screen handlers, served when `FLOWS_PRIVATE_KEY(_FILE)` is set. */
  flows?: Flows;
}

/** A started service without its HTTP server: the app, its worker running, and what it holds. */
export interface Service {
  config: Config;
  logger: Logger;
  store: Store;
  app: App;
  /**
   * Logs the "started" line, once: call it when the port is bound, so that nothing says started
   * before the service can be reached.
   */
  logStarted(): void;
  /**
   * Stops the worker (running handlers get a grace period), unregisters the sweep job and closes
   * the store. Call it after `app.drain()`.
   */
  close(): Promise<void>;
}

if (import.meta.main) await runService({ args: Deno.args });

/**
 * Runs the service until SIGINT or SIGTERM: reads the environment, opens Deno KV, serves HTTP and
 * runs the worker. Exits the process when the configuration is invalid and when stopped.
 */
export async function runService(options: ServiceOptions): Promise<void> {
  const service = await startService(options);
  const { config, logger, app } = service;
  // On Deno Deploy the platform chooses the address and owns the connections: no rotation there.
  const isDeploy = isDenoDeploy(_readEnvIfAllowed);
  // Listening for signals before the port is bound: a SIGTERM that came once the service said
  // "listening" but before a listener was added would end the process without a drain. A signal
  // is handled on a later turn of the event loop, once `servers` below is set.
  _onStopSignal(logger, {
    stop: async () => {
      await app.drain({ bodyGraceMs: BODY_GRACE_MS });
      // Every request is answered by now: the servers close their connections once written.
      await servers.shutdown(0);
      await service.close();
    },
    whenStopped: () => Deno.exit(0),
  });
  const servers = _listen(logger, {
    serve: Deno.serve,
    logger,
    handler: app.fetch,
    hostname: config.host,
    port: config.port,
    onListen: ({ hostname, port }) => {
      service.logStarted();
      logger.info("listening", { hostname, port });
    },
    onError: onResponseError(logger),
    ...(isDeploy ? {} : { rotateEveryMs: config.idleConnectionMs }),
    retireGraceMs: config.bodyTimeoutMs + RETIRE_MARGIN_MS,
  });
  service.logStarted(); // where the runtime does not call `onListen`
}

/**
 * The default export for `deno serve` (`serve.ts`): starts the service in this isolate and returns
 * its `fetch`. With `--parallel` every isolate runs its own app and worker on the same Deno KV;
 * the worker's leases keep two isolates from running one event. The address comes from
 * `deno serve`'s `--host` and `--port` (the serve task passes `HOST` and `PORT`); `deno serve`
 * binds it after this module has loaded, and the isolate that binds it logs "started" then.
 */
export async function startServeEntry(options: ServiceOptions): Promise<Deno.ServeDefaultExport> {
  const service = await startService(options);
  const { logger, app } = service;
  _exitOnServeListenError(logger);
  // `deno serve` stops accepting connections by itself; the process exits once every isolate has
  // let go of its worker, its sweep job and Deno KV, so no isolate cuts another's drain short.
  _onStopSignal(logger, {
    stop: async () => {
      await app.drain({ bodyGraceMs: BODY_GRACE_MS });
      await service.close();
    },
    // A backstop that does not itself keep the process alive.
    whenStopped: () => Deno.unrefTimer(setTimeout(() => Deno.exit(0), SHUTDOWN_GRACE_MS)),
  });
  return {
    fetch: app.fetch,
    // Only the first isolate is told; the others share its socket.
    onListen: (address) => {
      const { hostname, port } = address as Deno.NetAddr;
      service.logStarted();
      logger.info("listening", { hostname, port });
    },
  };
}

/**
 * Starts everything but the HTTP server: registers the sweep job (first, before any `await`, as
 * Deno Deploy requires), reads the environment, opens Deno KV and starts the worker. Exits the
 * process with one log line per reason when the configuration is invalid or KV cannot be opened.
 * Logs nothing as started: the caller calls `logStarted()` once the port is bound.
 */
export async function startService(options: ServiceOptions): Promise<Service> {
  const sweep = registerSweepCron(_cronFunction());
  const isDevelopment = options.args.includes("--dev");
  const environment = Object.fromEntries(CONFIG_NAMES.map((name) => [name, Deno.env.get(name)]));
  let loaded;
  try {
    loaded = loadConfig(environment, { isDevelopment, readDestinationsFile, readFlowsKeyFile });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // LOG_FORMAT is honoured when it alone is valid: the reasons reach a person readably.
    const format = LOG_FORMATS.find((name) => name === environment.LOG_FORMAT?.trim()) ?? "auto";
    const logger = createLogger({ level: "info", ..._logOutput(format) });
    for (const reason of error.message.split("\n")) logger.error("cannot start", { reason });
    Deno.exit(1);
  }
  const { config, warnings } = loaded;
  const logger = createLogger({ level: config.logLevel, ..._logOutput(config.logFormat) });
  for (const warning of warnings) logger.warn(warning);

  // With OTEL_DENO=true the runtime exports request URLs: keep the handshake's token out of them.
  if (redactSpanUrls()) logger.info("tracing with OpenTelemetry", { urlQueries: "redacted" });

  const isDeploy = isDenoDeploy(_readEnvIfAllowed);
  let opened: OpenedStore;
  try {
    opened = await openStore(config, {
      storeOptions: storeOptions(config),
      logger,
      isKvPathSet: (environment.KV_PATH ?? "").trim() !== "",
      isDeploy,
    });
  } catch (error) {
    if (!(error instanceof StoreOpenError)) throw error;
    logger.error("cannot start", { reason: error.message });
    Deno.exit(1);
  }
  if (opened.warning) logger.warn(opened.warning);
  const { store } = opened;
  let mediaStore: MediaStore | undefined;
  try {
    if (config.mediaCapture) mediaStore = selectMediaStore(config, opened.kv);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    logger.error("cannot start", { reason: error.message });
    Deno.exit(1);
  }
  // The built-in HTTP/1.1 client goes around a proxy: with one set (or unreadable), fetch it is;
  // on Deno Deploy too, whose outbound requests are fetch's.
  const deliveryHttp = isDeploy ? "fetch" : deliveryHttpFor((name) => Deno.env.get(name));
  if (deliveryHttp === "fetch" && config.destinations.length > 0) {
    logger.info("deliveries go through fetch", {
      why: isDeploy ? "Deno Deploy" : "a proxy variable is set or cannot be read",
    });
  }
  const app = await createApp({
    config,
    logger,
    store,
    clock: systemClock,
    deliveryHttp,
    ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
    ...(options.flows ? { flows: options.flows } : {}),
    ...(mediaStore ? { mediaStore } : {}),
  });
  let sweepKind = sweep.isRegistered ? "cron" : "poll";
  if (hasWorker(config)) {
    app.worker.start();
    app.deliveries.start();
    sweep.connect({ store, worker: app.worker, clock: systemClock, logger });
  } else {
    sweep.stop(); // nothing here runs handlers: processes with a worker sweep for themselves
    sweepKind = "none";
  }
  let isStartLogged = false;
  return {
    config,
    logger,
    store,
    app,
    logStarted() {
      if (isStartLogged) return;
      isStartLogged = true;
      logger.info("started", {
        ...opened.logFields,
        worker: hasWorker(config) ? config.workerConcurrency : "none (WORKER_CONCURRENCY=0)",
        sweep: sweepKind,
        ...(isDeploy ? { platform: "deno-deploy" } : {}),
      });
    },
    async close() {
      sweep.stop();
      await Promise.all([
        app.worker.stop(HANDLER_GRACE_MS),
        app.deliveries.stop(HANDLER_GRACE_MS),
      ]);
      await opened.close();
    },
  };
}

/**
 * How log lines are written: `format` as configured, coloured only when they go to a terminal
 * and `NO_COLOR` is unset (`Deno.noColor`, which needs no permission).
 */
function _logOutput(format: LogFormat): { format: LogFormat; isColored: boolean } {
  return { format, isColored: !Deno.noColor && Deno.stdout.isTerminal() };
}

/**
 * {@linkcode keepServing}, whose first server binds the port before it returns; when it cannot,
 * logs one "cannot start" line naming `PORT` or `HOST` and the cause, and exits with 1.
 */
function _listen(logger: Logger, options: KeepServingOptions): Servers {
  try {
    return keepServing(options);
  } catch (error) {
    const address = { host: options.hostname, port: String(options.port) };
    logger.error("cannot start", { reason: listenFailureReason(error, address) });
    Deno.exit(1);
  }
}

/**
 * `deno serve` binds the port itself, after `serve.ts` has loaded: its failure surfaces as an
 * unhandled rejection, which this turns into one "cannot start" line and exit code 1. `HOST` and
 * `PORT` are named because the serve task passes them as `--host` and `--port`.
 */
function _exitOnServeListenError(logger: Logger): void {
  globalThis.addEventListener("unhandledrejection", (event) => {
    if (!isListenError(event.reason)) return;
    event.preventDefault();
    const address = { host: _readEnvIfAllowed("HOST"), port: _readEnvIfAllowed("PORT") };
    logger.error("cannot start", { reason: listenFailureReason(event.reason, address) });
    Deno.exit(1);
  });
}

/**
 * Runs `stop` then `whenStopped` once, on the first SIGINT or SIGTERM; exits with 1 if `stop` has
 * not finished within {@linkcode SHUTDOWN_GRACE_MS}.
 */
function _onStopSignal(
  logger: Logger,
  { stop, whenStopped }: { stop: () => Promise<void>; whenStopped: () => void },
): void {
  let isStopping = false;
  const onSignal = async (signal: Deno.Signal): Promise<void> => {
    if (isStopping) return;
    isStopping = true;
    logger.info("shutting down", { signal });
    const deadline = setTimeout(() => {
      logger.error("shutdown took too long; exiting", { graceMs: SHUTDOWN_GRACE_MS });
      Deno.exit(1);
    }, SHUTDOWN_GRACE_MS);
    await stop();
    clearTimeout(deadline);
    logger.info("stopped");
    whenStopped();
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => void onSignal(signal));
  }
}

/** `Deno.cron` where this runtime has it (Deno Deploy; locally `"unstable": ["cron"]`). */
function _cronFunction(): CronFunction | undefined {
  if (typeof Deno.cron !== "function") return undefined;
  return (name, schedule, options, handler) => Deno.cron(name, schedule, options, handler);
}

/**
 * Reads an environment variable only when the permissions allow it without a prompt: the start
 * task allows its own list, Deno Deploy allows everything.
 */
function _readEnvIfAllowed(name: string): string | undefined {
  try {
    const { state } = Deno.permissions.querySync({ name: "env", variable: name });
    return state === "granted" ? Deno.env.get(name) : undefined;
  } catch {
    return undefined;
  }
}
