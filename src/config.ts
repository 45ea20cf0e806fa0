/**
 * Configuration: one camelCase {@linkcode Config} in milliseconds, every default written once in
 * {@linkcode DEFAULTS}, every bound once in {@linkcode BOUNDS}, each setting's validation in one
 * schema, resolved once at start.
 *
 * {@linkcode resolveConfig} takes the settings from code; `config_env.ts` reads them from the
 * environment (`loadConfig`, for `main.ts`). Both go through {@linkcode resolveSettings}: it fills
 * the defaults, applies the same bounds, then the rules between settings of `config_rules.ts`
 * (the fail-closed checks), and throws a {@linkcode ConfigError} naming the setting as it was
 * given: the variable, or the field. The service fails closed: without an app secret or a verify
 * token there is no configuration.
 *
 * @module
 */
import { z } from "zod";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "./ops/log.ts";
import { pgUrlProblem } from "./store/pg/url.ts";
// A cycle: declarations.ts throws this module's ConfigError. Neither uses the other at load time.
import {
  checkDestinations,
  type Destination,
  type DestinationDeclaration,
} from "./destinations/declarations.ts";
import { crossCheck } from "./config_rules.ts";

const MINUTE_MS = 60_000;
/** One hour in milliseconds: the unit of the settings the environment gives in hours. */
export const HOUR_MS = 60 * MINUTE_MS;
/** One day in milliseconds: the unit of the settings the environment gives in days. */
export const DAY_MS = 24 * HOUR_MS;

/** The validated configuration of one service process; durations in milliseconds. */
export interface Config {
  /** HTTP port; 0 picks a free one. */
  port: number;
  /** The interface to listen on. */
  host: string;
  /**
   * Deno KV: a file, `:memory:`, or a KV Connect URL (`https://…`, a `denokv` server or a Deno
   * Deploy database, authenticated by `DENO_KV_ACCESS_TOKEN`). Unset on Deno Deploy: the app's
   * database.
   */
  kvPath: string;
  /**
   * A PostgreSQL URL (`postgres://user:password@host:5432/database?sslmode=require`) selects the
   * PostgreSQL store, shared by every instance; unset keeps Deno KV at `kvPath`. Never logged: it
   * may hold a password.
   */
  storeUrl?: string | undefined;
  /** Connections of the PostgreSQL store's pool, per instance. */
  storePoolSize: number;
  /** Meta's app secrets deliveries may be signed with: several while rotating. Never logged. */
  appSecrets: string[];
  /** The Meta app's id (App Dashboard, App settings > Basic), for `deno task doctor`; unset skips it. */
  appId?: string | undefined;
  /** The verify token typed into Meta's webhook settings. */
  verifyToken: string;
  /** The Cloud API access token for every number without its own. Never logged. */
  whatsappToken?: string | undefined;
  /** Tokens by phone number id, for numbers that do not use `whatsappToken`. Never logged. */
  whatsappTokens: Record<string, string>;
  /** Where the Graph API is, without a final slash. */
  graphApiBaseUrl: string;
  /** The Graph API version of outbound calls, like `v26.0`. */
  graphApiVersion: string;
  /** Bearer token of the admin API; unset disables it. */
  adminToken?: string | undefined;
  /** The least severe level logged. */
  logLevel: LogLevel;
  /** `auto`: readable lines at a terminal, JSON lines in a pipe, a file or a log collector. */
  logFormat: LogFormat;
  /** The largest accepted delivery. */
  maxBodyBytes: number;
  /**
   * A request's whole body must arrive this long after its headers, or it is answered 408 and its
   * connection closed: Meta sends at most 3 MB at once; a client that trickles holds a connection.
   */
  bodyTimeoutMs: number;
  /** Connections are recycled this often, so an idle or half-sent one lives about this long. */
  idleConnectionMs: number;
  /** How long an event id is remembered, to drop Meta's redeliveries. */
  dedupTtlMs: number;
  /** How long event records stay listable (and replayable) in the admin API. */
  eventRetentionMs: number;
  /** Runs of an event's handlers before it is dead-lettered. */
  retryMaxAttempts: number;
  /** The first retry's delay; doubled for each further one. */
  retryBaseDelayMs: number;
  /** The longest delay between two attempts, whatever a `Retry-After` asks. */
  retryMaxDelayMs: number;
  /** How long a claim holds an event; extended while its handlers run. */
  leaseMs: number;
  /** Events handled at the same time; 0 runs no worker (record and acknowledge only). */
  workerConcurrency: number;
  /** Answer each inbound text message with its own text (the example handler). */
  echoReplies: boolean;
  /** Outbound calls per second per phone number id. */
  graphMessagesPerSecond: number;
  /** How long one Graph API request may take. */
  graphTimeoutMs: number;
  /** No delivery for this long makes `/readyz` warn and sets the silence gauge; 0 turns it off. */
  silenceAfterMs: number;
  /** How long the status of a sent message is kept after its last change. */
  statusRetentionMs: number;
  /**
   * The HTTP endpoints every recorded event is delivered to, signed (see `destinations/`); their
   * secrets are never logged. Declared as JSON in `DESTINATIONS` or `DESTINATIONS_FILE`.
   */
  destinations: Destination[];
  /**
   * The business's RSA private key (PEM) that opens WhatsApp Flows requests; set, it turns the
   * Flows endpoint on (`flows/`). Never logged.
   */
  flowsPrivateKey?: string | undefined;
  /** The passphrase of an encrypted `flowsPrivateKey`. Never logged. */
  flowsKeyPassphrase?: string | undefined;
  /** The path Meta posts Flows requests to: the flow's endpoint URL ends with it. */
  flowsPath: string;
  /** Fetch and keep every inbound image, audio, video, document and sticker (`handlers/`). */
  mediaCapture: boolean;
  /** Where captured media go: a local directory, or Deno KV in parts (Deno Deploy has no disk). */
  mediaStore: MediaStoreKind;
  /** The directory of the `dir` media store. */
  mediaDir: string;
  /** Larger media are not kept: their record says why. */
  mediaMaxBytes: number;
  /** The console never shows message text, not even on request (`CONSOLE_HIDE_TEXT=on`). */
  consoleHidesText: boolean;
}

/** The media stores: `dir` (`media/dir_store.ts`) and `kv` (`store/kv/media.ts`). */
export const MEDIA_STORE_KINDS = ["dir", "kv"] as const;

/** A media store's kind. */
export type MediaStoreKind = (typeof MEDIA_STORE_KINDS)[number];

/** The settings without which there is no configuration. */
type _RequiredField = "appSecrets" | "verifyToken";

/**
 * The settings of {@linkcode resolveConfig}: {@linkcode Config} with only `appSecrets` and
 * `verifyToken` required; what is left out (or `undefined`) takes its value from {@linkcode DEFAULTS}.
 * Destinations are given as declarations, their own defaults left out.
 */
export type ConfigInput =
  & Pick<Config, _RequiredField>
  & { [K in Exclude<keyof Config, _RequiredField | "destinations">]?: Config[K] | undefined }
  & { destinations?: readonly DestinationDeclaration[] | undefined };

/** Every default of the service, written here once: camelCase, durations in milliseconds. */
export const DEFAULTS = Object.freeze({
  port: 3001,
  host: "0.0.0.0",
  /** The only directory the tasks may write. */
  kvPath: "./data/wa-webhook.kv",
  /**
   * Enough for two group-committed statements of each kind in flight beside claims and reads;
   * ten instances take 100 of PostgreSQL's default `max_connections`.
   */
  storePoolSize: 10,
  /** Meta's Graph API host. */
  graphApiBaseUrl: "https://graph.facebook.com",
  /** The newest Graph API version in our reference (released 29 Jul 2026). */
  graphApiVersion: "v26.0",
  logLevel: "info",
  logFormat: "auto",
  /** Meta's documented maximum webhook payload (3 MB), read as 3 MiB. */
  maxBodyBytes: 3 * 1024 * 1024,
  bodyTimeoutMs: 10_000,
  /**
   * Longer than clients keep an idle connection for reuse (Go 90 s, nginx 75 s), rare enough that
   * the listener handover (which can reset a connection being opened) happens 30 times an hour.
   */
  idleConnectionMs: 2 * MINUTE_MS,
  /** Longer than Meta's 7-day retry window, so a late retry is still recognised. */
  dedupTtlMs: 8 * DAY_MS,
  eventRetentionMs: 7 * DAY_MS,
  /** With the delays below: 1 s, 2 s, 4 s, … up to 15 min. */
  retryMaxAttempts: 8,
  retryBaseDelayMs: 1_000,
  retryMaxDelayMs: 15 * MINUTE_MS,
  /** Long enough for most handlers, short enough that a crash costs seconds. */
  leaseMs: 15_000,
  /** Enough runs at once that results share commits (16 drained about 30% slower). */
  workerConcurrency: 64,
  echoReplies: false,
  /** Meta's default throughput per business phone number (reference §9.5). */
  graphMessagesPerSecond: 80,
  /** One request, answer body included. */
  graphTimeoutMs: 10_000,
  silenceAfterMs: HOUR_MS,
  /** A month of history. */
  statusRetentionMs: 30 * DAY_MS,
  /** None: events reach the handlers only. A destination's own defaults are `DESTINATION_DEFAULTS`. */
  destinations: [] as Destination[],
  flowsPath: "/flows",
  mediaCapture: false,
  mediaStore: "dir" as MediaStoreKind,
  /** Inside `./data`, the only directory the tasks may write. */
  mediaDir: "./data/media",
  /** Meta accepts media messages up to 100 MB (reference §5.2). */
  mediaMaxBytes: 100 * 1024 * 1024,
  /** Shown on request: an operator opens it deliberately, one event at a time. */
  consoleHidesText: false,
}) satisfies Partial<Config>;

/** Admin tokens shorter than this are refused: they could be guessed. */
const MIN_ADMIN_TOKEN_LENGTH = 16;

/** A Flows path: plain segments, so that it is matched exactly like the other fixed routes. */
const _FLOWS_PATH = /^\/[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/;

/** The service's own paths and prefixes (`routes.ts`), which the Flows path must not take. */
const _SERVICE_PATHS = ["/webhook", "/healthz", "/readyz", "/metrics", "/admin", "/console"];

/** Meta's highest throughput tier: more than this per number is never allowed. */
const MAX_MESSAGES_PER_SECOND = 1_000;

/**
 * The whole-number settings and their bounds, in the config's units (milliseconds); written once
 * here, for code and environment alike (a variable in hours or days gets them in its unit).
 */
export const BOUNDS = {
  port: { min: 0, max: 65535 },
  storePoolSize: { min: 2, max: 200 },
  maxBodyBytes: { min: 1024, max: 64 * 1024 * 1024 },
  bodyTimeoutMs: { min: 100, max: 2 * MINUTE_MS },
  idleConnectionMs: { min: 1_000, max: HOUR_MS },
  dedupTtlMs: { min: HOUR_MS, max: 365 * DAY_MS },
  eventRetentionMs: { min: HOUR_MS, max: 365 * DAY_MS },
  retryMaxAttempts: { min: 1, max: 100 },
  retryBaseDelayMs: { min: 1, max: DAY_MS },
  retryMaxDelayMs: { min: 1, max: 7 * DAY_MS },
  leaseMs: { min: 1_000, max: HOUR_MS },
  workerConcurrency: { min: 0, max: 1_000 },
  graphMessagesPerSecond: { min: 1, max: MAX_MESSAGES_PER_SECOND },
  graphTimeoutMs: { min: 100, max: 10 * MINUTE_MS },
  silenceAfterMs: { min: 0, max: 30 * DAY_MS },
  statusRetentionMs: { min: DAY_MS, max: 365 * DAY_MS },
  mediaMaxBytes: { min: 1024, max: 2 * 1024 * 1024 * 1024 },
} as const satisfies { [field in keyof Config]?: { min: number; max: number } };

/** A setting that is a whole number within {@linkcode BOUNDS}. */
export type WholeNumberField = keyof typeof BOUNDS;

/** Why a whole-number setting, given as `got`, is refused: in the unit it was given in. */
export function wholeNumberReason(min: number, max: number, got: unknown): string {
  return `expected a whole number from ${min} to ${max}, got "${String(got)}"`;
}

/** A whole-number setting from code, within its bounds, or its default when left out. */
function _wholeNumber(field: WholeNumberField): z.ZodType<number> {
  const { min, max } = BOUNDS[field];
  return z.unknown().optional().transform((value, ctx) => {
    if (value === undefined) return DEFAULTS[field];
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      ctx.addIssue({ code: "custom", message: wholeNumberReason(min, max, value) });
      return z.NEVER;
    }
    return value;
  });
}

/** Text that must be given and not blank; `what` says which, in the refusal. */
export function requiredText(what: string): z.ZodString {
  return z.string({ error: `is required: ${what}` }).trim().min(1, `is required: ${what}`);
}

/** Tokens by phone number id. Errors name the id, never the token. */
const _tokensByPhoneNumberId = z.unknown().optional().transform((value, ctx) => {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    ctx.addIssue({ code: "custom", message: "expected tokens by phone number id" });
    return z.NEVER;
  }
  const tokens: Record<string, string> = {};
  for (const [phoneNumberId, token] of Object.entries(value)) {
    if (!/^\d+$/.test(phoneNumberId) || typeof token !== "string" || token.trim() === "") {
      ctx.addIssue({
        code: "custom",
        message:
          `expected phone number ids (digits) with a token each; "${phoneNumberId}" is not one`,
      });
      return z.NEVER;
    }
    tokens[phoneNumberId] = token.trim();
  }
  return tokens;
});

/**
 * The settings, as {@linkcode resolveConfig} takes them, with the defaults filled in. Its fields
 * are in the order of the start task's `--allow-env` list, the order a refusal lists them in.
 */
const _configSchema = z.strictObject({
  port: _wholeNumber("port"),
  host: z.string().trim().min(1, "must not be empty").default(DEFAULTS.host),
  kvPath: z.string().trim().min(1, "must not be empty").default(DEFAULTS.kvPath),
  storeUrl: z.string().trim().optional().transform((url, ctx) => {
    if (url === undefined || url === "") return undefined;
    const problem = pgUrlProblem(url);
    if (problem === undefined) return url;
    // The URL itself is never quoted: it may hold a password.
    ctx.addIssue({ code: "custom", message: problem });
    return z.NEVER;
  }),
  storePoolSize: _wholeNumber("storePoolSize"),
  appSecrets: z.array(z.string().trim().min(1, "has an empty secret"), {
    error: "is required: the app secrets from Meta's App Dashboard",
  }).min(1, "is required: the app secrets from Meta's App Dashboard"),
  appId: z.string().trim().regex(/^\d+$/, "expected the app's numeric id (App settings > Basic)")
    .optional(),
  verifyToken: requiredText("the verify token typed into Meta's webhook settings"),
  whatsappToken: z.string().trim().min(1, "must not be empty").optional(),
  graphApiBaseUrl: z.url({ protocol: /^https?$/, error: "expected an http(s) URL" })
    .default(DEFAULTS.graphApiBaseUrl)
    .transform((url) => url.replace(/\/+$/, "")),
  graphApiVersion: z.string().trim().regex(/^v\d+\.\d+$/, 'expected a version like "v26.0"')
    .default(DEFAULTS.graphApiVersion),
  adminToken: z.string().trim().min(
    MIN_ADMIN_TOKEN_LENGTH,
    `must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`,
  ).optional(),
  logLevel: z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(", ")}` })
    .default(DEFAULTS.logLevel),
  logFormat: z.enum(LOG_FORMATS, { error: `expected one of ${LOG_FORMATS.join(", ")}` })
    .default(DEFAULTS.logFormat),
  maxBodyBytes: _wholeNumber("maxBodyBytes"),
  bodyTimeoutMs: _wholeNumber("bodyTimeoutMs"),
  idleConnectionMs: _wholeNumber("idleConnectionMs"),
  dedupTtlMs: _wholeNumber("dedupTtlMs"),
  eventRetentionMs: _wholeNumber("eventRetentionMs"),
  retryMaxAttempts: _wholeNumber("retryMaxAttempts"),
  retryBaseDelayMs: _wholeNumber("retryBaseDelayMs"),
  retryMaxDelayMs: _wholeNumber("retryMaxDelayMs"),
  leaseMs: _wholeNumber("leaseMs"),
  workerConcurrency: _wholeNumber("workerConcurrency"),
  echoReplies: z.boolean({ error: (issue) => `expected true or false, got "${issue.input}"` })
    .default(DEFAULTS.echoReplies),
  whatsappTokens: _tokensByPhoneNumberId,
  graphMessagesPerSecond: _wholeNumber("graphMessagesPerSecond"),
  graphTimeoutMs: _wholeNumber("graphTimeoutMs"),
  silenceAfterMs: _wholeNumber("silenceAfterMs"),
  statusRetentionMs: _wholeNumber("statusRetentionMs"),
  destinations: z.unknown().optional().transform((value, ctx) => {
    if (value === undefined) return [...DEFAULTS.destinations];
    const check = checkDestinations(value);
    if (check.isValid) return check.destinations;
    for (const reason of check.reasons) ctx.addIssue({ code: "custom", message: reason });
    return z.NEVER;
  }),
  flowsPrivateKey: z.string().trim().min(1, "must not be empty").optional(),
  flowsKeyPassphrase: z.string().min(1, "must not be empty").optional(),
  flowsPath: z.string().trim().regex(
    _FLOWS_PATH,
    'expected a path such as "/flows": a "/" then letters, digits, "-", "_", "." or "/"',
  ).refine(
    (path) => !_SERVICE_PATHS.some((own) => path === own || path.startsWith(`${own}/`)),
    `must not be one of the service's own paths (${_SERVICE_PATHS.join(", ")})`,
  ).default(DEFAULTS.flowsPath),
  mediaCapture: z.boolean({ error: (issue) => `expected on or off, got "${issue.input}"` })
    .default(DEFAULTS.mediaCapture),
  mediaStore: z.enum(MEDIA_STORE_KINDS, {
    error: `expected one of ${MEDIA_STORE_KINDS.join(", ")}`,
  })
    .default(DEFAULTS.mediaStore),
  mediaDir: z.string().trim().min(1, "must not be empty").default(DEFAULTS.mediaDir),
  mediaMaxBytes: _wholeNumber("mediaMaxBytes"),
  consoleHidesText: z.boolean({ error: (issue) => `expected on or off, got "${issue.input}"` })
    .default(DEFAULTS.consoleHidesText),
});

/** Raised when the settings cannot make a safe configuration; the message says why. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Options for {@linkcode resolveConfig} and `loadConfig` of `config_env.ts`. */
export interface LoadConfigOptions {
  /** Accept the `.env.example` placeholders (`deno task dev`); production refuses them. */
  isDevelopment?: boolean;
}

/** A configuration and the warnings worth one log line each. */
export interface LoadedConfig {
  /** The settings, checked and complete. */
  config: Config;
  /** What may be a mistake but does not stop the service, one log line each. */
  warnings: string[];
}

/**
 * What a refusal calls each setting, in the order it lists them: the environment's variables, or
 * the fields themselves.
 */
export type SettingNames = Readonly<Record<keyof Config, string>>;

/** Each field named as itself, in the schema's order. */
const _FIELD_NAMES = Object.fromEntries(
  Object.keys(_configSchema.shape).map((field) => [field, field]),
) as SettingNames;

/** One reason a configuration is refused, before it is worded. */
export interface SettingProblem {
  /** The setting it is about; none for the settings as a whole. */
  field?: string;
  /** What is wrong, after the setting's name. */
  reason: string;
}

/**
 * Resolves settings given in code, as a library user or a test gives them: fills in
 * {@linkcode DEFAULTS} and applies the bounds and cross-checks, as `loadConfig` of
 * `config_env.ts` does for the variables of the same settings.
 *
 * @throws {ConfigError} naming each bad field and the reason, one per line
 */
export function resolveConfig(input: ConfigInput, options: LoadConfigOptions = {}): LoadedConfig {
  return resolveSettings(input, options, { names: _FIELD_NAMES, problems: [] });
}

/**
 * The rules both entries share: the schema, then the cross-checks. `given.problems` are the
 * settings the caller could not read (their fields are not reported again as missing);
 * `given.names` words every reason and orders them.
 *
 * @throws {ConfigError} naming each bad setting and the reason, one per line
 */
export function resolveSettings(
  input: unknown,
  options: LoadConfigOptions,
  given: { names: SettingNames; problems: SettingProblem[] },
): LoadedConfig {
  const { names } = given;
  const naming = (field: keyof Config) => names[field];
  // A setting the environment could not read is not reported again as missing.
  const unread = new Set(given.problems.map((problem) => problem.field));
  const parsed = _configSchema.safeParse(input);
  const problems = [
    ...given.problems,
    ...(parsed.success ? [] : parsed.error.issues.flatMap(_problemsOf))
      .filter((problem) => !unread.has(problem.field)),
  ];
  if (problems.length > 0 || !parsed.success) {
    const order = Object.keys(names);
    problems.sort((a, b) => order.indexOf(a.field ?? "") - order.indexOf(b.field ?? ""));
    throw new ConfigError(
      problems.map(({ field, reason }) =>
        field === undefined
          ? `Invalid configuration: ${reason}`
          : `Invalid configuration: ${naming(field as keyof Config)} ${reason}`
      ).join("\n"),
    );
  }
  const checked = crossCheck(parsed.data, { ...options, naming });
  if (checked.problems.length > 0) throw new ConfigError(checked.problems.join("\n"));
  return { config: checked.config, warnings: checked.warnings };
}

function _problemsOf(issue: z.core.$ZodIssue): SettingProblem[] {
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => ({ reason: `unknown setting "${key}"` }));
  }
  const field = issue.path[0];
  return [{ ...(field === undefined ? {} : { field: String(field) }), reason: issue.message }];
}
