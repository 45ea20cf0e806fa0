/**
 * Ending a connection after its answer, the one lever `Deno.serve` leaves a handler.
 *
 * Deno 2.9's HTTP/1.1 server has no header, body or idle timeout, and after answering a request
 * whose body was not read to its end it goes on reading (and discarding) that body without any
 * limit: a client that stalls mid-body keeps the connection, and `server.shutdown()` waits for it
 * forever. A `Connection: close` header does not change that. What does end the connection is a
 * response body that fails: the server drops the socket. {@linkcode closingConnection} sends the
 * whole answer and then fails its body on purpose; the client gets the status and the body, then
 * the connection closes without the final chunk.
 *
 * @module
 */

/** The error a closing response body fails with; `Deno.serve`'s `onError` gets it. */
export class ConnectionCloseRequest extends Error {
  override name = "ConnectionCloseRequest";

  constructor() {
    super("Connection closed on purpose after the answer");
    // `deno serve` has no `onError` and prints what it gets: one line, not a stack.
    this.stack = `${this.name}: ${this.message}`;
  }
}

/**
 * The same status, headers and body, after which `Deno.serve` closes the connection instead of
 * reading the rest of the request's body. The body is sent in one chunk, then fails with a
 * {@linkcode ConnectionCloseRequest}.
 */
export function closingConnection(response: Response): Response {
  const answer = response.arrayBuffer();
  let isSent = false;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (isSent) return controller.error(new ConnectionCloseRequest());
      isSent = true;
      const bytes = new Uint8Array(await answer);
      // The pull after this one fails the body, once this chunk is written.
      if (bytes.byteLength > 0) controller.enqueue(bytes);
    },
  });
  const headers = new Headers(response.headers);
  headers.set("Connection", "close");
  headers.delete("Content-Length");
  return new Response(body, { status: response.status, statusText: response.statusText, headers });
}

/** Whether `error` is the deliberate failure of a {@linkcode closingConnection} body. */
export function isConnectionCloseRequest(error: unknown): boolean {
  return error instanceof ConnectionCloseRequest;
}
