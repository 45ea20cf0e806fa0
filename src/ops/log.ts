/**
 * Structured logging: one line per log event, with a level, a stable `msg` and fields.
 *
 * Lines are JSON objects (for pipes, files and log collectors) or, for a person at a terminal, a
 * short readable line: `12:04:05.123 INFO  started kv=file worker=64`. The format changes only how
 * fields are shown, never which.
 *
 * Never pass a secret, a token, a signature or message text as a field at info level or above;
 * the logger does not know what is secret, so the callers keep that rule.
 *
 * @module
 */

/** Log levels, from the most to the least verbose. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * How lines are written: `json`, `pretty` (for people), or `auto`: pretty when standard output is
 * a terminal, JSON otherwise.
 */
export const LOG_FORMATS = ["json", "pretty", "auto"] as const;

/** One of {@linkcode LOG_FORMATS}. */
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Values a log line may carry beside its message. */
export type LogFields = Record<string, unknown>;

/** Writes structured log lines; `child` binds fields (a request id, an event id) to every line. */
export interface Logger {
  /** Detail for debugging: counts, ids, timings. */
  debug(msg: string, fields?: LogFields): void;
  /** Normal operation worth a line in production. */
  info(msg: string, fields?: LogFields): void;
  /** Something is off but the service carries on. */
  warn(msg: string, fields?: LogFields): void;
  /** A failure an operator should look at. */
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line it writes. */
  child(fields: LogFields): Logger;
}

/** Where finished lines go; stdout by default. */
export type LogSink = (line: string, level: LogLevel) => void;

/** Options for {@linkcode createLogger}. */
export interface LoggerOptions {
  /** The least severe level written; lines below it are dropped. */
  level: LogLevel;
  /** Receives each line; defaults to standard output (errors to standard error). */
  sink?: LogSink;
  /** Fields bound to every line. */
  fields?: LogFields;
  /** Returns the current time in milliseconds; defaults to `Date.now`. */
  now?: () => number;
  /** How lines are written; defaults to `json`. */
  format?: LogFormat;
  /** Whether standard output is a terminal, for `auto`; defaults to `Deno.stdout.isTerminal`. */
  isTerminal?: () => boolean;
  /** Colour the time and level of `pretty` lines (ANSI escapes); defaults to false. */
  isColored?: boolean;
}

/** Creates a logger that writes one line per event, JSON or `pretty` as `format` says. */
export function createLogger(options: LoggerOptions): Logger {
  const minimum = LOG_LEVELS.indexOf(options.level);
  const sink = options.sink ?? _writeToConsole;
  const now = options.now ?? Date.now;
  const bound = options.fields ?? {};
  const format = resolveLogFormat(options.format ?? "json", options.isTerminal);
  const prettyOptions = {
    isColored: options.isColored ?? false,
    hasStacks: options.level === "debug",
  };

  function write(level: LogLevel, msg: string, fields?: LogFields): void {
    if (LOG_LEVELS.indexOf(level) < minimum) return;
    const time = now();
    const all = { ...bound, ...fields };
    const line = format === "pretty"
      ? formatPrettyLine(time, level, msg, all, prettyOptions)
      : JSON.stringify(
        { time: new Date(time).toISOString(), level, msg, ...all },
        _replaceErrors,
      );
    sink(line, level);
  }

  return {
    debug: (msg, fields) => write("debug", msg, fields),
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
    child: (fields) => createLogger({ ...options, format, fields: { ...bound, ...fields } }),
  };
}

/**
 * The format `auto` stands for here: `pretty` when standard output is a terminal (a person is
 * reading), `json` otherwise (a pipe, a file, a test, a log collector).
 */
export function resolveLogFormat(
  format: LogFormat,
  isTerminal: () => boolean = () => Deno.stdout.isTerminal(),
): "json" | "pretty" {
  if (format !== "auto") return format;
  return isTerminal() ? "pretty" : "json";
}

/** Options for {@linkcode formatPrettyLine}. */
export interface PrettyLineOptions {
  /** Colour the time and level with ANSI escapes. */
  isColored?: boolean;
  /** Add each error field's stack, one indented line per frame, below the line. */
  hasStacks?: boolean;
}

/**
 * One event for a person: `HH:MM:SS.mmm LEVEL msg key=value key2="quoted value"`, in local time.
 * Strings with spaces, quotes, `=` or control characters are quoted as JSON strings, errors show
 * as `"Name: message"` (and, with `hasStacks`, their stack below), objects and arrays as compact
 * JSON; fields JSON leaves out (`undefined`, functions) are left out here too.
 */
export function formatPrettyLine(
  timeMs: number,
  level: LogLevel,
  msg: string,
  fields: LogFields,
  options: PrettyLineOptions = {},
): string {
  const date = new Date(timeMs);
  const clock = [date.getHours(), date.getMinutes(), date.getSeconds()]
    .map((part) => String(part).padStart(2, "0")).join(":") +
    "." + String(date.getMilliseconds()).padStart(3, "0");
  const label = level.toUpperCase().padEnd(5);
  const parts = [
    options.isColored ? `${_ANSI_DIM}${clock}${_ANSI_RESET}` : clock,
    options.isColored ? `${_LEVEL_COLORS[level]}${label}${_ANSI_RESET}` : label,
    /\p{Cc}/u.test(msg) ? JSON.stringify(msg) : msg,
  ];
  const stacks: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    // JSON leaves these out, and so does this line: the same fields in either format.
    if (value === undefined || typeof value === "function" || typeof value === "symbol") continue;
    parts.push(`${key}=${_prettyValue(value)}`);
    if (options.hasStacks && value instanceof Error && value.stack) {
      const frames = value.stack.split("\n").filter((line) => /^\s+at /.test(line));
      stacks.push(...frames.map((frame) => `    ${frame.trim()}`));
    }
  }
  return [parts.join(" "), ...stacks].join("\n");
}

/** A logger that writes nothing, for tests and tools that do not care. */
export const silentLogger: Logger = createLogger({ level: "error", sink: () => {} });

function _writeToConsole(line: string, level: LogLevel): void {
  // deno-lint-ignore no-console
  if (level === "error") console.error(line);
  // deno-lint-ignore no-console
  else console.log(line);
}

const _ANSI_RESET = "\x1b[0m";
const _ANSI_DIM = "\x1b[2m";
const _LEVEL_COLORS: Record<LogLevel, string> = {
  debug: "\x1b[90m",
  info: "\x1b[32m",
  warn: "\x1b[33m",
  error: "\x1b[31m",
};

/** A string that can stand bare after `key=` and still read back as one value. */
const _BARE_STRING = /^[^\s"=\\\p{Cc}]+$/u;

function _prettyValue(value: unknown): string {
  if (typeof value === "string") return _BARE_STRING.test(value) ? value : JSON.stringify(value);
  if (value instanceof Error) return _prettyValue(`${value.name}: ${value.message}`);
  if (value !== null && typeof value === "object") {
    return JSON.stringify(value, _replaceErrors) ?? String(value);
  }
  return String(value);
}

/** Errors serialise to their name and message instead of `{}`. */
function _replaceErrors(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (typeof value === "bigint") return value.toString();
  return value;
}
