/**
 * Configuration: one zod schema over the environment, read once at start by `main.ts`.
 *
 * The service fails closed: without `APP_SECRET` or `VERIFY_TOKEN`, with the placeholder values
 * of `.env.example`, or with `ECHO_REPLIES=true` and no access token, outside development,
 * {@linkcode loadConfig} throws a {@linkcode ConfigError} whose message names the variable and the
 * reason. In development the last two are warnings (and echo stays off). Settings that cannot work
 * together are refused too (a retry base delay above the maximum delay); an app secret too short
 * to be Meta's is a warning.
 *
 * @module
 */
import { z } from "zod";
import { DEFAULT_MESSAGES_PER_SECOND } from "./graph/rate_limit.ts";
import { LOG_FORMATS, LOG_LEVELS } from "./ops/log.ts";

/** Meta's documented maximum webhook payload (3 MB), read as 3 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024;

/** The newest Graph API version in our reference (released 29 Jul 2026). */
export const DEFAULT_GRAPH_API_VERSION = "v26.0";

/** The placeholder secrets of `.env.example`: accepted only in development, with a warning. */
export const DEVELOPMENT_PLACEHOLDERS = {
  APP_SECRET: "dev-app-secret-change-me",
  VERIFY_TOKEN: "dev-verify-token-change-me",
  ADMIN_TOKEN: "dev-admin-token-change-me",
} as const;

/** Where Deno KV lives when `KV_PATH` is unset: the only directory the tasks may write. */
export const DEFAULT_KV_PATH = "./data/wa-webhook.kv";

/** Admin tokens shorter than this are refused: they could be guessed. */
const MIN_ADMIN_TOKEN_LENGTH = 16;

/**
 * Meta's app secrets are 32 hex characters; a secret shorter than this cannot be one (a typo, or a
 * value copied from the wrong field) and gets a warning: no delivery from Meta would verify.
 */
const MIN_APP_SECRET_LENGTH = 16;

/** Meta's highest throughput tier: more than this per number is never allowed. */
const MAX_MESSAGES_PER_SECOND = 1_000;

const _optionalText = z.string().trim().min(1).optional();

function _integer(min: number, max: number, fallback: number): z.ZodType<number> {
  return z.string().trim().optional().transform((raw, ctx) => {
    if (raw === undefined || raw === "") return fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) {
      ctx.addIssue({
        code: "custom",
        message: `expected a whole number from ${min} to ${max}, got "${raw}"`,
      });
      return z.NEVER;
    }
    return value;
  });
}

function _boolean(fallback: boolean): z.ZodType<boolean> {
  return z.string().trim().optional().transform((raw, ctx) => {
    if (raw === undefined || raw === "") return fallback;
    if (raw === "true" || raw === "false") return raw === "true";
    ctx.addIssue({ code: "custom", message: `expected "true" or "false", got "${raw}"` });
    return z.NEVER;
  });
}

/**
 * `<phone_number_id>:<token>` pairs, comma-separated, as a map. Errors name the entry by its
 * position, never by its text: it holds a token.
 */
const _tokensByPhoneNumberId = z.string().trim().optional().transform((raw, ctx) => {
  const tokens: Record<string, string> = {};
  if (raw === undefined || raw === "") return tokens;
  const entries = raw.split(",").map((entry) => entry.trim());
  for (const [index, entry] of entries.entries()) {
    const separator = entry.indexOf(":");
    const phoneNumberId = entry.slice(0, separator).trim();
    const token = entry.slice(separator + 1).trim();
    if (separator < 0 || !/^\d+$/.test(phoneNumberId) || token === "") {
      ctx.addIssue({
        code: "custom",
        message: `expected comma-separated "<phone_number_id>:<token>" pairs; entry ${
          index + 1
        } is not one`,
      });
      return z.NEVER;
    }
    if (phoneNumberId in tokens) {
      ctx.addIssue({
        code: "custom",
        message: `has phone number id "${phoneNumberId}" more than once`,
      });
      return z.NEVER;
    }
    tokens[phoneNumberId] = token;
  }
  return tokens;
});

function _required(what: string): z.ZodType<string> {
  return z.string({ error: `is required: ${what}` }).trim().min(1, `is required: ${what}`);
}

const _envSchema = z.object({
  PORT: _integer(0, 65535, 3001),
  HOST: z.string().trim().min(1).default("0.0.0.0"),
  /**
   * A file, `:memory:`, or a KV Connect URL (`https://…`, a `denokv` server or a Deno Deploy
   * database, authenticated by `DENO_KV_ACCESS_TOKEN`). Unset on Deno Deploy: the app's database.
   */
  KV_PATH: z.string().trim().min(1).default(DEFAULT_KV_PATH),
  APP_SECRET: _required("the app secret from Meta's App Dashboard (comma-separated to rotate)")
    .transform((raw, ctx) => {
      const secrets = raw.split(",").map((s) => s.trim());
      if (secrets.some((s) => s === "")) {
        ctx.addIssue({
          code: "custom",
          message: "has an empty secret in its comma-separated list",
        });
        return z.NEVER;
      }
      return secrets;
    }),
  VERIFY_TOKEN: _required("the verify token typed into Meta's webhook settings"),
  WHATSAPP_TOKEN: _optionalText,
  GRAPH_API_BASE_URL: z.url({ protocol: /^https?$/, error: "expected an http(s) URL" })
    .default("https://graph.facebook.com")
    .transform((url) => url.replace(/\/+$/, "")),
  GRAPH_API_VERSION: z.string().trim().regex(/^v\d+\.\d+$/, 'expected a version like "v26.0"')
    .default(DEFAULT_GRAPH_API_VERSION),
  ADMIN_TOKEN: z.string().trim().min(
    MIN_ADMIN_TOKEN_LENGTH,
    `must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`,
  ).optional(),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(", ")}` })
    .default("info"),
  /** `auto`: readable lines at a terminal, JSON lines in a pipe, a file or a log collector. */
  LOG_FORMAT: z.enum(LOG_FORMATS, { error: `expected one of ${LOG_FORMATS.join(", ")}` })
    .default("auto"),
  MAX_BODY_BYTES: _integer(1024, 64 * 1024 * 1024, DEFAULT_MAX_BODY_BYTES),
  /**
   * A request's whole body must arrive this long after its headers, or it is answered 408 and its
   * connection closed: Meta sends at most 3 MB at once; a client that trickles holds a connection.
   */
  BODY_TIMEOUT_MS: _integer(100, 120_000, 10_000),
  /**
   * Connections are recycled this often, so an idle keep-alive or half-sent connection lives at
   * most about this long: longer than clients keep an idle connection for reuse (Go 90 s, nginx
   * 75 s), rare enough that the listener handover (which can reset a connection being opened)
   * happens 30 times an hour.
   */
  IDLE_CONNECTION_MS: _integer(1_000, 3_600_000, 120_000),
  /** Longer than Meta's 7-day retry window, so a late retry is still recognised. */
  DEDUP_TTL_HOURS: _integer(1, 24 * 365, 8 * 24),
  EVENT_RETENTION_HOURS: _integer(1, 24 * 365, 7 * 24),
  RETRY_MAX_ATTEMPTS: _integer(1, 100, 8),
  RETRY_BASE_DELAY_MS: _integer(1, 24 * 3_600_000, 1_000),
  RETRY_MAX_DELAY_MS: _integer(1, 7 * 24 * 3_600_000, 15 * 60_000),
  LEASE_MS: _integer(1_000, 3_600_000, 15_000),
  /**
   * Enough runs at once that results share commits (16 drained about 30% slower). 0 runs no
   * worker: the process only records and acknowledges, and other processes on the same KV run
   * the handlers.
   */
  WORKER_CONCURRENCY: _integer(0, 1_000, 64),
  /** Answer each inbound text message with its own text (the example handler). */
  ECHO_REPLIES: _boolean(false),
  /** Tokens of numbers that do not use `WHATSAPP_TOKEN`, for several numbers on one callback. */
  WHATSAPP_TOKENS: _tokensByPhoneNumberId,
  GRAPH_MESSAGES_PER_SECOND: _integer(1, MAX_MESSAGES_PER_SECOND, DEFAULT_MESSAGES_PER_SECOND),
  /** The same default as the client's `DEFAULT_TIMEOUT_MS` (not imported: it imports this). */
  GRAPH_TIMEOUT_MS: _integer(100, 600_000, 10_000),
  /** No delivery for this long makes `/readyz` warn and sets the silence gauge; 0 turns it off. */
  SILENCE_AFTER_MS: _integer(0, 30 * 24 * 3_600_000, 3_600_000),
  /** How long the status of a sent message is kept after its last change. */
  STATUS_RETENTION_DAYS: _integer(1, 365, 30),
});

/** The validated configuration of one service process. */
export type Config = z.output<typeof _envSchema>;

/** Every environment variable the service reads: the `--allow-env` list of the start task. */
export const CONFIG_NAMES = Object.keys(_envSchema.shape) as (keyof typeof _envSchema.shape)[];

/**
 * Variables the Deno runtime reads on the service's behalf, which `--allow-env` must list beside
 * {@linkcode CONFIG_NAMES}: `Deno.openKv` reads `DENO_KV_ACCESS_TOKEN` when `KV_PATH` is a KV
 * Connect URL (and fails without the permission, even when the variable is unset).
 */
export const RUNTIME_ENV_NAMES = ["DENO_KV_ACCESS_TOKEN"] as const;

/** Raised when the environment cannot make a safe configuration; the message says why. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Options for {@linkcode loadConfig}. */
export interface LoadConfigOptions {
  /** Accept the `.env.example` placeholders (`deno task dev`); production refuses them. */
  isDevelopment?: boolean;
}

/** A configuration and the warnings worth one log line each. */
export interface LoadedConfig {
  config: Config;
  warnings: string[];
}

/**
 * Validates the environment.
 *
 * @param env the raw values by name (missing names may be absent or `undefined`)
 * @throws {ConfigError} naming each bad variable and the reason, one per line
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  options: LoadConfigOptions = {},
): LoadedConfig {
  // An empty value means "not set", as `NAME=` in an env file reads.
  const picked = Object.fromEntries(
    CONFIG_NAMES.map((name) => [name, env[name]?.trim() === "" ? undefined : env[name]]),
  );
  const parsed = _envSchema.safeParse(picked);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? "environment");
      return `Invalid configuration: ${name} ${issue.message}`;
    });
    throw new ConfigError(lines.join("\n"));
  }
  let config = parsed.data;
  const problems: string[] = [];
  const warnings: string[] = [];
  const placeholders = _placeholdersInUse(config);
  if (placeholders.length > 0) {
    if (options.isDevelopment) {
      warnings.push(
        `Development secrets in use (${placeholders.join(", ")}): never expose this instance`,
      );
    } else {
      problems.push(
        ...placeholders.map((name) =>
          `Invalid configuration: ${name} is the development placeholder from .env.example; set a real value`
        ),
      );
    }
  }
  const shortSecrets = config.APP_SECRET.filter((secret) => secret.length < MIN_APP_SECRET_LENGTH);
  for (const secret of shortSecrets) {
    // Only its length is quoted: the secret itself never reaches a log line.
    warnings.push(
      `APP_SECRET has a secret of ${secret.length} character${
        secret.length === 1 ? "" : "s"
      }, but Meta's app secrets are 32 hex characters: copy it from the App Dashboard (App settings > Basic), or no delivery will verify`,
    );
  }
  if (config.RETRY_BASE_DELAY_MS > config.RETRY_MAX_DELAY_MS) {
    problems.push(
      `Invalid configuration: RETRY_BASE_DELAY_MS is "${config.RETRY_BASE_DELAY_MS}", above RETRY_MAX_DELAY_MS "${config.RETRY_MAX_DELAY_MS}": lower RETRY_BASE_DELAY_MS or raise RETRY_MAX_DELAY_MS`,
    );
  }
  if (config.ECHO_REPLIES && !hasGraphToken(config)) {
    if (options.isDevelopment) {
      // `.env.example` turns echo on with an empty token: a fresh clone still starts.
      config = { ...config, ECHO_REPLIES: false };
      warnings.push(
        "ECHO_REPLIES is on but neither WHATSAPP_TOKEN nor WHATSAPP_TOKENS is set: echo replies are off",
      );
    } else {
      problems.push(
        "Invalid configuration: ECHO_REPLIES is true but neither WHATSAPP_TOKEN nor WHATSAPP_TOKENS is set",
      );
    }
  }
  if (problems.length > 0) throw new ConfigError(problems.join("\n"));
  return { config, warnings };
}

/** True unless `WORKER_CONCURRENCY` is 0: a process that only records and acknowledges. */
export function hasWorker(config: Config): boolean {
  return config.WORKER_CONCURRENCY > 0;
}

/** Whether any Cloud API access token is configured, for all numbers or for some. */
export function hasGraphToken(config: Config): boolean {
  return config.WHATSAPP_TOKEN !== undefined || Object.keys(config.WHATSAPP_TOKENS).length > 0;
}

function _placeholdersInUse(config: Config): string[] {
  const used: string[] = [];
  if (config.APP_SECRET.includes(DEVELOPMENT_PLACEHOLDERS.APP_SECRET)) used.push("APP_SECRET");
  if (config.VERIFY_TOKEN === DEVELOPMENT_PLACEHOLDERS.VERIFY_TOKEN) used.push("VERIFY_TOKEN");
  if (config.ADMIN_TOKEN === DEVELOPMENT_PLACEHOLDERS.ADMIN_TOKEN) used.push("ADMIN_TOKEN");
  return used;
}
