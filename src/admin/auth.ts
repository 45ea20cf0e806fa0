/**
 * The bearer-token check of operator endpoints (`/admin/…`, `/metrics`): the `ADMIN_TOKEN` sent
 * as `Authorization: Bearer <token>`, compared in constant time.
 *
 * @module
 */
import { HttpError } from "../http/errors.ts";
import type { RouteHandler } from "../http/router.ts";
import { timingSafeEqual } from "../http/secure_compare.ts";

/** The challenge sent with every 401 (RFC 6750). */
export const ADMIN_BEARER_REALM = 'Bearer realm="wa-webhook admin"';

/**
 * Throws 401 (with `WWW-Authenticate`) unless `request` carries `adminToken` as a bearer token.
 *
 * @throws {HttpError} 401 when the header is missing, malformed, or holds another token
 */
export function authenticateAdmin(request: Request, adminToken: string): void {
  const header = request.headers.get("Authorization");
  if (header === null) {
    throw new HttpError(401, `Cannot authenticate: header "Authorization" is missing`, {
      "WWW-Authenticate": ADMIN_BEARER_REALM,
    });
  }
  const token = /^Bearer +(\S+) *$/i.exec(header)?.[1];
  // Compared even when the header is malformed, so its shape does not change the timing much.
  const isValid = timingSafeEqual(token ?? "", adminToken) && token !== undefined;
  if (!isValid) {
    throw new HttpError(401, `Cannot authenticate: the bearer token is wrong`, {
      "WWW-Authenticate": `${ADMIN_BEARER_REALM}, error="invalid_token"`,
    });
  }
}

/** Wraps `handler` so that it runs only for requests that pass {@linkcode authenticateAdmin}. */
export function requireAdmin(adminToken: string, handler: RouteHandler): RouteHandler {
  return (request, context) => {
    authenticateAdmin(request, adminToken);
    return handler(request, context);
  };
}
