/**
 * Cross-site request refusal for the console's state-changing requests (every POST), in two
 * independent layers beside the `SameSite=Strict` cookie:
 *
 * - the request must come from the console's own origin: `Sec-Fetch-Site: same-origin` when the
 *   browser sends it, else an `Origin` whose host is the request's; a POST with neither is refused
 *   (every browser that runs the console sends one of them);
 * - the form must carry the session's CSRF token (`csrf` field), an HMAC of the session id that
 *   only the service can compute (`session.ts`), compared in constant time.
 *
 * The form body is read within {@linkcode MAX_FORM_BYTES}.
 *
 * @module
 */
import { HttpError } from "../http/errors.ts";
import { timingSafeEqual } from "../http/secure_compare.ts";
import { readBoundedBody } from "../webhook/body.ts";

/** The largest console form: a few ids and filters, never a payload. */
export const MAX_FORM_BYTES = 16 * 1024;
/** How long a form body may take to arrive. */
export const FORM_TIMEOUT_MS = 10_000;
/** The form field that carries the CSRF token. */
export const CSRF_FIELD = "csrf";

/**
 * Refuses a request that does not come from the console's own pages.
 *
 * @throws {HttpError} 403 naming the header that failed
 */
export function assertSameOrigin(request: Request): void {
  const site = request.headers.get("Sec-Fetch-Site");
  if (site !== null) {
    if (site !== "same-origin") {
      throw new HttpError(403, `Refused a cross-site request: "Sec-Fetch-Site" is "${site}"`);
    }
    return;
  }
  const origin = request.headers.get("Origin");
  if (origin === null) {
    throw new HttpError(403, `Refused a request without "Origin" or "Sec-Fetch-Site"`);
  }
  const host = request.headers.get("Host") ?? new URL(request.url).host;
  let originHost: string;
  try {
    originHost = new URL(origin).host;
  } catch {
    originHost = "";
  }
  if (originHost !== host) {
    throw new HttpError(403, `Refused a cross-site request: "Origin" is not this service`);
  }
}

/**
 * Reads the form of `request` (URL-encoded, within {@linkcode MAX_FORM_BYTES}).
 *
 * @throws {HttpError} 415 for another content type, 413 or 408 for a body out of bounds
 */
export async function readForm(request: Request): Promise<URLSearchParams> {
  const type = request.headers.get("Content-Type") ?? "";
  if (!type.toLowerCase().startsWith("application/x-www-form-urlencoded")) {
    throw new HttpError(
      415,
      `Cannot read the form: "Content-Type" must be "application/x-www-form-urlencoded"`,
    );
  }
  const bytes = await readBoundedBody(request, {
    maxBytes: MAX_FORM_BYTES,
    timeoutMs: FORM_TIMEOUT_MS,
  });
  return new URLSearchParams(new TextDecoder().decode(bytes));
}

/**
 * Refuses a form whose `csrf` field is not `expected`.
 *
 * @throws {HttpError} 403 when the token is missing or wrong
 */
export function assertCsrfToken(form: URLSearchParams, expected: string): void {
  const given = form.get(CSRF_FIELD);
  if (given === null) throw new HttpError(403, `Refused a form without its CSRF token`);
  if (!timingSafeEqual(given, expected)) {
    throw new HttpError(403, `Refused a form whose CSRF token is not this session's`);
  }
}
