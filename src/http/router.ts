/**
 * A small URLPattern router whose routes are a plain data table.
 *
 * HEAD follows GET (same handler, no body); a known path with another method answers 405 with an
 * `Allow` header; an unknown path 404. Handlers throw {@linkcode HttpError} for expected failures.
 *
 * @module
 */
import { HttpError } from "./errors.ts";
import type { Logger } from "../log.ts";

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
  const compiled = routes.map((route) => ({
    ...route,
    pattern: new URLPattern({ pathname: route.path }),
  }));

  return async (request, context) => {
    const url = new URL(request.url);
    const matches = compiled
      .map((route) => ({ route, match: route.pattern.exec({ pathname: url.pathname }) }))
      .filter((candidate) => candidate.match !== null);
    if (matches.length === 0) throw new HttpError(404, `No route for "${url.pathname}"`);

    const method = request.method === "HEAD" ? "GET" : request.method;
    const found = matches.find((candidate) => candidate.route.method === method);
    if (!found) {
      const allowed = _allowedMethods(matches.map((candidate) => candidate.route.method));
      throw new HttpError(405, `Method "${request.method}" is not allowed on "${url.pathname}"`, {
        Allow: allowed.join(", "),
      });
    }
    const params = _definedGroups(found.match?.pathname.groups ?? {});
    const response = await found.route.handler(request, { ...context, params });
    if (request.method !== "HEAD") return response;
    await response.body?.cancel();
    return new Response(null, { status: response.status, headers: response.headers });
  };
}

function _allowedMethods(methods: string[]): string[] {
  const allowed = new Set(methods);
  if (allowed.has("GET")) allowed.add("HEAD");
  return [...allowed].sort();
}

function _definedGroups(groups: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(groups).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}
