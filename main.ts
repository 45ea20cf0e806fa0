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
import { dirname } from "node:path";
import { type App, createApp } from "./src/app.ts";
import { systemClock } from "./src/clock.ts";
import { type Config, CONFIG_NAMES, ConfigError, hasWorker, loadConfig } from "./src/config.ts";
import { isDenoDeploy } from "./src/deno_deploy.ts";
import { isConnectionCloseRequest } from "./src/http/connection.ts";
import type { Dispatcher } from "./src/dispatch/dispatcher.ts";
import { type CronFunction, registerSweepCron } from "./src/dispatch/sweep.ts";
import { type KvLocation, kvOpenFailureReason, selectKvLocation } from "./src/kv_location.ts";
import { createLogger, type Logger } from "./src/log.ts";
import { retryWhileLocked } from "./src/store/commit.ts";
import { redactSpanUrls } from "./src/telemetry.ts";

/** After SIGINT/SIGTERM, the process exits within this bound whatever is still running. */
const SHUTDOWN_GRACE_MS = 4_500;
/** Running handlers get this long to finish; the rest is aborted and retried after its lease. */
const HANDLER_GRACE_MS = 3_000;
/** How Deno's error for a `HOST` that does not resolve begins (it has no error class of its own). */
const LOOKUP_FAILED = "failed to lookup address information";
/** Bodies still arriving at shutdown get this long, then are cut off with 503 (Meta retries). */
const BODY_GRACE_MS = 1_000;
/**
 * Once every request is answered, closing the server waits this long at most for connections
 * still sending an answer; the process exit closes what is left.
 */
const SERVER_CLOSE_MS = 250;
/**
 * A server that stopped accepting connections (out of file descriptors) is started again on the
 * same port after this delay, doubled on each failure in a row up to the maximum.
 */
const RESTART_DELAY_MS = 50;
const RESTART_MAX_DELAY_MS = 2_000;
/** A restarted server that lasted this long starts the delay from the beginning again. */
const RESTART_RESET_MS = 10_000;

/** Options for {@linkcode runService}, {@linkcode startService} and {@linkcode startServeEntry}. */
export interface ServiceOptions {
  /** Command-line arguments: `--dev` accepts the `.env.example` placeholders. */
  args: string[];
  /** The handlers to run; defaults to the built-in ones. */
  dispatcher?: Dispatcher;
}

/** A started service without its HTTP server: the app, its worker running, and what it holds. */
export interface Service {
  config: Config;
  logger: Logger;
  kv: Deno.Kv;
  app: App;
  /**
   * Logs the "started" line, once: call it when the port is bound, so that nothing says started
   * before the service can be reached.
   */
  logStarted(): void;
  /**
   * Stops the worker (running handlers get a grace period), unregisters the sweep job and closes
   * Deno KV. Call it after `app.drain()`.
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
  const onError = _onResponseError(logger);
  // On Deno Deploy the platform chooses the address; `hostname` and `port` are ignored there.
  const server = _listen(logger, {
    hostname: config.HOST,
    port: config.PORT,
    onListen: ({ hostname, port }) => {
      service.logStarted();
      logger.info("listening", { hostname, port });
    },
    onError,
  }, app.fetch);
  service.logStarted(); // where the runtime does not call `onListen`
  const servers = _keepServing(server, {
    logger,
    serveAgain: () =>
      Deno.serve({
        hostname: config.HOST,
        port: server.addr.port,
        onListen: ({ hostname, port }) => logger.info("listening again", { hostname, port }),
        onError,
      }, app.fetch),
  });
  _onStopSignal(logger, {
    stop: async () => {
      await app.drain({ bodyGraceMs: BODY_GRACE_MS });
      await servers.shutdown();
      await service.close();
    },
    whenStopped: () => Deno.exit(0),
  });
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
    loaded = loadConfig(environment, { isDevelopment });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const logger = createLogger({ level: "info" });
    for (const reason of error.message.split("\n")) logger.error("cannot start", { reason });
    Deno.exit(1);
  }
  const { config, warnings } = loaded;
  const logger = createLogger({ level: config.LOG_LEVEL });
  for (const warning of warnings) logger.warn(warning);

  // With OTEL_DENO=true the runtime exports request URLs: keep the handshake's token out of them.
  if (redactSpanUrls()) logger.info("tracing with OpenTelemetry", { urlQueries: "redacted" });

  const isDeploy = isDenoDeploy(_readEnvIfAllowed);
  const location = selectKvLocation(config.KV_PATH, {
    isKvPathSet: (environment.KV_PATH ?? "").trim() !== "",
    isDeploy,
  });
  if (location.warning) logger.warn(location.warning);
  let kv: Deno.Kv;
  try {
    kv = await _openKv(location);
  } catch (error) {
    const isDirectory = await _isDirectory(location);
    logger.error("cannot start", { reason: kvOpenFailureReason(location, { error, isDirectory }) });
    Deno.exit(1);
  }
  const app = await createApp({
    config,
    logger,
    kv,
    clock: systemClock,
    ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
  });
  let sweepKind = sweep.isRegistered ? "cron" : "poll";
  if (hasWorker(config)) {
    app.worker.start();
    sweep.connect({ kv, worker: app.worker, clock: systemClock, logger });
  } else {
    sweep.stop(); // nothing here runs handlers: processes with a worker sweep for themselves
    sweepKind = "none";
  }
  let isStartLogged = false;
  return {
    config,
    logger,
    kv,
    app,
    logStarted() {
      if (isStartLogged) return;
      isStartLogged = true;
      logger.info("started", {
        kv: location.kind,
        worker: hasWorker(config) ? config.WORKER_CONCURRENCY : "none (WORKER_CONCURRENCY=0)",
        sweep: sweepKind,
        ...(isDeploy ? { platform: "deno-deploy" } : {}),
      });
    },
    async close() {
      sweep.stop();
      await app.worker.stop(HANDLER_GRACE_MS);
      kv.close();
    },
  };
}

/** The address the service listens on, as configured, for a "cannot start" line. */
interface ListenAddress {
  host: string | undefined;
  port: string | undefined;
}

/**
 * `Deno.serve`, which binds the port before it returns; when it cannot, logs one "cannot start"
 * line naming `PORT` or `HOST` and the cause, and exits with 1.
 */
function _listen(
  logger: Logger,
  options: Deno.ServeTcpOptions,
  handler: Deno.ServeHandler<Deno.NetAddr>,
): Deno.HttpServer<Deno.NetAddr> {
  try {
    return Deno.serve(options, handler);
  } catch (error) {
    const address = { host: options.hostname, port: String(options.port) };
    logger.error("cannot start", { reason: _listenFailureReason(error, address) });
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
    if (!_isListenError(event.reason)) return;
    event.preventDefault();
    const address = { host: _readEnvIfAllowed("HOST"), port: _readEnvIfAllowed("PORT") };
    logger.error("cannot start", { reason: _listenFailureReason(event.reason, address) });
    Deno.exit(1);
  });
}

/** Binding a port fails with these: taken, not an address of this machine, or no such host. */
function _isListenError(error: unknown): error is Error {
  return error instanceof Deno.errors.AddrInUse || error instanceof Deno.errors.AddrNotAvailable ||
    (error instanceof Error && error.message.startsWith(LOOKUP_FAILED));
}

/** Why the port could not be bound, as one line naming the setting to change. */
function _listenFailureReason(error: unknown, { host, port }: ListenAddress): string {
  const message = error instanceof Error ? error.message : String(error);
  const quoted = (value: string | undefined) => (value === undefined ? "" : ` "${value}"`);
  if (error instanceof Deno.errors.AddrInUse) {
    return `PORT${
      quoted(port)
    } is in use by another process (${message}): stop that process or set PORT to a free port`;
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return `HOST${
      quoted(host)
    } is not an address of this machine (${message}): set HOST to one of its addresses, or "0.0.0.0" for all of them`;
  }
  if (message.startsWith(LOOKUP_FAILED)) {
    return `HOST${
      quoted(host)
    } does not resolve (${message}): set HOST to an address of this machine, or "0.0.0.0" for all of them`;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return `PORT${
      quoted(port)
    } needs privileges this process does not have (${message}): set PORT to 1024 or above`;
  }
  return `Cannot listen on${quoted(host)} port${quoted(port)}: ${message}; check HOST and PORT`;
}

/** The HTTP servers of a process: the first one, and those started after one stopped accepting. */
interface Servers {
  /**
   * Stops accepting connections, closes the idle ones, and waits for answers still being sent,
   * at most {@linkcode SERVER_CLOSE_MS}.
   */
  shutdown(): Promise<void>;
}

/**
 * Keeps a server accepting connections. When the process runs out of file descriptors, the
 * runtime's accept loop ends ("Too many open files") and its listener closes; unhandled, that
 * error ends the process. Here the stopped server is shut down, which closes its idle and
 * half-received connections and lets requests in flight finish, and `serveAgain` listens on the
 * same port again, retried with a growing delay while descriptors are still short.
 */
function _keepServing(
  first: Deno.HttpServer<Deno.NetAddr>,
  { logger, serveAgain }: { logger: Logger; serveAgain: () => Deno.HttpServer<Deno.NetAddr> },
): Servers {
  const servers = new Set<Deno.HttpServer>();
  let isStopping = false;
  let delayMs = RESTART_DELAY_MS;
  let retry: ReturnType<typeof setTimeout> | undefined;
  const watch = (server: Deno.HttpServer): void => {
    const startedAt = performance.now();
    servers.add(server);
    server.finished.then(() => servers.delete(server), (error) => {
      logger.error("server stopped accepting connections", { error });
      server.shutdown().catch(() => {}).finally(() => servers.delete(server));
      if (performance.now() - startedAt > RESTART_RESET_MS) delayMs = RESTART_DELAY_MS;
      restart();
    });
  };
  const restart = (): void => {
    if (isStopping) return;
    retry = setTimeout(() => {
      try {
        watch(serveAgain());
      } catch (error) {
        logger.warn("cannot listen again yet", { error, retryInMs: delayMs });
        restart();
      }
    }, delayMs);
    delayMs = Math.min(delayMs * 2, RESTART_MAX_DELAY_MS);
  };
  watch(first);
  return {
    async shutdown() {
      isStopping = true;
      clearTimeout(retry);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const closed = Promise.all([...servers].map((server) => server.shutdown().catch(() => {})));
      const isClosed = await Promise.race([
        closed.then(() => true),
        new Promise<boolean>((
          resolve,
        ) => (timer = setTimeout(() => resolve(false), SERVER_CLOSE_MS))),
      ]);
      clearTimeout(timer);
      if (!isClosed) logger.warn("connections still open at exit", { waitedMs: SERVER_CLOSE_MS });
    },
  };
}

/**
 * `Deno.serve`'s `onError`: the app never throws, so what arrives here is a response body that
 * failed. A body that fails on purpose to close its connection is not logged.
 */
function _onResponseError(logger: Logger): (error: unknown) => Response {
  return (error) => {
    if (!isConnectionCloseRequest(error)) logger.error("response failed", { error });
    return new Response(null, { status: 500 });
  };
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

/** Whether a file location is a directory (or names one, ending in a separator). */
async function _isDirectory(location: KvLocation): Promise<boolean> {
  if (location.kind !== "file" || location.path === undefined) return false;
  if (/[\\/]$/.test(location.path)) return true;
  try {
    return (await Deno.stat(location.path)).isDirectory;
  } catch {
    return false; // absent, or not readable: the open error says the rest
  }
}

/** Opens Deno KV at `location`, creating a file's directory first: `Deno.openKv` does not. */
async function _openKv(location: KvLocation): Promise<Deno.Kv> {
  if (location.kind === "file" && location.path !== undefined) {
    await Deno.mkdir(dirname(location.path), { recursive: true });
  }
  // Several processes or isolates opening one new file at once meet "database is locked".
  return await retryWhileLocked(() => Deno.openKv(location.path));
}
