/**
 * A small URLPattern router whose routes are a plain data table.
 *
 * Path parameters reach handlers percent-decoded once. HEAD follows GET (same handler and headers,
 * GET's `Content-Length`, no body); a known path with another method answers 405 with an `Allow`
 * header; an unknown path 404. Handlers throw {@linkcode HttpError} for expected failures.
 *
 * @module
 */
import { clipForReason, HttpError } from "./errors.ts";
import type { Logger } from "../ops/log.ts";
import { nameRequestSpan } from "../ops/telemetry.ts";

/** What a handler gets beside the request. */
export interface RouteContext {
  /** Named groups of the matched pattern (`/admin/events/:id` gives `id`). */
  params: Record<string, string>;
  /** A logger bound to this request's id. */
  log: Logger;
  /** The id of this request, also sent back as `X-Request-Id`. */
  requestId: string;
}

/** A web-standard handler with the route's context. */
export type RouteHandler = (
  request: Request,
  context: RouteContext,
) => Promise<Response> | Response;

/** One row of the route table. */
export interface Route {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** A URLPattern pathname, e.g. `/admin/events/:id`. */
  path: string;
  handler: RouteHandler;
}

/** Finds the handler for a request, or throws the 404/405 {@linkcode HttpError}. */
export type Router = (request: Request, context: Omit<RouteContext, "params">) => Promise<Response>;

/** Compiles a route table into a {@linkcode Router}. */
export function createRouter(routes: readonly Route[]): Router {
  // Paths without parameters are looked up in a map: URLPattern.exec costs microseconds, and the
  // webhook path is hit by every delivery.
  const exact = new Map<string, Route[]>();
  const patterns: { route: Route; pattern: URLPattern }[] = [];
  for (const route of routes) {
    if (/[:*(]/.test(route.path)) {
      patterns.push({ route, pattern: new URLPattern({ pathname: route.path }) });
    } else {
      exact.set(route.path, [...(exact.get(route.path) ?? []), route]);
    }
  }

  return async (request, context) => {
    const pathname = pathnameOf(request.url);
    const matches: { route: Route; params: Record<string, string> }[] = (exact.get(pathname) ?? [])
      .map((route) => ({ route, params: {} }));
    if (matches.length === 0) {
      for (const { route, pattern } of patterns) {
        const match = pattern.exec({ pathname });
        if (match) matches.push({ route, params: _decodedGroups(match.pathname.groups) });
      }
    }
    if (matches.length === 0) throw new HttpError(404, `No route for "${pathname}"`);

    const method = request.method === "HEAD" ? "GET" : request.method;
    const found = matches.find((candidate) => candidate.route.method === method);
    if (!found) {
      const allowed = _allowedMethods(matches.map((candidate) => candidate.route.method));
      throw new HttpError(405, `Method "${request.method}" is not allowed on "${pathname}"`, {
        Allow: allowed.join(", "),
      });
    }
    nameRequestSpan(request.method, found.route.path);
    const response = await found.route.handler(request, { ...context, params: found.params });
    if (request.method !== "HEAD") return response;
    // RFC 9110 8.6: a HEAD response's Content-Length is the one GET would send, not 0.
    const bytes = (await response.arrayBuffer()).byteLength;
    const headers = new Headers(response.headers);
    headers.set("Content-Length", String(bytes));
    return new Response(null, { status: response.status, headers });
  };
}

/** The path of an absolute URL, without parsing all of it (cheaper than `new URL`). */
export function pathnameOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start === -1) return "/";
  const end = url.slice(start).search(/[?#]/);
  return end === -1 ? url.slice(start) : url.slice(start, start + end);
}

function _allowedMethods(methods: string[]): string[] {
  const allowed = new Set(methods);
  if (allowed.has("GET")) allowed.add("HEAD");
  return [...allowed].sort();
}

/** The matched groups, percent-decoded once (ids such as `wamid.…%3D%3D` arrive encoded). */
function _decodedGroups(groups: Record<string, string | undefined>): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [name, raw] of Object.entries(groups)) {
    if (raw === undefined) continue;
    try {
      params[name] = decodeURIComponent(raw);
    } catch {
      throw new HttpError(
        400,
        `Cannot read "${name}" in the path: "${clipForReason(raw)}" has broken percent-encoding`,
      );
    }
  }
  return params;
}
