/**
 * The PostgreSQL client (postgres.js) as the store uses it: a pool of `poolSize` connections to
 * `STORE_URL`, with `sslmode` (and `target_session_attrs`) of the URL passed through, and 64-bit
 * integers read as numbers (every time the store keeps is ms since the epoch, well within 2^53).
 *
 * Every option postgres.js would otherwise look up in the environment (`PGHOST`, `PGPORT`,
 * `PGUSER`, `PGPASSWORD`, `PGSSL`, …) is given here from the URL, so the binary's `--allow-env`
 * list needs only the two names it reads whatever it is given (`PGAPPNAME`, and
 * `PGTARGETSESSIONATTRS` when the URL has no `target_session_attrs`: `RUNTIME_ENV_NAMES`).
 *
 * Two faults of postgres.js 3.4 shape the store (both seen in `tests/pg_instances_test.ts`, the
 * database stopped under load): a server that dies under a transaction or a reserved connection
 * makes it write to a closed socket from a timer, an exception nothing can catch (porsager/postgres
 * issues 1154 and 1208), so the store runs no transaction after start (one statement each); and
 * some of its internal promises are left rejected when a socket resets, which
 * {@linkcode guardConnectionErrors} keeps from ending the process.
 *
 * @module
 */
import postgres from "postgres";
import { pgUrlProblem, type SslMode } from "./url.ts";

/** A connection attempt gives up after this long: intake answers 503 rather than hang. */
const CONNECT_TIMEOUT_S = 5;
/** Idle pooled connections are closed after this long, so a quiet instance holds none. */
const IDLE_TIMEOUT_S = 60;
/** The first wait before connecting again after a failed attempt; doubled on each one after. */
const RECONNECT_FIRST_DELAY_S = 0.05;
/**
 * The longest wait between two connection attempts: the service serves again within about this
 * long after the database is back (postgres.js's own default grew to 20 s while it was down).
 */
const RECONNECT_MAX_DELAY_S = 1;
/** PostgreSQL's port when the URL names none. */
const DEFAULT_PORT = 5432;

/** Options for {@linkcode connectPg}. */
export interface PgClientOptions {
  /** Connections in the pool at most (`STORE_POOL_SIZE`). */
  poolSize: number;
  /** Called with the server's notices (`NOTICE`, `WARNING`); ignored by default. */
  onnotice?: (notice: postgres.Notice) => void;
}

/** Raised for a `STORE_URL` the client cannot use; the message says what to change. */
export class PgUrlError extends Error {
  override name = "PgUrlError";
}

/**
 * A postgres.js client for `url`; connects lazily (on its first query).
 *
 * @throws {PgUrlError} when the URL cannot be used ({@linkcode pgUrlProblem})
 */
export function connectPg(url: string, options: PgClientOptions): postgres.Sql {
  const problem = pgUrlProblem(url);
  if (problem !== undefined) throw new PgUrlError(`Cannot use the PostgreSQL URL: it ${problem}`);
  const parsed = new URL(url);
  const user = decodeURIComponent(parsed.username);
  const password = decodeURIComponent(parsed.password);
  const sslmode = parsed.searchParams.get("sslmode") as SslMode | null;
  const targetSessionAttrs = parsed.searchParams.get("target_session_attrs");
  const types = {
    int8: {
      to: 20,
      from: [20],
      serialize: (value: number) => String(value),
      parse: (text: string) => Number(text),
    },
  };
  // Every option postgres.js would otherwise read from a PG* variable, given (some are not in its
  // types, hence the cast): postgres.js's own defaults but for the timeouts and the backoff.
  const explicit = {
    max_pipeline: 100,
    backoff: (retries: number) =>
      (0.5 + Math.random() / 2) *
      Math.min(RECONNECT_FIRST_DELAY_S * 2 ** retries, RECONNECT_MAX_DELAY_S),
    keep_alive: 60,
    debug: false,
    publications: "alltables",
    // Present even when null: an absent key is looked up in PGTARGET_SESSION_ATTRS.
    target_session_attrs: targetSessionAttrs,
  } as Record<string, unknown>;
  return postgres(url, {
    host: decodeURIComponent(parsed.hostname).replace(/^\[|\]$/g, ""),
    port: parsed.port === "" ? DEFAULT_PORT : Number(parsed.port),
    user,
    // A function: an empty password would otherwise be looked up in PGPASSWORD.
    pass: () => password,
    database: decodeURIComponent(parsed.pathname.slice(1)) || user,
    ssl: sslmode === null || sslmode === "disable" ? false : sslmode,
    max: options.poolSize,
    idle_timeout: IDLE_TIMEOUT_S,
    connect_timeout: CONNECT_TIMEOUT_S,
    max_lifetime: 60 * (30 + Math.random() * 30),
    prepare: true,
    fetch_types: true,
    types,
    onnotice: options.onnotice ?? (() => {}),
    ...explicit,
  });
}

/**
 * Errors of a connection to the server going away (the socket's, postgres.js's own, and the
 * server's "shutting down" codes): what a restarting database raises.
 */
const CONNECTION_ERROR_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
]);

/** Whether `error` is a lost or refused connection to the server. */
export function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && CONNECTION_ERROR_CODES.has(code);
}

let _guards = 0;
let _onRejection: ((event: PromiseRejectionEvent) => void) | undefined;

/**
 * Keeps a lost connection from ending the process while a client is open: postgres.js 3.4 leaves
 * some of its internal promises rejected without a handler when the server goes away (a socket
 * reset while it reconnects), which Deno treats as fatal. Every query the store awaits still
 * fails through its own promise (intake answers 503); only those orphans are dropped, each with a
 * warning. Returns the removal; the last removal takes the listener away.
 */
export function guardConnectionErrors(onDropped: (error: unknown) => void): () => void {
  if (_guards++ === 0) {
    _onRejection = (event) => {
      if (!isConnectionError(event.reason)) return;
      event.preventDefault();
      onDropped(event.reason);
    };
    globalThis.addEventListener("unhandledrejection", _onRejection);
  }
  let isRemoved = false;
  return () => {
    if (isRemoved) return;
    isRemoved = true;
    if (--_guards === 0 && _onRejection) {
      globalThis.removeEventListener("unhandledrejection", _onRejection);
      _onRejection = undefined;
    }
  };
}
