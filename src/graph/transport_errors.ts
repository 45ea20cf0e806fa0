/**
 * What a failed Graph API request means for the message it carried: sent for certain, certainly
 * not sent, or unknown. Deno's fetch reports a refused connection and a connection lost after the
 * request was written with the same `TypeError`; this module reads the causes and decides, on the
 * safe side, so that a message whose outcome is unknown is not sent again blindly.
 *
 * @module
 */
import { GraphApiError } from "./errors.ts";

/**
 * What Deno's fetch says when no connection was made (refused, DNS, TLS handshake: hyper's
 * `Connect` phase; a port fetch blocks): the request was certainly not sent.
 */
const CONNECT_FAILURE_PATTERN = /client error \(Connect\)|Requests to port \d+ are blocked/;

/** What {@linkcode transportError} needs to know about the attempt that failed. */
export interface FailedAttempt {
  /** The access token used, removed from any text kept. */
  token: string;
  /** The request's time limit. */
  timeoutMs: number;
  /** Whether the time limit ended the request. */
  hasTimedOut: boolean;
  /** The answer's HTTP status, once its status line had arrived. */
  answeredStatus: number | undefined;
}

/**
 * The {@linkcode GraphApiError} for a request that failed without a readable answer: `transient`
 * when nothing was sent (no connection was made, or Meta said no before its body was lost),
 * `unknown_outcome` when Meta may have accepted it (a timeout, a connection lost after writing, a
 * 2xx whose body was lost).
 */
export function transportError(error: unknown, attempt: FailedAttempt): GraphApiError {
  const { token, timeoutMs, hasTimedOut, answeredStatus } = attempt;
  const reason = redactToken(describeError(error), token);
  const what = hasTimedOut ? `did not finish within ${timeoutMs} ms` : `failed: ${reason}`;
  if (answeredStatus !== undefined && answeredStatus >= 300) {
    // Meta said no before the body was lost: nothing was sent.
    return new GraphApiError({
      message: `Graph API answered HTTP ${answeredStatus}, but reading its body ${what}`,
      category: "transient",
      httpStatus: answeredStatus,
      cause: error,
    });
  }
  if (answeredStatus !== undefined) {
    return new GraphApiError({
      message:
        `Graph API answered HTTP ${answeredStatus}, but reading its body ${what}: the request may have been accepted`,
      category: "unknown_outcome",
      httpStatus: answeredStatus,
      cause: error,
    });
  }
  if (hasTimedOut) {
    return new GraphApiError({
      message:
        `Graph API did not answer within ${timeoutMs} ms: the request may have been accepted`,
      category: "unknown_outcome",
      cause: error,
    });
  }
  if (isConnectFailure(error)) {
    return new GraphApiError({
      message: `Cannot connect to the Graph API: ${reason}`,
      category: "transient",
      cause: error,
    });
  }
  return new GraphApiError({
    message: `Lost the connection to the Graph API: ${reason}; the request may have been accepted`,
    category: "unknown_outcome",
    cause: error,
  });
}

/**
 * A 2xx answer without the expected shape. Meta may have accepted the message, so sending it
 * again could deliver it twice: its outcome is unknown.
 */
export function unreadableSuccess(): GraphApiError {
  return new GraphApiError({
    message: "Cannot read the Graph API's success answer: the message may have been sent",
    category: "unknown_outcome",
  });
}

/**
 * Whether a fetch failure certainly sent nothing: the connection was never made. Deno's fetch
 * rejects with `TypeError("fetch failed")` both for a refused connection or a failed DNS lookup
 * and for a connection lost after the request was written; only its cause tells them apart
 * (`client error (Connect)` for the first). Anything not recognised counts as possibly sent: the
 * safe side, since it is then sent again once at most rather than up to the retry limit. The
 * destinations' delivery attempt (`destinations/send.ts`) reads it to word its reasons.
 */
export function isConnectFailure(error: unknown): boolean {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 5; depth++) {
    if (cause instanceof Deno.errors.NotCapable || cause instanceof Deno.errors.PermissionDenied) {
      return true; // refused by Deno's permissions before any connection
    }
    if (CONNECT_FAILURE_PATTERN.test(cause.message)) return true;
    cause = cause.cause;
  }
  return false;
}

/**
 * An error's message and its causes', joined with `: ` (Deno's `fetch failed` hides the reason in
 * its cause); three levels at most.
 */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  for (let cause = error, depth = 0; cause !== undefined && depth < 3; depth++) {
    parts.push(cause instanceof Error ? cause.message : String(cause));
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return parts.join(": ");
}

/** Removes the token from text that may be logged, in case an answer or an error echoes it. */
export function redactToken(text: string, token: string): string {
  return token === "" ? text : text.replaceAll(token, "[redacted]");
}
