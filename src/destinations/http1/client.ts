/**
 * The built-in HTTP/1.1 client of a deliverer: POSTs over keep-alive connections of its own
 * (`Deno.connect`, `Deno.connectTls` for `https:`), each request one write and its answer read
 * through the connection's buffer (`answer.ts`). It costs about a third of what `fetch` does per
 * request, which is most of a busy destination's JavaScript time.
 *
 * - Idle connections are kept per origin, the most recently used first, at most
 *   {@linkcode MAX_IDLE_CONNECTIONS}; those idle for longer than {@linkcode IDLE_MS} (below the 5 s
 *   after which Node's servers close theirs, so a request seldom meets a connection being closed)
 *   are closed instead of reused at the next request, and every one at `close()`.
 * - A request on a kept connection that ends before any byte of an answer (the server closed it
 *   while idle) is sent once more on a new connection, as HTTP clients do; consumers deduplicate
 *   by `webhook-id` should the first have been handled after all.
 * - An abort (the attempt's timeout, shutdown) closes the request's connection.
 * - No proxy: `transport.ts`'s `fetchPost` is the way through one. No redirect is followed, no
 *   compression asked for.
 *
 * @module
 */
import { describeError } from "../../graph/transport_errors.ts";
import { type Post, type PostRequest, TransportError } from "../transport.ts";
import { EndedBeforeAnswerError, readAnswer } from "./answer.ts";
import { ConnectionReader, MalformedAnswerError } from "./reader.ts";

/** Idle connections kept per origin at most (a destination's concurrency is at most 64). */
export const MAX_IDLE_CONNECTIONS = 64;

/** How long a connection may sit idle before it is closed instead of reused, ms. */
export const IDLE_MS = 4_000;

/** What the requests say they come from. */
const USER_AGENT = "wa-webhook";

/** Characters a header may not hold: they would end it and start another. */
const LINE_BREAK = /[\r\n\0]/;

/** What {@linkcode createHttp1Client} accepts. */
export interface Http1ClientOptions {
  /** Certificates (PEM) to trust for `https:` besides the system's; tests' own authority. */
  caCerts?: string[];
  /** Defaults to {@linkcode IDLE_MS}. */
  idleMs?: number;
  /** Defaults to `performance.now`. */
  now?: () => number;
}

/** An HTTP/1.1 client with its connections. */
export interface Http1Client {
  /** Sends one POST (see `transport.ts`). */
  post: Post;
  /** Closes its idle connections; later requests open new ones. */
  close(): void;
}

/** Where a URL's requests go. */
interface _Target {
  /** The pool's key: scheme, host and port. */
  origin: string;
  hostname: string;
  port: number;
  isTls: boolean;
  /** The `Host` header. */
  host: string;
  /** The request target: path and query. */
  path: string;
}

/** A connection and its reader. */
interface _Connection {
  conn: Deno.Conn;
  reader: ConnectionReader;
  idleSince: number;
  isClosed: boolean;
}

const _encoder = new TextEncoder();

/** Creates an HTTP/1.1 client; close it when done (its idle connections stay open until then). */
export function createHttp1Client(options: Http1ClientOptions = {}): Http1Client {
  const idleMs = options.idleMs ?? IDLE_MS;
  const now = options.now ?? (() => performance.now());
  const idle = new Map<string, _Connection[]>();
  let lastUrl = "";
  let lastTarget: _Target | undefined;

  function targetOf(url: string): _Target {
    if (url !== lastUrl || lastTarget === undefined) {
      lastTarget = _target(url);
      lastUrl = url;
    }
    return lastTarget;
  }

  /**
   * The most recently kept connection to `target`, or `undefined`; those idle too long, the oldest
   * first in the list, are closed on the way.
   */
  function takeIdle(target: _Target): _Connection | undefined {
    const kept = idle.get(target.origin);
    if (!kept) return undefined;
    const at = now();
    while (kept.length > 0 && at - kept[0]!.idleSince > idleMs) _close(kept.shift()!);
    return kept.pop();
  }

  function release(target: _Target, connection: _Connection): void {
    const kept = idle.get(target.origin) ?? [];
    if (connection.isClosed || kept.length >= MAX_IDLE_CONNECTIONS) return _close(connection);
    connection.idleSince = now();
    kept.push(connection);
    idle.set(target.origin, kept);
  }

  async function post({ url, headers, body, signal }: PostRequest) {
    signal.throwIfAborted();
    const target = targetOf(url);
    const bytes = _requestBytes(target, headers, body);
    for (let isRetry = false;; isRetry = true) {
      // A resend goes on a new connection: the other kept ones may be as stale as the first.
      const kept = isRetry ? undefined : takeIdle(target);
      const connection = kept ?? await _connect(target, signal, options.caCerts);
      const onAbort = (): void => _close(connection);
      signal.addEventListener("abort", onAbort);
      try {
        connection.reader.markExchange();
        await _writeAll(connection.conn, bytes);
        const { answer, isReusable } = await readAnswer(connection.reader, signal);
        if (isReusable) release(target, connection);
        else _close(connection);
        return answer;
      } catch (error) {
        _close(connection);
        if (signal.aborted) throw signal.reason;
        // The server closed a kept connection while it was idle: nothing of the request was
        // handled, as far as can be known; once more on a new one.
        if (kept && !isRetry && !connection.reader.hasReceived) continue;
        throw new TransportError(_exchangeFailure(error), {
          isConnectFailure: false,
          cause: error,
        });
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    }
  }

  return {
    post,
    close() {
      for (const kept of idle.values()) kept.forEach(_close);
      idle.clear();
    },
  };
}

/** Where `url`'s requests go. */
function _target(url: string): _Target {
  const parsed = new URL(url);
  const isTls = parsed.protocol === "https:";
  if (!isTls && parsed.protocol !== "http:") {
    throw new TypeError(`Not an http(s) URL: ${parsed.protocol}`);
  }
  return {
    origin: parsed.origin,
    // An IPv6 literal's brackets are the URL's, not the address's.
    hostname: parsed.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: parsed.port === "" ? (isTls ? 443 : 80) : Number(parsed.port),
    isTls,
    host: parsed.host,
    path: `${parsed.pathname}${parsed.search}`,
  };
}

/** The request's bytes, head and body, for one write. */
function _requestBytes(
  target: _Target,
  headers: Record<string, string>,
  body: string | Uint8Array,
): Uint8Array {
  const content = typeof body === "string" ? _encoder.encode(body) : body;
  let head =
    `POST ${target.path} HTTP/1.1\r\nHost: ${target.host}\r\nUser-Agent: ${USER_AGENT}\r\n` +
    `Content-Length: ${content.byteLength}\r\n`;
  for (const name in headers) {
    const value = headers[name]!;
    if (LINE_BREAK.test(name) || LINE_BREAK.test(value)) {
      throw new TypeError(`Header "${name.replace(LINE_BREAK, " ")}" holds a line break`);
    }
    head += `${name}: ${value}\r\n`;
  }
  head += "\r\n";
  const bytes = new Uint8Array(head.length * 3 + content.byteLength);
  const { written } = _encoder.encodeInto(head, bytes);
  bytes.set(content, written);
  return bytes.subarray(0, written + content.byteLength);
}

/**
 * Opens a connection to `target` (TCP, then TLS with its handshake done): a
 * {@linkcode TransportError} when none can be made, the abort's reason when `signal` aborts first.
 */
async function _connect(
  target: _Target,
  signal: AbortSignal,
  caCerts: string[] | undefined,
): Promise<_Connection> {
  const { hostname, port } = target;
  const connecting = (async () => {
    if (!target.isTls) {
      const conn = await Deno.connect({ hostname, port });
      conn.setNoDelay(true);
      return conn;
    }
    const conn = await Deno.connectTls({
      hostname,
      port,
      alpnProtocols: ["http/1.1"],
      ...(caCerts ? { caCerts } : {}),
    });
    try {
      await conn.handshake();
    } catch (error) {
      conn.close();
      throw error;
    }
    return conn;
  })();
  let onAbort = (): void => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) onAbort();
  });
  try {
    const conn = await Promise.race([connecting, aborted]);
    return { conn, reader: new ConnectionReader(conn), idleSince: 0, isClosed: false };
  } catch (error) {
    if (signal.aborted) {
      connecting.then((conn) => conn.close(), () => {}); // made after all: not needed
      throw signal.reason;
    }
    throw new TransportError(describeError(error), { isConnectFailure: true, cause: error });
  } finally {
    signal.removeEventListener("abort", onAbort);
    aborted.catch(() => {});
  }
}

/** Writes all of `bytes`. */
async function _writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += await conn.write(bytes.subarray(written));
  }
}

function _close(connection: _Connection): void {
  if (connection.isClosed) return;
  connection.isClosed = true;
  try {
    connection.conn.close();
  } catch {
    // closed already
  }
}

/** Why an exchange failed, for a reason: the protocol broken, or the connection lost. */
function _exchangeFailure(error: unknown): string {
  if (error instanceof MalformedAnswerError) return `its answer is not HTTP/1.1: ${error.message}`;
  if (error instanceof EndedBeforeAnswerError) return error.message;
  return describeError(error);
}
