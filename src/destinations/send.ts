/**
 * One delivery attempt to a destination: a single POST, bounded in time and in what is read back,
 * classified into what the caller does next. It never throws for a network or HTTP problem: a
 * consumer that is down, slow, rude or gone is an outcome, not an exception.
 *
 * - `delivered`: any 2xx.
 * - `retry`: 408, 429, 5xx, no answer within the timeout, or a network error (refused, reset, DNS);
 *   with `retryAfterMs` when the answer carried a readable `Retry-After` (capped by the caller).
 * - `rejected`: any other answer (4xx but 410, a 3xx: redirects are not followed). The event is
 *   the problem, not the destination; the caller retries it on the same policy and dead-letters
 *   it after the attempts, since consumers fix their bugs.
 * - `gone`: 410; the caller pauses the destination.
 *
 * Only the first `MAX_BODY_READ_BYTES` of an answer are read, to word the reason; the rest is
 * left unread and its connection closed, so a huge or endless body holds neither memory nor time.
 * The timeout covers the whole attempt, reading that prefix included. How the request travels is
 * the caller's choice (`transport.ts`): `fetch`, or the built-in HTTP/1.1 client.
 *
 * @module
 */

import { DEFAULTS } from "../config.ts";
import { type Clock, systemClock } from "../ops/clock.ts";
import { type Deadlines, timerDeadlines } from "../ops/deadlines.ts";
import { parseRetryAfter } from "../graph/retry.ts";
import { describeError } from "../graph/transport_errors.ts";
import { type BodyPrefix, fetchPost, type Post, TransportError } from "./transport.ts";

/** The most of an answer's body quoted in a reason, in characters: one line a person reads. */
export const MAX_REASON_EXCERPT_CHARS = 200;

/** The most of a network error's text or a `Location` kept in a reason, in characters. */
const MAX_DETAIL_CHARS = 300;

/** Control characters (C0, DEL, C1) and Unicode line separators: a reason stays one line. */
const CONTROL_CHARACTERS = /[\p{Cc}\u2028\u2029]+/gu;

/** How Deno's fetch names the URL in its errors. */
const FOR_URL_PATTERN = /(for url \()[^)]*\)/g;

/** What each answer means for the person reading the reason; see {@linkcode _statusMeaning}. */
const STATUS_MEANINGS: Readonly<Record<number, string>> = {
  400: "the destination refused this event as malformed",
  401:
    "the destination refused the request's credentials: check the signing secret it verifies with",
  403: "the destination refused the request: check the signing secret and its access rules",
  404: "no endpoint at this URL: check the destination's URL",
  405: "the URL does not accept POST: check the destination's URL",
  408: "the destination timed out reading the request",
  409: "the destination reported a conflict with this event",
  410: "the endpoint is gone: the destination is paused until it is resumed",
  413: "the event is larger than the destination accepts",
  415: "the destination does not accept this content type",
  422: "the destination could not process this event",
  429: "the destination asks to slow down",
  500: "the destination failed while handling the event",
  502: "a proxy in front of the destination got no valid answer from it",
  503: "the destination is unavailable",
  504: "a proxy in front of the destination timed out waiting for it",
};

/** Why an attempt is to be retried. */
export type RetryCause =
  /** 408, 429 or 5xx. */
  | "status"
  /** No answer within the timeout. */
  | "timeout"
  /** No connection, or the connection lost before the answer's status line. */
  | "network";

/** What one attempt came to; `durationMs` runs from the call to the outcome, on a real timer. */
export type AttemptOutcome =
  | { kind: "delivered"; status: number; durationMs: number }
  | {
    kind: "retry";
    cause: RetryCause;
    /** One line: what happened and what it means. */
    reason: string;
    /** Absent when no answer arrived. */
    status?: number;
    /** The wait the answer's `Retry-After` asked for, capped; absent when it had none. */
    retryAfterMs?: number;
    durationMs: number;
  }
  | { kind: "rejected"; status: number; reason: string; durationMs: number }
  | { kind: "gone"; status: 410; reason: string; durationMs: number };

/** What {@linkcode sendOnce} needs. */
export interface SendOnceOptions {
  /** The destination's URL. Only its origin appears in reasons: a query may hold a secret. */
  url: string;
  /** The request headers (signature, content type); sent as given. */
  headers: Record<string, string>;
  /** The request body, sent as is. */
  body: string | Uint8Array<ArrayBuffer>;
  /** The whole attempt, reading the answer included, ends after this many milliseconds. */
  timeoutMs: number;
  /**
   * No `retryAfterMs` exceeds this, in milliseconds: the worker's longest delay. Defaults to
   * `DEFAULTS.retryMaxDelayMs` of `config.ts`.
   */
  maxRetryAfterMs?: number;
  /** How the request is sent (`transport.ts`); defaults to `fetch` (the global one if absent). */
  post?: Post;
  /** The `fetch` of the default `post`; defaults to the global one. */
  fetch?: typeof fetch;
  /** The time an HTTP-date `Retry-After` is read against; defaults to the system clock. */
  clock?: Clock;
  /** Aborts the attempt (shutdown); {@linkcode sendOnce} then rejects with its reason. */
  signal?: AbortSignal;
  /**
   * Where the timeout is set: a deliverer's attempts share one timer (`ops/deadlines.ts`).
   * Defaults to a timer of its own.
   */
  deadlines?: Deadlines;
}

/**
 * POSTs `body` to `url` once, without following redirects, and classifies the answer (see the
 * module doc). The timeout is a real timer, not the injected clock: it guards against I/O that
 * hangs, like `ops/timeout.ts`.
 *
 * @throws the reason of `options.signal` when the caller aborts; never for the destination.
 */
export async function sendOnce(options: SendOnceOptions): Promise<AttemptOutcome> {
  const { url, headers, body, timeoutMs, signal } = options;
  const post = options.post ?? fetchPost(options.fetch);
  const clock = options.clock ?? systemClock;
  const maxRetryAfterMs = options.maxRetryAfterMs ?? DEFAULTS.retryMaxDelayMs;
  const origin = _origin(url);
  const startedAt = performance.now();
  const elapsed = (): number => Math.round(performance.now() - startedAt);

  signal?.throwIfAborted();
  const request = new AbortController();
  let hasTimedOut = false;
  const cancelTimeout = (options.deadlines ?? timerDeadlines).after(timeoutMs, () => {
    hasTimedOut = true;
    request.abort(new DOMException(`No answer within ${timeoutMs} ms`, "TimeoutError"));
  });
  const onCallerAbort = (): void => request.abort(signal?.reason);
  signal?.addEventListener("abort", onCallerAbort, { once: true });
  try {
    let answer;
    try {
      answer = await post({ url, headers, body, signal: request.signal });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const reason = hasTimedOut
        ? `Destination did not answer within ${timeoutMs} ms`
        : _networkReason(error, url, origin);
      return {
        kind: "retry",
        cause: hasTimedOut ? "timeout" : "network",
        reason,
        durationMs: elapsed(),
      };
    }
    const { status, body: prefix } = answer;
    if (signal?.aborted) throw signal.reason;
    if (status >= 200 && status < 300) return { kind: "delivered", status, durationMs: elapsed() };
    const unread = _unreadNote(prefix, hasTimedOut, timeoutMs);
    const excerpt = _excerpt(prefix.bytes);
    const quoted = excerpt === "" ? "" : ` (body: "${excerpt}")`;
    if (status >= 300 && status < 400) {
      const location = _locationForReason(answer.header("Location"), url);
      return {
        kind: "rejected",
        status,
        reason:
          `Destination answered HTTP ${status}, a redirect to "${location}" that is not followed: update the destination's URL${unread}`,
        durationMs: elapsed(),
      };
    }
    const meaning = _statusMeaning(status);
    const reason = `Destination answered HTTP ${status}: ${meaning}${quoted}${unread}`;
    if (status === 410) return { kind: "gone", status, reason, durationMs: elapsed() };
    if (status === 408 || status === 429 || status >= 500) {
      const asked = parseRetryAfter(answer.header("Retry-After"), clock.now());
      return {
        kind: "retry",
        cause: "status",
        reason,
        status,
        ...(asked === undefined ? {} : { retryAfterMs: Math.min(asked, maxRetryAfterMs) }),
        durationMs: elapsed(),
      };
    }
    return { kind: "rejected", status, reason, durationMs: elapsed() };
  } finally {
    cancelTimeout();
    signal?.removeEventListener("abort", onCallerAbort);
  }
}

/** What a reason adds when the body was not read to its end: the timeout, or the read's error. */
function _unreadNote(prefix: BodyPrefix, hasTimedOut: boolean, timeoutMs: number): string {
  if (prefix.isComplete) return "";
  if (hasTimedOut) return `; its body was not read within ${timeoutMs} ms`;
  if (prefix.failure === undefined) return ""; // the cap was reached: the rest is not needed
  return `; reading its body failed: ${_clip(_oneLine(prefix.failure), MAX_DETAIL_CHARS)}`;
}

/** Why no answer came, worded for a person: no connection made, or the connection lost. */
function _networkReason(error: unknown, url: string, origin: string): string {
  // Deno names the URL in its error ("for url (…)"); only the origin is kept, as everywhere.
  const text = describeError(error).replaceAll(url, origin).replace(
    FOR_URL_PATTERN,
    `$1${origin})`,
  );
  const detail = _clip(_oneLine(text), MAX_DETAIL_CHARS);
  return error instanceof TransportError && error.isConnectFailure
    ? `Cannot connect to "${origin}": ${detail}`
    : `Lost the connection to "${origin}" before its answer: ${detail}`;
}

/** What a status means, from {@linkcode STATUS_MEANINGS} or its class. */
function _statusMeaning(status: number): string {
  const known = STATUS_MEANINGS[status];
  if (known !== undefined) return known;
  if (status >= 500) return "the destination failed";
  if (status >= 400) return "the destination refused this event";
  return "an answer that is not a success";
}

/** The body's start as printable text on one line, clipped. */
function _excerpt(bytes: Uint8Array): string {
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  return _clip(_oneLine(text), MAX_REASON_EXCERPT_CHARS);
}

/** Control characters and runs of white space become one space. */
function _oneLine(text: string): string {
  return text.replace(CONTROL_CHARACTERS, " ").replace(/\s+/g, " ").trim();
}

function _clip(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `${text.slice(0, maxChars)}…`;
}

/**
 * A redirect's target, resolved against the URL, without its query and fragment (they may hold a
 * token), on one line and clipped.
 */
function _locationForReason(location: string | null, url: string): string {
  if (location === null) return "(no Location header)";
  let text = location;
  try {
    const target = new URL(location, url);
    text = `${target.origin}${target.pathname}`;
  } catch {
    text = location.split(/[?#]/, 1)[0] ?? "";
  }
  return _clip(_oneLine(text), MAX_DETAIL_CHARS);
}

/** The URL's origin, for reasons: a path or query may hold a secret. */
function _origin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return "(invalid URL)";
  }
}
