/**
 * Test support: a configuration for tests, a captured logger, and the app served on a real
 * loopback socket.
 *
 * @module
 */
import { type AppOptions, createApp } from "../src/app.ts";
import { type Config, loadConfig } from "../src/config.ts";
import { createLogger, type Logger, type LogLevel } from "../src/log.ts";
import { signBody } from "../src/webhook/signature.ts";

/** The app secret tests sign with. */
export const TEST_SECRET = "test-app-secret-0123456789";
/** The verify token tests use. */
export const TEST_VERIFY_TOKEN = "test-verify-token-0123456789";

/** A valid configuration for tests, with `overrides` applied to the raw environment. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    APP_SECRET: TEST_SECRET,
    VERIFY_TOKEN: TEST_VERIFY_TOKEN,
    KV_PATH: ":memory:",
    LOG_LEVEL: "debug",
    ...overrides,
  }).config;
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

/** A running test server. */
export interface TestServer extends AsyncDisposable {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  logs: CapturedLogger;
}

/** Serves the app on 127.0.0.1 with an OS-chosen port; dispose it to stop. */
export async function startTestServer(
  options: Partial<AppOptions> & { env?: Record<string, string> } = {},
): Promise<TestServer> {
  const logs = captureLogs();
  const app = await createApp({
    config: options.config ?? testConfig(options.env),
    logger: logs.logger,
    ...(options.recordDelivery ? { recordDelivery: options.recordDelivery } : {}),
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  return {
    origin: `http://127.0.0.1:${server.addr.port}`,
    logs,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
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
