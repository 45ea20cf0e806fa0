/**
 * Destinations declared without code: the HTTP endpoints every recorded event is delivered to,
 * as a JSON array in `DESTINATIONS` or in the file named by `DESTINATIONS_FILE`, or as the
 * `destinations` setting of `resolveConfig`.
 *
 * Each declaration is checked with zod, its defaults ({@linkcode DESTINATION_DEFAULTS}) filled
 * once here. Every problem is one reason naming the destination (by name, or by index when it has
 * no valid name), the field and why; values are quoted cut short, and a secret never: its position
 * is named instead.
 *
 * @module
 */
import { MAX_SIGNING_SECRETS } from "./signing.ts";
import { z } from "zod";
import { ConfigError } from "../config.ts";
import { InvalidJsonError, parseJsonText } from "../events/json_text.ts";
import { describeValue } from "../refusal_text.ts";
import { destinationFilterSchema } from "./filter.ts";

/** Every default of a destination, written here once; durations in milliseconds. */
export const DESTINATION_DEFAULTS = Object.freeze({
  /** One request, answer included: what Standard Webhooks senders commonly allow (Svix: 15 s). */
  timeoutMs: 10_000,
  /** Requests in flight to one destination at once: enough to keep up, few enough to be polite. */
  concurrency: 4,
  /** A destination delivers from the start unless declared paused. */
  paused: false,
});

/** The bounds of a destination's numeric settings, written once. */
export const DESTINATION_BOUNDS = {
  /** 100 ms for a consumer on loopback; past a minute a consumer should answer and work later. */
  timeoutMs: { min: 100, max: 60_000 },
  /** At least one request; more than 64 at once would swamp a consumer and this process. */
  concurrency: { min: 1, max: 64 },
  /** One request every 10 s at the least; past 1,000 a second a limit means nothing here. */
  ratePerSecond: { min: 0.1, max: 1_000 },
} as const;

/**
 * At most this many destinations: the fan-out records one job per matching destination in the
 * same atomic write as the event, and Deno KV bounds the mutations of one commit.
 */
export const MAX_DESTINATIONS = 32;

/** The longest URL most servers and proxies accept. */
export const MAX_URL_CHARS = 2_048;

/** The largest declarations text, in the variable or the file: 32 destinations fit many times. */
export const MAX_DECLARATIONS_BYTES = 1024 * 1024;

/** A destination's name: job ids and metrics are keyed by it, so it is short and plain. */
export const DESTINATION_NAME_PATTERN = /^[a-z0-9_-]{1,64}$/;

/** The prefix of a Standard Webhooks secret, before the base64 of its key. */
export const SECRET_PREFIX = "whsec_";

/** The key sizes Standard Webhooks allows, in bytes. */
export const SECRET_KEY_BYTES = { min: 24, max: 64 } as const;

/** Strict base64, padding included, as Standard Webhooks writes keys. */
const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The directory the tasks and the compiled binary may read (`--allow-read=./data`). */
const READABLE_DIRECTORY = "./data";

const _nameSchema = z.string({ error: _requiredOr("text") }).regex(DESTINATION_NAME_PATTERN, {
  error: (issue) =>
    `must be 1 to 64 characters of a-z, 0-9, "_" and "-", got ${describeValue(issue.input)}`,
});

const _urlSchema = z.string({ error: _requiredOr("an http(s) URL") }).transform((text, ctx) => {
  const refuse = (message: string) => {
    ctx.addIssue({ code: "custom", message });
    return z.NEVER;
  };
  if (text.length > MAX_URL_CHARS) {
    return refuse(`must be at most ${MAX_URL_CHARS} characters, got ${text.length}`);
  }
  // The text is never quoted whole: a URL may hold a password or a token.
  if (!URL.canParse(text)) {
    return refuse(`must be an absolute http(s) URL, such as "https://crm.example.com/whatsapp"`);
  }
  const url = new URL(text);
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return refuse(`must be http(s), got ${describeValue(`${url.protocol}//…`)}`);
  }
  if (url.username !== "" || url.password !== "") {
    return refuse(
      "must not hold credentials (user:password@): consumers verify the signature instead",
    );
  }
  return url.href;
});

/** Never quotes its input: a secret is only named by its position. */
const _secretSchema = z.string({ error: "must be a Standard Webhooks secret, as text" }).refine(
  isStandardWebhooksSecret,
  `must be a Standard Webhooks secret: "${SECRET_PREFIX}" then the base64 of ${SECRET_KEY_BYTES.min} to ${SECRET_KEY_BYTES.max} bytes (the value is not shown)`,
);

const _secretsSchema = z.array(_secretSchema, {
  error: (issue) =>
    typeof issue.input === "string"
      ? `must be a list of secrets, got text: put the secret in [ ]`
      : issue.input === undefined
      ? "is required: one or more Standard Webhooks secrets"
      : `must be a list of Standard Webhooks secrets, got ${describeValue(issue.input)}`,
}).pipe(
  // Counted once it is a list: zod would count the characters of a text too.
  z.array(z.string()).min(1, "must hold at least one Standard Webhooks secret").max(
    MAX_SIGNING_SECRETS,
    `must have at most ${MAX_SIGNING_SECRETS} secrets (two while rotating)`,
  ),
);

/** A number within `DESTINATION_BOUNDS[field]`, whole unless said, or `fallback` when absent. */
function _bounded<T extends number | undefined>(
  field: keyof typeof DESTINATION_BOUNDS,
  fallback: T,
  { isWhole }: { isWhole: boolean },
) {
  const { min, max } = DESTINATION_BOUNDS[field];
  return z.unknown().optional().transform((value, ctx): number | T => {
    if (value === undefined) return fallback;
    const isValid = typeof value === "number" && Number.isFinite(value) &&
      (!isWhole || Number.isInteger(value)) && value >= min && value <= max;
    if (!isValid) {
      const what = isWhole ? "a whole number" : "a number";
      ctx.addIssue({
        code: "custom",
        message: `must be ${what} from ${min} to ${max}, got ${describeValue(value)}`,
      });
      return z.NEVER;
    }
    return value;
  });
}

const _destinationSchema = z.strictObject({
  name: _nameSchema,
  url: _urlSchema,
  secrets: _secretsSchema,
  filter: destinationFilterSchema.optional().transform((filter) => filter ?? {}),
  timeoutMs: _bounded("timeoutMs", DESTINATION_DEFAULTS.timeoutMs, { isWhole: true }),
  concurrency: _bounded("concurrency", DESTINATION_DEFAULTS.concurrency, { isWhole: true }),
  ratePerSecond: _bounded("ratePerSecond", undefined, { isWhole: false }),
  paused: z.boolean({
    error: (issue) => `must be true or false, got ${describeValue(issue.input)}`,
  }).default(DESTINATION_DEFAULTS.paused),
}, { error: (issue) => `must be an object, got ${describeValue(issue.input)}` })
  .transform(({ ratePerSecond, ...destination }) => {
    // No limit leaves the key out rather than holding `undefined`.
    const declared: typeof destination & { ratePerSecond?: number } = destination;
    if (ratePerSecond !== undefined) declared.ratePerSecond = ratePerSecond;
    return declared;
  });

/**
 * A checked destination, its defaults filled: `name`, `url` (normalised), `secrets` (never logged),
 * `filter` (`{}` for all events; see `filter.ts`), `timeoutMs`, `concurrency`, `ratePerSecond`
 * (unset: no limit) and `paused`.
 */
export type Destination = z.output<typeof _destinationSchema>;

type _Required = "name" | "url" | "secrets";

/** A destination as code declares it: {@linkcode Destination} with the defaulted fields optional. */
export type DestinationDeclaration =
  & Pick<Destination, _Required>
  & Partial<Omit<Destination, _Required>>;

/** The outcome of {@linkcode checkDestinations}: the destinations, or every reason they are not. */
export type DestinationsCheck =
  | { isValid: true; destinations: Destination[] }
  | { isValid: false; reasons: string[] };

/**
 * Checks declarations given as a value (parsed JSON, or an array from code): each reason names
 * the destination, the field and why, for a line after the source's name (`DESTINATIONS`).
 */
export function checkDestinations(value: unknown): DestinationsCheck {
  if (!Array.isArray(value)) {
    return {
      isValid: false,
      reasons: [`must be a JSON array of destinations, got ${describeValue(value)}`],
    };
  }
  if (value.length > MAX_DESTINATIONS) {
    return {
      isValid: false,
      reasons: [`has ${value.length} destinations; at most ${MAX_DESTINATIONS} are allowed`],
    };
  }
  const reasons: string[] = [];
  const destinations: Destination[] = [];
  for (const [index, declaration] of value.entries()) {
    const parsed = _destinationSchema.safeParse(declaration);
    if (parsed.success) destinations.push(parsed.data);
    else {reasons.push(...parsed.error.issues.flatMap((issue) =>
        _reasons(declaration, index, issue)
      ));}
  }
  reasons.push(..._duplicateNames(value));
  return reasons.length > 0 ? { isValid: false, reasons } : { isValid: true, destinations };
}

/**
 * Reads declarations from their JSON text; `source` names where the text came from in every
 * reason (`DESTINATIONS`, `DESTINATIONS_FILE "./data/destinations.json"`).
 *
 * @throws {ConfigError} every reason, one per line: `Invalid configuration: <source> <reason>`
 */
export function parseDestinations(jsonText: string, source: string): Destination[] {
  const read = readDeclarationsText(jsonText);
  const check = "reason" in read ? { isValid: false as const, reasons: [read.reason] } : (
    checkDestinations(read.value)
  );
  if (check.isValid) return check.destinations;
  throw new ConfigError(
    check.reasons.map((reason) => `Invalid configuration: ${source} ${reason}`).join("\n"),
  );
}

/**
 * The value of declarations' JSON text, or why there is none: too long, or not JSON (the reason
 * says where, never quoting the text, which holds secrets).
 */
export function readDeclarationsText(text: string): { value: unknown } | { reason: string } {
  const bytes = new TextEncoder().encode(text).byteLength;
  if (bytes > MAX_DECLARATIONS_BYTES) {
    return { reason: `is ${bytes} bytes; at most ${MAX_DECLARATIONS_BYTES} are allowed` };
  }
  try {
    return { value: parseJsonText(text) };
  } catch (error) {
    if (!(error instanceof InvalidJsonError)) throw error;
    return { reason: error.message.replace(/^Body is not/, "is not") };
  }
}

/** Raised by {@linkcode readDestinationsFile}; the message is the reason, after the file's name. */
export class DestinationsFileError extends Error {
  override name = "DestinationsFileError";
}

/**
 * Reads the file of `DESTINATIONS_FILE` (for `main.ts`), at most
 * {@linkcode MAX_DECLARATIONS_BYTES}. The tasks and the compiled binary may read `./data` only:
 * a file elsewhere gets a reason that says so, not Deno's advice to add a flag.
 *
 * @throws {DestinationsFileError} saying why the file cannot be read
 */
export function readDestinationsFile(path: string): string {
  try {
    const info = Deno.statSync(path);
    if (info.isDirectory) throw new DestinationsFileError("is a directory: name a JSON file");
    if (info.size > MAX_DECLARATIONS_BYTES) {
      throw new DestinationsFileError(
        `is ${info.size} bytes; at most ${MAX_DECLARATIONS_BYTES} are allowed`,
      );
    }
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new DestinationsFileError(destinationsFileFailureReason(error));
  }
}

/**
 * Why `DESTINATIONS_FILE` could not be read, after its name: outside what the process may read
 * (the tasks and the binary allow `./data` only), missing, or the runtime's message.
 */
export function destinationsFileFailureReason(error: unknown): string {
  if (error instanceof DestinationsFileError) return error.message;
  if (error instanceof Deno.errors.NotCapable) {
    return `is outside the directories this process may read (the tasks and the compiled binary allow "${READABLE_DIRECTORY}" only): move the file into it, such as "${READABLE_DIRECTORY}/destinations.json"`;
  }
  if (error instanceof Deno.errors.NotFound) return "does not exist";
  const message = error instanceof Error ? error.message : String(error);
  return `cannot be read: ${message}`;
}

/** Whether `value` is `whsec_` and the strict base64 of a key of an allowed size. */
export function isStandardWebhooksSecret(value: string): boolean {
  if (!value.startsWith(SECRET_PREFIX)) return false;
  const key = value.slice(SECRET_PREFIX.length);
  if (!BASE64_PATTERN.test(key)) return false;
  const padding = key.endsWith("==") ? 2 : key.endsWith("=") ? 1 : 0;
  const bytes = (key.length / 4) * 3 - padding;
  return bytes >= SECRET_KEY_BYTES.min && bytes <= SECRET_KEY_BYTES.max;
}

/** The reasons of one issue of the declaration at `index`, each naming the destination. */
function _reasons(declaration: unknown, index: number, issue: z.core.$ZodIssue): string[] {
  const destination = _label(declaration, index);
  const field = _fieldOf(issue.path);
  const where = field === "" ? destination : `${destination} ${field}`;
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => `${where} has unknown field ${describeValue(key)}`);
  }
  return [`${where} ${issue.message}`];
}

/** `destination "crm"` when it has a valid name, else `destination at index 2`. */
function _label(declaration: unknown, index: number): string {
  const name = _nameOf(declaration);
  return name === undefined ? `destination at index ${index}` : `destination "${name}"`;
}

function _nameOf(declaration: unknown): string | undefined {
  if (typeof declaration !== "object" || declaration === null) return undefined;
  const name = (declaration as { name?: unknown }).name;
  return typeof name === "string" && DESTINATION_NAME_PATTERN.test(name) ? name : undefined;
}

/** `["filter", "kinds", 0]` as `filter.kinds[0]`. */
function _fieldOf(path: readonly PropertyKey[]): string {
  return path.map((part, i) =>
    typeof part === "number" ? `[${part}]` : `${i === 0 ? "" : "."}${String(part)}`
  ).join("");
}

/** One reason per name declared more than once. */
function _duplicateNames(declarations: readonly unknown[]): string[] {
  const indexes = new Map<string, number[]>();
  for (const [index, declaration] of declarations.entries()) {
    const name = _nameOf(declaration);
    if (name !== undefined) indexes.set(name, [...(indexes.get(name) ?? []), index]);
  }
  return [...indexes].filter(([, at]) => at.length > 1).map(([name, at]) =>
    `destination "${name}" name is declared ${at.length} times (at indexes ${
      at.join(", ")
    }): names key delivery jobs, so each must be unique`
  );
}

/** The message of a missing or mistyped field: `is required` or `must be <what>, got …`. */
function _requiredOr(what: string): (issue: { input?: unknown }) => string {
  return (issue) =>
    issue.input === undefined
      ? "is required"
      : `must be ${what}, got ${describeValue(issue.input)}`;
}
