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
 * @module
 */
import postgres from "postgres";
import { pgUrlProblem, type SslMode } from "./url.ts";

/** A connection attempt gives up after this long: intake answers 503 rather than hang. */
const CONNECT_TIMEOUT_S = 5;
/** Idle pooled connections are closed after this long, so a quiet instance holds none. */
const IDLE_TIMEOUT_S = 60;
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
  // types, hence the cast): postgres.js's own defaults but for the timeouts.
  const explicit = {
    max_pipeline: 100,
    backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, 20),
    keep_alive: 60,
    debug: false,
    publications: "alltables",
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
    ...(targetSessionAttrs ? { target_session_attrs: targetSessionAttrs as "primary" } : {}),
    types,
    onnotice: options.onnotice ?? (() => {}),
    ...explicit,
  });
}
