/**
 * Reads a request body as raw bytes, never more than a bound and never longer than a deadline.
 *
 * The bytes are what Meta signed, so they are kept exactly as received. `Deno.serve` has no body
 * timeout of its own: without the deadline, a client that stops sending mid-body holds its request
 * (and the shutdown that waits for it) forever.
 *
 * @module
 */
import { HttpError, IncompleteBodyError } from "../http/errors.ts";

/** The bounds of one body read. */
export interface ReadBodyOptions {
  /** A larger body is refused with 413. */
  maxBytes: number;
  /** The whole body must have arrived this long after the read starts, or it ends with 408. */
  timeoutMs: number;
  /** Aborted when the service stops waiting for bodies (shutdown): the read ends with 503. */
  signal?: AbortSignal;
}

/**
 * Reads the whole body, or throws as soon as it cannot be read within its bounds.
 *
 * A `Content-Length` over the bound is refused without reading, one within it read at once; any
 * other body is counted while it streams, and the stream is cancelled the moment the count passes
 * a bound.
 *
 * @throws {HttpError} 413 when the declared `Content-Length` passes `maxBytes`
 * @throws {IncompleteBodyError} 413 when the body passes `maxBytes` as it streams, 408 when it has
 * not arrived within `timeoutMs`, 503 when `signal` is aborted first, and 499 when the client
 * closed the connection before sending all of it
 */
export async function readBoundedBody(
  request: Request,
  options: ReadBodyOptions,
): Promise<Uint8Array<ArrayBuffer>> {
  _refuseDeclaredOver(request, options.maxBytes);
  // With a Content-Length within the bound, the server already limits the body to it: read it at
  // once, without touching `request.body`. That getter turns the body into a stream, which cost
  // about 30 MB of RSS under load and a few µs a request. A stalled read left behind ends with its
  // connection (the answer asks for that, and the server rotation closes it).
  if (request.headers.has("content-length")) {
    const deadline = _startDeadline(options);
    try {
      return new Uint8Array(await deadline.race(request.arrayBuffer()));
    } finally {
      deadline.clear();
    }
  }
  if (!request.body) return new Uint8Array(0);
  const deadline = _startDeadline(options);
  try {
    const chunks: Uint8Array<ArrayBuffer>[] = [];
    const total = await _readChunks(request.body, options.maxBytes, deadline, (chunk) => {
      chunks.push(chunk);
    });
    if (chunks.length === 1 && chunks[0]) return chunks[0];
    const body = new Uint8Array(total);
    let offset = 0;
    for (const chunk of chunks) {
      body.set(chunk, offset);
      offset += chunk.byteLength;
    }
    return body;
  } finally {
    deadline.clear();
  }
}

/**
 * Reads the rest of a body nobody read and drops it, within the same bounds: the answer to a
 * request is sent once its body has arrived, or with the connection closed.
 *
 * @throws {IncompleteBodyError} as {@linkcode readBoundedBody} does
 */
export async function discardBody(request: Request, options: ReadBodyOptions): Promise<void> {
  if (request.bodyUsed || !request.body) return;
  // A declared length over the bound was refused unread: the server drops that much after the
  // answer, and its client gets the whole answer.
  if (_isDeclaredOver(request, options.maxBytes)) return;
  const deadline = _startDeadline(options);
  try {
    await _readChunks(request.body, options.maxBytes, deadline, () => {});
  } finally {
    deadline.clear();
  }
}

/**
 * Whether the request announces a body that `Deno.serve` keeps from the handler (`request.body`
 * is `null` for GET and HEAD): the server reads and drops it after the answer, without a deadline,
 * so such an answer has to close the connection.
 */
export function hasHiddenBody(request: Request): boolean {
  // `bodyUsed` first: the `body` getter of a body read whole would make a stream of it.
  if (request.bodyUsed || request.body !== null) return false;
  const length = request.headers.get("content-length");
  return (length !== null && length !== "0") || request.headers.has("transfer-encoding");
}

/** Throws 413 when the declared `Content-Length` passes `maxBytes`. */
function _refuseDeclaredOver(request: Request, maxBytes: number): void {
  if (_isDeclaredOver(request, maxBytes)) {
    const declared = request.headers.get("content-length");
    throw new HttpError(413, _tooLargeReason(maxBytes, `Content-Length is ${declared}`));
  }
}

function _isDeclaredOver(request: Request, maxBytes: number): boolean {
  const declared = request.headers.get("content-length");
  return declared !== null && Number(declared) > maxBytes;
}

/** Reads every chunk into `keep`, cancelling the stream when a bound is passed; returns the total. */
async function _readChunks(
  body: ReadableStream<Uint8Array<ArrayBuffer>>,
  maxBytes: number,
  deadline: _Deadline,
  keep: (chunk: Uint8Array<ArrayBuffer>) => void,
): Promise<number> {
  let total = 0;
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await deadline.race(reader.read());
      if (done) return total;
      total += value.byteLength;
      if (total > maxBytes) throw _tooLarge(maxBytes, `streamed body passed ${maxBytes} bytes`);
      keep(value);
    }
  } catch (error) {
    reader.cancel().catch(() => {}); // a read may still be pending; the connection closes anyway
    throw error;
  }
}

interface _Deadline {
  /** `work`, unless the deadline passes first; a failed read becomes the client's 499. */
  race<T>(work: Promise<T>): Promise<T>;
  clear(): void;
}

function _startDeadline({ timeoutMs, signal }: ReadBodyOptions): _Deadline {
  let expire: (error: IncompleteBodyError) => void = () => {};
  const expired = new Promise<never>((_, reject) => (expire = reject));
  expired.catch(() => {}); // it may pass while nothing waits on it
  const timer = setTimeout(() => {
    expire(new IncompleteBodyError(408, `Body not received within ${timeoutMs} ms`));
  }, timeoutMs);
  const onAbort = (): void => {
    expire(new IncompleteBodyError(503, "Shutting down; retry later"));
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) onAbort();
  return {
    async race(work) {
      try {
        return await Promise.race([work, expired]);
      } catch (error) {
        // The read left behind fails once the connection closes: nobody needs that error.
        work.catch(() => {});
        if (error instanceof IncompleteBodyError) throw error;
        // Reading a body fails only when its connection does; a TypeError is a bug here.
        if (error instanceof TypeError) throw error;
        throw new IncompleteBodyError(
          499,
          "Client closed the connection before sending the whole body",
        );
      }
    },
    clear() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    },
  };
}

function _tooLarge(maxBytes: number, detail: string): IncompleteBodyError {
  return new IncompleteBodyError(413, _tooLargeReason(maxBytes, detail));
}

function _tooLargeReason(maxBytes: number, detail: string): string {
  return `Body is larger than the limit of ${maxBytes} bytes (${detail})`;
}
