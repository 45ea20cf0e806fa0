/**
 * How an attempt's POST reaches a destination, apart from what its answer means (`send.ts`): a
 * {@linkcode Post} sends the request and brings back the status, the headers and at most
 * {@linkcode MAX_BODY_READ_BYTES} of the body. Two implementations: Deno's `fetch`
 * ({@linkcode fetchPost}, which honours `HTTP_PROXY` and its kin) and the built-in HTTP/1.1 client
 * (`http1/client.ts`, a third of fetch's cost per request, connecting directly).
 *
 * @module
 */
import { describeError, isConnectFailure } from "../graph/transport_errors.ts";

/**
 * The most of an answer's body read, in bytes: enough for any error message a consumer writes,
 * and a small body read to its end lets the connection be kept for the next attempt.
 */
export const MAX_BODY_READ_BYTES = 4 * 1024;

/**
 * How a service's deliveries travel: `"direct"`, the built-in HTTP/1.1 client; `"fetch"`, Deno's
 * `fetch`, which honours the proxy variables.
 */
export type DeliveryHttp = "direct" | "fetch";

/** The variables Deno's `fetch` takes a proxy from (`NO_PROXY` only narrows them). */
export const PROXY_VARIABLES = [
  "HTTP_PROXY",
  "http_proxy",
  "HTTPS_PROXY",
  "https_proxy",
  "ALL_PROXY",
  "all_proxy",
] as const;

/**
 * `"direct"` when no proxy variable is set; `"fetch"` when one is, or cannot be read (`readEnv`
 * throws): fetch goes through the proxy, where the built-in client would go around it.
 */
export function deliveryHttpFor(readEnv: (name: string) => string | undefined): DeliveryHttp {
  try {
    return PROXY_VARIABLES.some((name) => (readEnv(name) ?? "").trim() !== "") ? "fetch" : "direct";
  } catch {
    return "fetch";
  }
}

/** One POST to send. */
export interface PostRequest {
  url: string;
  /** Sent as given; they never hold a line break. */
  headers: Record<string, string>;
  body: string | Uint8Array<ArrayBuffer>;
  /**
   * Aborts the request (its timeout, or shutdown): before the status line arrives the post
   * rejects; after it, reading the body stops and the answer comes back unfinished.
   */
  signal: AbortSignal;
}

/** The start of an answer's body, whether it was read to its end, and why reading stopped early. */
export interface BodyPrefix {
  /** At most {@linkcode MAX_BODY_READ_BYTES}. */
  bytes: Uint8Array;
  isComplete: boolean;
  /** Why reading failed, when it did (not set for the byte cap or an abort). */
  failure?: string;
}

/** What came back for a POST. */
export interface Answer {
  status: number;
  /** The value of header `name` (any case); `null` when absent. */
  header(name: string): string | null;
  body: BodyPrefix;
}

/** Sends one POST; rejects with a {@linkcode TransportError} when no answer's status arrived. */
export type Post = (request: PostRequest) => Promise<Answer>;

/** Why no answer came: no connection made, or the connection lost (or garbled) before it. */
export class TransportError extends Error {
  /** Whether no connection was made at all (refused, DNS, TLS handshake): nothing was sent. */
  readonly isConnectFailure: boolean;

  /** A failure described by `message`; `isConnectFailure` when no connection was made. */
  constructor(message: string, options: { isConnectFailure: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? {} : { cause: options.cause });
    this.name = "TransportError";
    this.isConnectFailure = options.isConnectFailure;
  }
}

/** A {@linkcode Post} over `fetchFn` (Deno's `fetch` by default): no redirect followed. */
export function fetchPost(fetchFn: typeof fetch = fetch): Post {
  return async ({ url, headers, body, signal }) => {
    let response: Response;
    try {
      response = await fetchFn(url, { method: "POST", headers, body, redirect: "manual", signal });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw new TransportError(describeError(error), {
        isConnectFailure: isConnectFailure(error),
        cause: error,
      });
    }
    const prefix = await _readPrefix(response, signal);
    return { status: response.status, header: (name) => response.headers.get(name), body: prefix };
  };
}

/**
 * Reads at most {@linkcode MAX_BODY_READ_BYTES} of the body and cancels the rest, or stops when
 * `signal` aborts (the timeout). A body read to its end leaves the connection reusable; a
 * cancelled one closes it.
 */
async function _readPrefix(response: Response, signal: AbortSignal): Promise<BodyPrefix> {
  if (response.body === null) return { bytes: new Uint8Array(0), isComplete: true };
  // A short body of declared length (a consumer's usual answer) is read whole at once, which a
  // busy destination's every attempt would otherwise spend a reader's loop on. The timeout's abort
  // ends the read here too: the body belongs to the aborted request.
  const declared = Number(response.headers.get("Content-Length") ?? NaN);
  if (declared === 0) {
    // Nothing to read (a consumer's most usual answer): the body is at its end already, so
    // cancelling it costs less than reading it and leaves the connection reusable all the same.
    await response.body.cancel().catch(() => {});
    return { bytes: new Uint8Array(0), isComplete: true };
  }
  if (Number.isInteger(declared) && declared >= 0 && declared <= MAX_BODY_READ_BYTES) {
    try {
      return { bytes: new Uint8Array(await response.arrayBuffer()), isComplete: true };
    } catch (error) {
      return { bytes: new Uint8Array(0), isComplete: false, failure: describeError(error) };
    }
  }
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let onAbort = (): void => {};
  const aborted = new Promise<"aborted">((resolve) => {
    onAbort = () => resolve("aborted");
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) onAbort();
  });
  let isComplete = false;
  let failure: string | undefined;
  try {
    while (total < MAX_BODY_READ_BYTES) {
      const read = reader.read();
      const result = await Promise.race([read, aborted]);
      if (result === "aborted") {
        read.catch(() => {}); // the cancel below ends it
        break;
      }
      if (result.done) {
        isComplete = true;
        break;
      }
      chunks.push(result.value);
      total += result.value.byteLength;
    }
  } catch (error) {
    failure = describeError(error);
  } finally {
    signal.removeEventListener("abort", onAbort);
    if (!isComplete) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  const bytes = new Uint8Array(Math.min(total, MAX_BODY_READ_BYTES));
  let offset = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, bytes.byteLength - offset);
    bytes.set(part, offset);
    offset += part.byteLength;
    if (offset === bytes.byteLength) break;
  }
  return { bytes, isComplete, ...(failure === undefined ? {} : { failure }) };
}
