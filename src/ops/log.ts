/**
 * Structured logging: one JSON line per log event, with a level, a stable `msg` and fields.
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
}

/** Creates a logger that writes one JSON object per line. */
export function createLogger(options: LoggerOptions): Logger {
  const minimum = LOG_LEVELS.indexOf(options.level);
  const sink = options.sink ?? _writeToConsole;
  const now = options.now ?? Date.now;
  const bound = options.fields ?? {};

  function write(level: LogLevel, msg: string, fields?: LogFields): void {
    if (LOG_LEVELS.indexOf(level) < minimum) return;
    const line = { time: new Date(now()).toISOString(), level, msg, ...bound, ...fields };
    sink(JSON.stringify(line, _replaceErrors), level);
  }

  return {
    debug: (msg, fields) => write("debug", msg, fields),
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
    child: (fields) => createLogger({ ...options, fields: { ...bound, ...fields } }),
  };
}

/** A logger that writes nothing, for tests and tools that do not care. */
export const silentLogger: Logger = createLogger({ level: "error", sink: () => {} });

function _writeToConsole(line: string, level: LogLevel): void {
  // deno-lint-ignore no-console
  if (level === "error") console.error(line);
  // deno-lint-ignore no-console
  else console.log(line);
}

/** Errors serialise to their name and message instead of `{}`. */
function _replaceErrors(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (typeof value === "bigint") return value.toString();
  return value;
}
