/**
 * The headers every console response carries: a strict Content-Security-Policy (scripts, styles
 * and fetches from the service only, no inline code, no frames, forms posting only back to it),
 * no MIME sniffing, no referrer (event ids and wamids stay in the service), and no caching of
 * pages that show personal data.
 *
 * @module
 */

/** The console's Content-Security-Policy: nothing inline, nothing from elsewhere. */
export const CONSOLE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; " +
  "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; " +
  "base-uri 'none'";

/** The headers set on every console response, whatever its status. */
export const CONSOLE_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Content-Security-Policy": CONSOLE_CSP,
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Resource-Policy": "same-origin",
};

/** `response` with {@linkcode CONSOLE_SECURITY_HEADERS}; pages also get `Cache-Control: no-store`. */
export function withSecurityHeaders(response: Response, isCacheable = false): Response {
  const headers = new Headers(response.headers);
  for (const [name, value] of Object.entries(CONSOLE_SECURITY_HEADERS)) headers.set(name, value);
  if (!isCacheable) headers.set("Cache-Control", "no-store");
  return new Response(response.body, {
    status: response.status,
    statusText: response.statusText,
    headers,
  });
}
