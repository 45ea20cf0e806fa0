/**
 * One error type for expected HTTP failures and the one place that turns errors into responses.
 *
 * @module
 */
import { closingConnection } from "./connection.ts";

/** Reason phrases for the statuses this service answers with (instead of `@std/http`). */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: "OK",
  202: "Accepted",
  204: "No Content",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  /** nginx's status for a client that went away before its request was complete: never sent. */
  499: "Client Closed Request",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/** An expected failure with the status to answer and a reason a person can act on. */
export class HttpError extends Error {
  override name = "HttpError";

  /**
   * @param status the HTTP status to answer with
   * @param reason sentence case, no final period; it is sent to the client and logged
   * @param headers extra response headers (e.g. `Allow` on 405)
   */
  constructor(
    readonly status: number,
    readonly reason: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(reason);
  }
}

/**
 * A failure that leaves the request's body unread to its end (too large, too slow, cut off at
 * shutdown, or the client went away): its answer closes the connection, so the server does not go
 * on reading the rest.
 */
export class IncompleteBodyError extends HttpError {
  override name = "IncompleteBodyError";
}

/**
 * A JSON response `{ "error": reason }` for a failed request; for an
 * {@linkcode IncompleteBodyError}, one that closes the connection after it.
 */
export function errorResponse(error: HttpError): Response {
  const response = Response.json({ error: error.reason }, {
    status: error.status,
    statusText: STATUS_TEXT[error.status] ?? "",
    headers: error.headers,
  });
  return error instanceof IncompleteBodyError ? closingConnection(response) : response;
}

/** Cuts a value echoed in a reason (an id, a query value) so that the reason stays one line. */
export function clipForReason(value: string): string {
  return value.length > 64 ? `${value.slice(0, 64)}…` : value;
}

/** Turns anything thrown by a handler into an {@linkcode HttpError}; unknown errors become 500. */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  return new HttpError(500, "Internal error");
}
