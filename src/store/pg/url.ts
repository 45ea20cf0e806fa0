/**
 * What makes a `STORE_URL` a PostgreSQL URL the store can use, apart from the client (so the
 * configuration checks it without loading postgres.js).
 *
 * @module
 */

/** The URL schemes that select the PostgreSQL store. */
export const PG_URL_PATTERN = /^postgres(ql)?:\/\//i;

/** `sslmode` values of libpq that postgres.js understands, passed through as its `ssl`. */
export const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-full"] as const;

/** One of {@linkcode SSL_MODES}. */
export type SslMode = (typeof SSL_MODES)[number];

/** Whether `url` selects the PostgreSQL store. */
export function isPgUrl(url: string | undefined): url is string {
  return url !== undefined && PG_URL_PATTERN.test(url);
}

/**
 * Why `url` cannot be used as a PostgreSQL URL, or `undefined` when it can. Never quotes the URL:
 * it may hold a password.
 */
export function pgUrlProblem(url: string): string | undefined {
  if (!PG_URL_PATTERN.test(url)) {
    return 'must start with "postgres://" or "postgresql://" (unset it to use Deno KV)';
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "is not a URL like postgres://user:password@host:5432/database";
  }
  if (parsed.hostname === "") return "names no host";
  if (parsed.username === "") return "names no user (postgres://user:password@host/database)";
  const sslmode = parsed.searchParams.get("sslmode");
  if (sslmode !== null && !(SSL_MODES as readonly string[]).includes(sslmode)) {
    return `has sslmode "${sslmode}"; expected one of ${SSL_MODES.join(", ")}`;
  }
  return undefined;
}
