/**
 * Test support: a route table served on a real loopback socket, with errors answered the way the
 * app answers them (`errorResponse`), for testing handler modules at their paths in the service's
 * route table (`serviceRoutes`) without the whole app.
 *
 * @module
 */
import { errorResponse, HttpError, toHttpError } from "../src/http/errors.ts";
import { createRouter, type Route, type RouteHandler } from "../src/http/router.ts";
import { type ServiceHandlers, serviceRoutes } from "../src/routes.ts";
import { type CapturedLogger, captureLogs } from "./support.ts";

/** A running route server; dispose it to stop. */
export interface RouteServer extends AsyncDisposable {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  /** The request logger handed to handlers. */
  logs: CapturedLogger;
}

/** Serves `routes` on 127.0.0.1 with an OS-chosen port. */
export function serveRoutes(routes: Route[], logs: CapturedLogger = captureLogs()): RouteServer {
  const route = createRouter(routes);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      try {
        return await route(request, { log: logs.logger, requestId: "test" });
      } catch (error) {
        const httpError = toHttpError(error);
        if (httpError !== error) logs.logger.error("request failed", { error });
        // As the app's access log does: the status and the reason of every refusal.
        logs.logger.warn("request", { status: httpError.status, reason: httpError.reason });
        return errorResponse(httpError);
      }
    },
  );
  return {
    origin: `http://127.0.0.1:${server.addr.port}`,
    logs,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

/**
 * Serves the service's route table with `handlers`. The endpoints of modules not under test
 * answer 501 "not under test"; the admin ones not given are off (404), as without an admin token.
 */
export function serveService(
  handlers: Partial<ServiceHandlers>,
  logs: CapturedLogger = captureLogs(),
): RouteServer {
  return serveRoutes(serviceRoutes({ ..._NOT_UNDER_TEST, ...handlers }), logs);
}

const _notUnderTest: RouteHandler = () => {
  throw new HttpError(501, "Endpoint not under test");
};

const _NOT_UNDER_TEST: ServiceHandlers = {
  webhook: { handshake: _notUnderTest, intake: _notUnderTest },
  health: { healthz: _notUnderTest, readyz: _notUnderTest },
  metrics: _notUnderTest,
  admin: undefined,
  destinations: undefined,
  jobs: undefined,
  messageStatus: undefined,
  doctor: undefined,
  conversationWindow: undefined,
};

/** Fetches `path` and reads the whole body as text. */
export async function get(
  origin: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; text: string }> {
  const response = await fetch(`${origin}${path}`, { headers });
  return { status: response.status, headers: response.headers, text: await response.text() };
}
