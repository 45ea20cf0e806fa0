/**
 * Test support: a configuration for tests, a captured logger, a temp-file Deno KV, and the app
 * served on a real loopback socket.
 *
 * @module
 */
import { type App, type AppOptions, createApp, storeOptions } from "../src/app.ts";
import { type Clock, type ManualClock, systemClock } from "../src/ops/clock.ts";
import type { Config } from "../src/config.ts";
import { loadConfig } from "../src/config_env.ts";
import { createLogger, type Logger, type LogLevel } from "../src/ops/log.ts";
import { signBody } from "../src/webhook/signature.ts";
import { createKvStore } from "../src/store/kv/store.ts";
import { LOCAL_CHECKS_PER_ATOMIC } from "../src/store/kv/location.ts";
import type { Store } from "../src/store/store.ts";

/** The app secret tests sign with. */
export const TEST_SECRET = "test-app-secret-0123456789";
/** The verify token tests use. */
export const TEST_VERIFY_TOKEN = "test-verify-token-0123456789";
/** The admin token tests use. */
export const TEST_ADMIN_TOKEN = "test-admin-token-0123456789";

/** A valid configuration for tests, with `overrides` applied to the raw environment. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    APP_SECRET: TEST_SECRET,
    VERIFY_TOKEN: TEST_VERIFY_TOKEN,
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    KV_PATH: ":memory:",
    LOG_LEVEL: "debug",
    ...overrides,
  }).config;
}

/** The store options of the service's defaults: event ids 8 days, records 7 days, 15 s leases. */
export const TEST_STORE_OPTIONS = {
  dedupTtlMs: 8 * 24 * 3_600_000,
  retentionMs: 7 * 24 * 3_600_000,
  leaseMs: 15_000,
};

/** The Deno KV store over `kv`, with the default options and `overrides`. */
export function kvStore(
  kv: Deno.Kv,
  overrides: Partial<typeof TEST_STORE_OPTIONS> & { logger?: Logger } = {},
): Store {
  return createKvStore(kv, { ...TEST_STORE_OPTIONS, ...overrides });
}

/** A logger whose lines are kept in `lines` (parsed) and `text` (raw). */
export interface CapturedLogger {
  logger: Logger;
  lines: Record<string, unknown>[];
  text: () => string;
}

/** Captures every line a logger writes, from `level` up. */
export function captureLogs(level: LogLevel = "debug"): CapturedLogger {
  const raw: string[] = [];
  const logger = createLogger({ level, sink: (line) => raw.push(line) });
  return {
    logger,
    get lines() {
      return raw.map((line) => JSON.parse(line));
    },
    text: () => raw.join("\n"),
  };
}

/** A Deno KV on a fresh temp file, removed on dispose. */
export interface TempKv extends AsyncDisposable {
  kv: Deno.Kv;
  path: string;
}

/** Opens Deno KV on a new temp file. */
export async function openTempKv(): Promise<TempKv> {
  const dir = await Deno.makeTempDir({ prefix: "wa-webhook-test-" });
  const path = `${dir}/test.kv`;
  const kv = await Deno.openKv(path);
  let isClosed = false;
  return {
    kv,
    path,
    async [Symbol.asyncDispose]() {
      if (!isClosed) {
        isClosed = true;
        try {
          kv.close();
        } catch { /* closed by the test */ }
      }
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A running test server. */
export interface TestServer extends AsyncDisposable {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  logs: CapturedLogger;
  app: App;
  kv: Deno.Kv;
  store: Store;
}

/** Options for {@linkcode startTestServer}. */
export interface TestServerOptions extends Partial<Omit<AppOptions, "logger" | "store">> {
  /** The Deno KV the app's store uses; a temp file by default. */
  kv?: Deno.Kv;
  /** Raw environment overrides for {@linkcode testConfig}. */
  env?: Record<string, string>;
  /** Start the worker (default true). */
  startWorker?: boolean;
}

/** Serves the app on 127.0.0.1 with an OS-chosen port over a temp KV; dispose it to stop. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const logs = captureLogs();
  const temp = options.kv ? undefined : await openTempKv();
  const kv = options.kv ?? temp!.kv;
  const clock: Clock = options.clock ?? systemClock;
  const config = options.config ?? testConfig(options.env);
  // A local file or memory, as the service opens it: a hundred checks per atomic.
  const store = createKvStore(kv, {
    ...storeOptions(config),
    logger: logs.logger,
    checksPerAtomic: LOCAL_CHECKS_PER_ATOMIC,
  });
  const app = await createApp({ ...options, config, logger: logs.logger, store, clock });
  if (options.startWorker !== false) {
    app.worker.start();
    app.deliveries.start();
  }
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  return {
    origin: `http://127.0.0.1:${server.addr.port}`,
    logs,
    app,
    kv,
    store,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      await Promise.all([app.worker.stop(1_000), app.deliveries.stop(1_000)]);
      await temp?.[Symbol.asyncDispose]();
    },
  };
}

/** Posts exactly `body` to the webhook, signed with `secret` unless `signature` is given. */
export async function postDelivery(
  origin: string,
  body: Uint8Array<ArrayBuffer> | string,
  options: { secret?: string; signature?: string | null; headers?: Record<string, string> } = {},
): Promise<Response> {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const signature = options.signature === undefined
    ? await signBody(options.secret ?? TEST_SECRET, bytes)
    : options.signature;
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    ...options.headers,
  };
  if (signature !== null) headers["X-Hub-Signature-256"] = signature;
  return await fetch(`${origin}/webhook/whatsapp`, { method: "POST", headers, body: bytes });
}

/** Polls `condition` every 10 ms until it holds, failing after `timeoutMs` of real time. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Moves the manual clock forward in steps until `condition` holds, letting the worker run between
 * steps (it may register its next sleep a moment after the state the test saw).
 */
export async function advanceUntil(
  clock: ManualClock,
  condition: () => Promise<boolean>,
  what: string,
  stepMs = 25,
): Promise<void> {
  await waitFor(async () => {
    if (await condition()) return true;
    await clock.advance(stepMs);
    return false;
  }, what);
}
