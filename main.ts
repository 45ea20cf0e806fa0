/**
 * wa-webhook: a WhatsApp Cloud API webhook receiver.
 *
 * The only module that touches the outside world at start: it reads the environment, opens Deno KV,
 * serves HTTP and handles signals, then hands everything to {@linkcode createApp}.
 *
 * Usage: `deno task dev` (development, with `.env.example` and `.env`), `deno task start`
 * (production), or the binary from `deno task compile`.
 *
 * @module
 */
import { dirname } from "node:path";
import { createApp } from "./src/app.ts";
import { systemClock } from "./src/clock.ts";
import { CONFIG_NAMES, ConfigError, loadConfig } from "./src/config.ts";
import type { Dispatcher } from "./src/dispatch/dispatcher.ts";
import { createLogger } from "./src/log.ts";
import { redactSpanUrls } from "./src/telemetry.ts";

/** After SIGINT/SIGTERM, the process exits within this bound whatever is still running. */
const SHUTDOWN_GRACE_MS = 4_500;
/** Running handlers get this long to finish; the rest is aborted and retried after its lease. */
const HANDLER_GRACE_MS = 3_000;

/** Options for {@linkcode runService}. */
export interface ServiceOptions {
  /** Command-line arguments: `--dev` accepts the `.env.example` placeholders. */
  args: string[];
  /** The handlers to run; defaults to the built-in ones. */
  dispatcher?: Dispatcher;
}

if (import.meta.main) await runService({ args: Deno.args });

/**
 * Runs the service until SIGINT or SIGTERM: reads the environment, opens Deno KV, serves HTTP and
 * runs the worker. Exits the process when the configuration is invalid and when stopped.
 */
export async function runService(options: ServiceOptions): Promise<void> {
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

  const kv = await _openKv(config.KV_PATH);
  const app = await createApp({
    config,
    logger,
    kv,
    clock: systemClock,
    ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
  });
  app.worker.start();
  const server = Deno.serve({
    hostname: config.HOST,
    port: config.PORT,
    onListen: ({ hostname, port }) => logger.info("listening", { hostname, port }),
  }, app.fetch);

  let stopping = false;
  const stop = async (signal: Deno.Signal): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info("shutting down", { signal });
    const deadline = setTimeout(() => {
      logger.error("shutdown took too long; exiting", { graceMs: SHUTDOWN_GRACE_MS });
      Deno.exit(1);
    }, SHUTDOWN_GRACE_MS);
    await app.drain();
    await server.shutdown();
    await app.worker.stop(HANDLER_GRACE_MS);
    kv.close();
    clearTimeout(deadline);
    logger.info("stopped");
    Deno.exit(0);
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => void stop(signal));
  }
}

/** Opens Deno KV at `path`, creating its directory first: `Deno.openKv` does not. */
async function _openKv(path: string): Promise<Deno.Kv> {
  const isLocalFile = path !== ":memory:" && !/^https?:\/\//.test(path);
  if (isLocalFile) await Deno.mkdir(dirname(path), { recursive: true });
  return await Deno.openKv(path);
}
