/**
 * The console's sign-in session: after the admin token is posted once, a cookie carries a random
 * session id and its expiry, signed with HMAC-SHA-256 under a key derived from `ADMIN_TOKEN`.
 *
 * Deriving the key from the token (rather than drawing one per process) means a session holds in
 * every instance and across restarts, and changing `ADMIN_TOKEN` revokes every session at once.
 * Nothing is stored: a session is valid while its signature verifies and its expiry is ahead.
 * Signing out clears the cookie in that browser; a copied cookie stays valid until it expires.
 *
 * @module
 */
import { timingSafeEqual } from "../http/secure_compare.ts";

/** How long a session lasts: an operator's working day, then the token is asked for again. */
export const SESSION_TTL_MS = 12 * 3_600_000;
/** The cookie's name; the `__Host-` prefix would demand `Path=/`, which the console must not take. */
export const SESSION_COOKIE = "wa_console";
/** The console's path: the cookie is sent nowhere else. */
export const CONSOLE_PATH = "/console";
/** Separates the key's purpose from the token, so this key signs nothing else. */
const _KEY_PURPOSE = "wa-webhook console session v1\u0000";
/** Random bytes of a session id: 128 bits cannot be guessed. */
const _SESSION_ID_BYTES = 16;
/** A cookie longer than this is not read (a signed session is about 100 characters). */
const _MAX_COOKIE_CHARS = 256;

/** A valid session. */
export interface Session {
  /** The random id, also what its CSRF token is bound to. */
  id: string;
  /** When it ends, ms since the epoch. */
  expiresAt: number;
}

/** Issues and checks sessions under one key. */
export interface Sessions {
  /** A new session from `now`, as a `Set-Cookie` value (`Secure` when `isSecure`). */
  issue(now: number, isSecure: boolean): Promise<{ session: Session; setCookie: string }>;
  /** The session `request`'s cookie carries, when its signature holds and it has not expired. */
  verify(request: Request, now: number): Promise<Session | undefined>;
  /** The CSRF token of `session`: its id signed for another purpose, so it cannot be forged. */
  csrfToken(session: Session): Promise<string>;
  /** A `Set-Cookie` value that removes the session cookie (`Secure` when `isSecure`). */
  clearCookie(isSecure: boolean): string;
}

/** Creates the sessions whose key is derived from `adminToken`. */
export async function createSessions(adminToken: string): Promise<Sessions> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(_KEY_PURPOSE + adminToken),
  );
  const key = await crypto.subtle.importKey(
    "raw",
    digest,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const sign = async (text: string): Promise<string> =>
    _base64url(
      new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(text))),
    );

  return {
    async issue(now, isSecure) {
      const id = _base64url(crypto.getRandomValues(new Uint8Array(_SESSION_ID_BYTES)));
      const session = { id, expiresAt: now + SESSION_TTL_MS };
      const payload = `${id}.${session.expiresAt}`;
      const value = `${payload}.${await sign(`session:${payload}`)}`;
      const setCookie = _cookie(value, Math.floor(SESSION_TTL_MS / 1_000), isSecure);
      return { session, setCookie };
    },
    async verify(request, now) {
      const value = cookieValue(request, SESSION_COOKIE);
      if (value === undefined || value.length > _MAX_COOKIE_CHARS) return undefined;
      const match = /^([A-Za-z0-9_-]{1,64})\.(\d{1,16})\.([A-Za-z0-9_-]{1,64})$/.exec(value);
      if (!match) return undefined;
      const [, id, expiry, signature] = match as unknown as [string, string, string, string];
      const expected = await sign(`session:${id}.${expiry}`);
      if (!timingSafeEqual(signature, expected)) return undefined;
      const expiresAt = Number(expiry);
      return expiresAt > now ? { id, expiresAt } : undefined;
    },
    csrfToken: (session) => sign(`csrf:${session.id}`),
    clearCookie: (isSecure) => _cookie("", 0, isSecure),
  };
}

/** Whether `request` reached the service over HTTPS (itself, or through a proxy that says so). */
export function isSecureRequest(request: Request): boolean {
  if (new URL(request.url).protocol === "https:") return true;
  const forwarded = request.headers.get("X-Forwarded-Proto")?.split(",")[0]?.trim();
  return forwarded?.toLowerCase() === "https";
}

/** The value of cookie `name` in `request`'s `Cookie` header; `undefined` when absent. */
export function cookieValue(request: Request, name: string): string | undefined {
  const header = request.headers.get("Cookie") ?? "";
  for (const part of header.split(";")) {
    const at = part.indexOf("=");
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return undefined;
}

function _cookie(value: string, maxAgeSeconds: number, isSecure: boolean): string {
  return `${SESSION_COOKIE}=${value}; Path=${CONSOLE_PATH}; Max-Age=${maxAgeSeconds}; HttpOnly; ` +
    `SameSite=Strict${isSecure ? "; Secure" : ""}`;
}

function _base64url(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}
