/**
 * Buffered reading of a connection's bytes for the HTTP/1.1 client: one fixed buffer per
 * connection, kept across the requests it carries, from which an answer's head, lines and body
 * are taken. Nothing grows: a head or a line longer than the buffer is an error, not memory.
 *
 * @module
 */

/** The buffer of a connection, bytes: the longest answer head (status line and headers) read. */
export const READ_BUFFER_BYTES = 16 * 1024;

/** An answer that is not HTTP/1.1 as the client reads it; the message says how. */
export class MalformedAnswerError extends Error {
  /** An answer that broke the protocol as `message` says. */
  constructor(message: string) {
    super(message);
    this.name = "MalformedAnswerError";
  }
}

/** Decodes an answer's head, a character a byte (WHATWG's "latin1" is windows-1252). */
const _LATIN1 = new TextDecoder("latin1");

const CR = 13;
const LF = 10;

/** Reads a connection's bytes through one buffer. */
export class ConnectionReader {
  readonly #conn: Pick<Deno.Conn, "read">;
  readonly #buffer = new Uint8Array(READ_BUFFER_BYTES);
  /** The unread bytes are `#buffer[#start, #end)`. */
  #start = 0;
  #end = 0;
  /** Whether any byte arrived since {@linkcode ConnectionReader.markExchange}. */
  #hasReceived = false;

  /** A reader of `conn`. */
  constructor(conn: Pick<Deno.Conn, "read">) {
    this.#conn = conn;
  }

  /** Bytes received but not taken yet. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Whether any byte arrived since the last {@linkcode ConnectionReader.markExchange}. */
  get hasReceived(): boolean {
    return this.#hasReceived;
  }

  /** Starts a new exchange: {@linkcode ConnectionReader.hasReceived} is `false` again. */
  markExchange(): void {
    this.#hasReceived = false;
  }

  /**
   * Reads more bytes into the buffer, moving the unread ones to its start when it is full; `false`
   * at the end of the stream.
   *
   * @throws {MalformedAnswerError} when the unread bytes fill the whole buffer (`what` names them).
   */
  async fill(what: string): Promise<boolean> {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buffer.length) {
      if (this.#start === 0) {
        throw new MalformedAnswerError(`${what} is longer than ${READ_BUFFER_BYTES} bytes`);
      }
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    const read = await this.#conn.read(this.#buffer.subarray(this.#end));
    if (read === null) return false;
    this.#end += read;
    if (read > 0) this.#hasReceived = true;
    return true;
  }

  /**
   * Takes the bytes up to the first empty line (an answer's head), without it, as Latin-1 text;
   * `undefined` when the stream ended first (after no byte of it when `buffered` was 0).
   */
  async head(): Promise<string | undefined> {
    let scanned = 0; // bytes past the start already looked at: a fill may move the start
    for (;;) {
      for (let i = this.#start + Math.max(0, scanned - 3); i + 3 < this.#end; i++) {
        if (
          this.#buffer[i] === CR && this.#buffer[i + 1] === LF && this.#buffer[i + 2] === CR &&
          this.#buffer[i + 3] === LF
        ) {
          const text = _latin1(this.#buffer, this.#start, i);
          this.#start = i + 4;
          return text;
        }
      }
      scanned = this.#end - this.#start;
      if (!(await this.fill("The answer's head"))) return undefined;
    }
  }

  /** Takes one line (ended by CRLF or LF) without its end; `undefined` when the stream ended. */
  async line(what: string): Promise<string | undefined> {
    let scanned = 0; // bytes past the start already looked at: a fill may move the start
    for (;;) {
      const at = this.#buffer.subarray(this.#start + scanned, this.#end).indexOf(LF);
      if (at >= 0) {
        const lf = this.#start + scanned + at;
        const end = lf > this.#start && this.#buffer[lf - 1] === CR ? lf - 1 : lf;
        const text = _latin1(this.#buffer, this.#start, end);
        this.#start = lf + 1;
        return text;
      }
      scanned = this.#end - this.#start;
      if (!(await this.fill(what))) return undefined;
    }
  }

  /**
   * Copies at most `max` bytes into `into` at `offset` (reading more first when none are
   * buffered), no more than fit; returns how many, 0 at the end of the stream.
   */
  async take(max: number, into: Uint8Array, offset: number): Promise<number> {
    if (this.#start === this.#end && !(await this.fill("The body"))) return 0;
    const count = Math.min(max, this.#end - this.#start, into.length - offset);
    into.set(this.#buffer.subarray(this.#start, this.#start + count), offset);
    this.#start += count;
    return count;
  }
}

/** `bytes[start, end)` as Latin-1 text (an answer's head is bytes, not UTF-8). */
function _latin1(bytes: Uint8Array, start: number, end: number): string {
  return _LATIN1.decode(bytes.subarray(start, end));
}
