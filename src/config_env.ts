/**
 * The configuration read from the environment: which variable holds each setting of
 * {@linkcode Config}, in which unit, and how its text becomes the setting. `main.ts` reads the
 * variables of {@linkcode CONFIG_NAMES} and hands them to {@linkcode loadConfig}; the variables,
 * their units and their messages are the README's table.
 *
 * Only the reading is here. The rules (defaults, bounds, cross-checks) are `config.ts`'s, applied
 * by the same {@linkcode resolveSettings} as `resolveConfig`, so a variable is refused exactly
 * when its field would be, and the reason names the variable. A variable counted in hours or days
 * takes its bounds from the field's, in that unit.
 *
 * @module
 */
import { z } from "zod";
import {
  BOUNDS,
  type Config,
  DAY_MS,
  HOUR_MS,
  type LoadConfigOptions,
  type LoadedConfig,
  requiredText,
  resolveSettings,
  type SettingProblem,
  type WholeNumberField,
  wholeNumberReason,
} from "./config.ts";
import {
  destinationsFileFailureReason,
  readDeclarationsText,
} from "./destinations/declarations.ts";
import { PROXY_VARIABLES } from "./destinations/transport.ts";
import { flowsKeyFileFailureReason } from "./flows/keys.ts";
import { describeValue } from "./refusal_text.ts";

/**
 * The environment variable of each setting, in the order of the start task's `--allow-env` list,
 * which is the order a refusal lists them in. Durations are milliseconds unless
 * {@linkcode _ENV_UNITS_MS} says otherwise.
 */
const _ENV_NAMES = {
  port: "PORT",
  host: "HOST",
  kvPath: "KV_PATH",
  storeUrl: "STORE_URL",
  storePoolSize: "STORE_POOL_SIZE",
  appSecrets: "APP_SECRET",
  appId: "APP_ID",
  verifyToken: "VERIFY_TOKEN",
  whatsappToken: "WHATSAPP_TOKEN",
  graphApiBaseUrl: "GRAPH_API_BASE_URL",
  graphApiVersion: "GRAPH_API_VERSION",
  adminToken: "ADMIN_TOKEN",
  logLevel: "LOG_LEVEL",
  logFormat: "LOG_FORMAT",
  maxBodyBytes: "MAX_BODY_BYTES",
  bodyTimeoutMs: "BODY_TIMEOUT_MS",
  idleConnectionMs: "IDLE_CONNECTION_MS",
  dedupTtlMs: "DEDUP_TTL_HOURS",
  eventRetentionMs: "EVENT_RETENTION_HOURS",
  retryMaxAttempts: "RETRY_MAX_ATTEMPTS",
  retryBaseDelayMs: "RETRY_BASE_DELAY_MS",
  retryMaxDelayMs: "RETRY_MAX_DELAY_MS",
  leaseMs: "LEASE_MS",
  workerConcurrency: "WORKER_CONCURRENCY",
  echoReplies: "ECHO_REPLIES",
  whatsappTokens: "WHATSAPP_TOKENS",
  graphMessagesPerSecond: "GRAPH_MESSAGES_PER_SECOND",
  graphTimeoutMs: "GRAPH_TIMEOUT_MS",
  silenceAfterMs: "SILENCE_AFTER_MS",
  statusRetentionMs: "STATUS_RETENTION_DAYS",
  destinations: "DESTINATIONS",
  flowsPrivateKey: "FLOWS_PRIVATE_KEY",
  flowsKeyPassphrase: "FLOWS_KEY_PASSPHRASE",
  flowsPath: "FLOWS_PATH",
  mediaCapture: "MEDIA_CAPTURE",
  mediaStore: "MEDIA_STORE",
  mediaDir: "MEDIA_DIR",
  mediaMaxBytes: "MEDIA_MAX_BYTES",
  consoleHidesText: "CONSOLE_HIDE_TEXT",
} as const satisfies Record<keyof Config, string>;

/**
 * The other place destinations may be declared: the path of a JSON file, read at start (the tasks
 * and the binary may read `./data` only). Not both: that is refused.
 */
const _DESTINATIONS_FILE = "DESTINATIONS_FILE";

/**
 * The other place the Flows private key may be given: the path of its PEM file, read once at
 * start (the tasks and the binary may read `./data` only). Not both: that is refused.
 */
const _FLOWS_PRIVATE_KEY_FILE = "FLOWS_PRIVATE_KEY_FILE";

/** An environment variable the service reads. */
export type ConfigName =
  | (typeof _ENV_NAMES)[keyof Config]
  | typeof _DESTINATIONS_FILE
  | typeof _FLOWS_PRIVATE_KEY_FILE;

/** Every environment variable the service reads: the `--allow-env` list of the start task. */
export const CONFIG_NAMES: ConfigName[] = [
  ...Object.values(_ENV_NAMES),
  _DESTINATIONS_FILE,
  _FLOWS_PRIVATE_KEY_FILE,
];

/** Paths are quoted up to this many characters in a refusal (they are not secret, but bounded). */
const _MAX_QUOTED_PATH_CHARS = 256;

/**
 * Variables the Deno runtime and the libraries read on the service's behalf, which `--allow-env`
 * must list beside {@linkcode CONFIG_NAMES}: `Deno.openKv` reads `DENO_KV_ACCESS_TOKEN` when
 * `KV_PATH` is a KV Connect URL, and postgres.js reads `PGAPPNAME` and `PGTARGETSESSIONATTRS`
 * whatever it is given (`store/pg/client.ts` gives it everything else); each fails without the
 * permission, even when the variable is unset. `main.ts` reads the proxy variables `fetch` honours
 * (`PROXY_VARIABLES`): deliveries go through `fetch` when one is set or cannot be read.
 */
export const RUNTIME_ENV_NAMES = [
  "DENO_KV_ACCESS_TOKEN",
  "PGAPPNAME",
  "PGTARGETSESSIONATTRS",
  ...PROXY_VARIABLES,
] as const;

/** The variables counted in hours or days rather than milliseconds: one unit, in milliseconds. */
const _ENV_UNITS_MS: { [field in WholeNumberField]?: number } = {
  dedupTtlMs: HOUR_MS,
  eventRetentionMs: HOUR_MS,
  statusRetentionMs: DAY_MS,
};

/**
 * How the environment's text becomes a setting, where it is more than the text: numbers in the
 * variable's unit, lists, booleans. Each takes the variable's value (`undefined` when unset) and
 * returns the setting as code would give it, for `config.ts`'s schema to check and complete.
 */
const _ENV_READERS: { [field in keyof Config]?: _EnvReader<Config[field]> } = {
  appSecrets: requiredText("the app secret from Meta's App Dashboard (comma-separated to rotate)")
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
  echoReplies: _envText((raw, ctx) => {
    if (raw === "true" || raw === "false") return raw === "true";
    ctx.addIssue({ code: "custom", message: `expected "true" or "false", got "${raw}"` });
    return z.NEVER;
  }),
  whatsappTokens: _envText(_readTokenPairs),
  mediaCapture: _envText(_onOff),
  consoleHidesText: _envText(_onOff),
  ...Object.fromEntries(
    Object.keys(BOUNDS).map((field) => [field, _envWholeNumber(field as WholeNumberField)]),
  ),
};

/** `on` or `off`, as a boolean. */
function _onOff(raw: string, ctx: _EnvContext): boolean {
  if (raw === "on" || raw === "off") return raw === "on";
  ctx.addIssue({ code: "custom", message: `expected "on" or "off", got "${raw}"` });
  return z.NEVER;
}

type _EnvReader<T> = z.ZodType<T | undefined, string | undefined>;
type _EnvContext = z.RefinementCtx<string | undefined>;

/** A reader of a variable that may be unset: `read` gets its trimmed text when it is set. */
function _envText<T>(read: (raw: string, ctx: _EnvContext) => T): _EnvReader<T> {
  return z.string().trim().optional().transform((raw, ctx) =>
    raw === undefined ? undefined : read(raw, ctx)
  );
}

/** A whole number in the variable's unit, its bounds in that unit; the setting in milliseconds. */
function _envWholeNumber(field: WholeNumberField): _EnvReader<number> {
  const unit = _ENV_UNITS_MS[field] ?? 1;
  const min = BOUNDS[field].min / unit;
  const max = BOUNDS[field].max / unit;
  return _envText((raw, ctx) => {
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) {
      ctx.addIssue({ code: "custom", message: wholeNumberReason(min, max, raw) });
      return z.NEVER;
    }
    return value * unit;
  });
}

/**
 * `<phone_number_id>:<token>` pairs, comma-separated, as a map. Errors name the entry by its
 * position, never by its text: it holds a token.
 */
function _readTokenPairs(raw: string, ctx: _EnvContext): Record<string, string> {
  const tokens: Record<string, string> = {};
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
}

/** Options for {@linkcode loadConfig}. */
export interface LoadEnvOptions extends LoadConfigOptions {
  /**
   * Reads the file named by `DESTINATIONS_FILE` (`main.ts` passes `readDestinationsFile` of
   * `destinations/declarations.ts`); throws when it cannot. Without it that variable is refused.
   */
  readDestinationsFile?: (path: string) => string;
  /**
   * Reads the PEM file named by `FLOWS_PRIVATE_KEY_FILE` (`main.ts` passes `readFlowsKeyFile` of
   * `flows/keys.ts`); throws when it cannot. Without it that variable is refused.
   */
  readFlowsKeyFile?: (path: string) => string;
}

/**
 * Validates the environment: the variables of {@linkcode CONFIG_NAMES}, in the units of the
 * README's table. An empty value means "not set", as `NAME=` in an env file reads. The defaults,
 * bounds and cross-checks are `resolveConfig`'s; the reasons name the variables (for destinations
 * read from a file, `DESTINATIONS_FILE` and its path).
 *
 * @param env the raw values by name (missing names may be absent or `undefined`)
 * @throws {ConfigError} naming each bad variable and the reason, one per line
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  options: LoadEnvOptions = {},
): LoadedConfig {
  const input: Record<string, unknown> = {};
  const problems: SettingProblem[] = [];
  for (const [field, name] of Object.entries(_ENV_NAMES) as [keyof Config, ConfigName][]) {
    if (field === "destinations" || field === "flowsPrivateKey") continue;
    const raw = _valueOf(env, name);
    const read = (_ENV_READERS[field] ?? z.string().optional()).safeParse(raw);
    if (!read.success) {
      problems.push(...read.error.issues.map((issue) => ({ field, reason: issue.message })));
    } else if (read.data !== undefined) input[field] = read.data;
  }
  const declarations = _destinationsText(env, options.readDestinationsFile);
  if ("reason" in declarations) {
    problems.push({ field: "destinations", reason: declarations.reason });
  } else if (declarations.text !== undefined) {
    const read = readDeclarationsText(declarations.text);
    if ("reason" in read) problems.push({ field: "destinations", reason: read.reason });
    else input.destinations = read.value;
  }
  const flowsKey = _flowsKeyText(env, options.readFlowsKeyFile);
  if ("reason" in flowsKey) problems.push({ field: "flowsPrivateKey", reason: flowsKey.reason });
  else if (flowsKey.text !== undefined) input.flowsPrivateKey = flowsKey.text;
  const names = {
    ..._ENV_NAMES,
    destinations: declarations.source,
    flowsPrivateKey: flowsKey.source,
  };
  return resolveSettings(input, options, { names, problems });
}

/**
 * The PEM text of the Flows private key, from `FLOWS_PRIVATE_KEY` or the file of
 * `FLOWS_PRIVATE_KEY_FILE`, and the name the reasons about it start with; or why it cannot be had.
 */
function _flowsKeyText(
  env: Record<string, string | undefined>,
  readFile: ((path: string) => string) | undefined,
): { source: string } & ({ text: string | undefined } | { reason: string }) {
  const inline = _valueOf(env, _ENV_NAMES.flowsPrivateKey);
  const path = _valueOf(env, _FLOWS_PRIVATE_KEY_FILE)?.trim();
  if (path === undefined) return { source: _ENV_NAMES.flowsPrivateKey, text: inline };
  if (inline !== undefined) {
    return {
      source: _ENV_NAMES.flowsPrivateKey,
      reason: `and ${_FLOWS_PRIVATE_KEY_FILE} are both set: give the key in one of them`,
    };
  }
  const source = `${_FLOWS_PRIVATE_KEY_FILE} ${describeValue(path, _MAX_QUOTED_PATH_CHARS)}`;
  if (readFile === undefined) return { source, reason: "cannot be read: no file reader was given" };
  try {
    return { source, text: readFile(path) };
  } catch (error) {
    return { source, reason: flowsKeyFileFailureReason(error) };
  }
}

/** A variable's value, `undefined` when unset or blank. */
function _valueOf(env: Record<string, string | undefined>, name: ConfigName): string | undefined {
  return env[name]?.trim() === "" ? undefined : env[name];
}

/**
 * The JSON text of the destinations, from `DESTINATIONS` or the file of `DESTINATIONS_FILE`, and
 * the name the reasons about it start with; or why it cannot be had.
 */
function _destinationsText(
  env: Record<string, string | undefined>,
  readFile: ((path: string) => string) | undefined,
): { source: string } & ({ text: string | undefined } | { reason: string }) {
  const inline = _valueOf(env, _ENV_NAMES.destinations);
  const path = _valueOf(env, _DESTINATIONS_FILE)?.trim();
  if (path === undefined) return { source: _ENV_NAMES.destinations, text: inline };
  if (inline !== undefined) {
    return {
      source: _ENV_NAMES.destinations,
      reason: `and ${_DESTINATIONS_FILE} are both set: declare the destinations in one of them`,
    };
  }
  const source = `${_DESTINATIONS_FILE} ${describeValue(path, _MAX_QUOTED_PATH_CHARS)}`;
  if (readFile === undefined) return { source, reason: "cannot be read: no file reader was given" };
  try {
    return { source, text: readFile(path) };
  } catch (error) {
    return { source, reason: destinationsFileFailureReason(error) };
  }
}
