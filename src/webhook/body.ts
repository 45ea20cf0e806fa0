/**
 * Reads a request body as raw bytes, never more than a bound.
 *
 * The bytes are what Meta signed, so they are kept exactly as received.
 *
 * @module
 */
import { HttpError } from "../http/errors.ts";

/**
 * Reads the whole body, or throws 413 as soon as it is known to pass `maxBytes`.
 *
 * A `Content-Length` over the bound is refused without reading; a chunked body is counted while
 * it streams and the stream is cancelled the moment the count passes the bound.
 *
 * @throws {HttpError} 413 when the body is larger than `maxBytes`
 */
export async function readBoundedBody(
  request: Request,
  maxBytes: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    throw _tooLarge(maxBytes, `Content-Length is ${declared}`);
  }
  // With a Content-Length within the bound, the HTTP server already limits the body to it, so the
  // whole body can be read at once. `request.body` is not touched on this path: reading it turns
  // the body into a stream, which costs Deno.serve about 4 µs a request.
  if (declared !== null) return new Uint8Array(await request.arrayBuffer());
  if (!request.body) return new Uint8Array(0);

  const chunks: Uint8Array<ArrayBuffer>[] = [];
  let total = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw _tooLarge(maxBytes, `streamed body passed ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  if (chunks.length === 1 && chunks[0]) return chunks[0];
  const body = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

function _tooLarge(maxBytes: number, detail: string): HttpError {
  return new HttpError(413, `Body is larger than the limit of ${maxBytes} bytes (${detail})`);
}
