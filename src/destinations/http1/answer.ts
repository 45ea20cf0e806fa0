/**
 * Reading an HTTP/1.1 answer off a connection (RFC 9112): the status line and headers, interim
 * 1xx answers skipped, then at most `MAX_BODY_READ_BYTES` of the body as its framing says
 * (`Content-Length`, chunked, or until the connection closes), and whether the connection can
 * carry the next request: only when the body was read to its end, nothing followed it, and
 * neither side asked to close.
 *
 * @module
 */
import { describeError } from "../../graph/transport_errors.ts";
import { type Answer, type BodyPrefix, MAX_BODY_READ_BYTES } from "../transport.ts";
import { type ConnectionReader, MalformedAnswerError } from "./reader.ts";

/** An answer read, and whether its connection may carry another request. */
export interface ReadAnswer {
  answer: Answer;
  isReusable: boolean;
}

/** The connection ended before an answer's head was whole. */
export class EndedBeforeAnswerError extends Error {
  /** The stream ended before the answer. */
  constructor() {
    super("The connection closed before an answer arrived");
    this.name = "EndedBeforeAnswerError";
  }
}

/** Interim (1xx) answers skipped before the final one at most. */
const MAX_INTERIM_ANSWERS = 8;

/** Hexadecimal digits of a chunk's size at most: 4 GiB, far beyond anything read. */
const MAX_CHUNK_SIZE_DIGITS = 8;

const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: |$)/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const DIGITS = /^\d{1,15}$/;
const HEX_DIGITS = /^[0-9A-Fa-f]+$/;

const _EMPTY = new Uint8Array(0);

/** How a body is delimited. */
type _Framing =
  | { kind: "none" }
  | { kind: "length"; length: number }
  | { kind: "chunked" }
  | { kind: "close" };

/**
 * Reads the answer to the request just written. After the status line, a failure or an abort of
 * `signal` (which the caller makes close the connection) ends the body's reading: the answer
 * comes back unfinished, with the failure named.
 *
 * @throws {EndedBeforeAnswerError} when the connection ends before the answer's head.
 * @throws {MalformedAnswerError} when the answer is not HTTP/1.1.
 */
export async function readAnswer(
  reader: ConnectionReader,
  signal: AbortSignal,
): Promise<ReadAnswer> {
  for (let interim = 0;; interim++) {
    const head = await reader.head();
    if (head === undefined) throw new EndedBeforeAnswerError();
    const { status, minor, headers } = _parseHead(head);
    if (status >= 100 && status < 200) {
      if (status === 101) throw new MalformedAnswerError("The answer switched protocols (101)");
      if (interim === MAX_INTERIM_ANSWERS) {
        throw new MalformedAnswerError(`More than ${MAX_INTERIM_ANSWERS} interim (1xx) answers`);
      }
      continue;
    }
    const framing = _framing(status, headers);
    let body: BodyPrefix;
    try {
      body = await _readBody(reader, framing);
    } catch (error) {
      body = {
        bytes: _EMPTY,
        isComplete: false,
        ...(signal.aborted ? {} : { failure: describeError(error) }),
      };
    }
    const connection = headers.get("connection")?.toLowerCase() ?? "";
    const isKeptAlive = minor === "1"
      ? !/\bclose\b/.test(connection)
      : /\bkeep-alive\b/.test(connection);
    const isReusable = body.isComplete && framing.kind !== "close" && isKeptAlive &&
      reader.buffered === 0 && !signal.aborted;
    return {
      answer: { status, header: (name) => headers.get(name.toLowerCase()) ?? null, body },
      isReusable,
    };
  }
}

/** The status, the minor version and the headers (names lower case, repeats joined) of a head. */
function _parseHead(head: string): { status: number; minor: string; headers: Map<string, string> } {
  const lines = head.split("\r\n");
  const match = STATUS_LINE.exec(lines[0]!);
  if (match === null) {
    throw new MalformedAnswerError(`The answer does not start with an HTTP/1.x status line`);
  }
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    if (!TOKEN.test(name)) throw new MalformedAnswerError("The answer has a malformed header line");
    const key = name.toLowerCase();
    const value = line.slice(colon + 1).trim();
    const before = headers.get(key);
    headers.set(key, before === undefined ? value : `${before}, ${value}`);
  }
  return { status: Number(match[2]), minor: match[1]!, headers };
}

/** How the body of an answer with `status` and `headers` is delimited (RFC 9112, 6.3). */
function _framing(status: number, headers: Map<string, string>): _Framing {
  if (status === 204 || status === 304) return { kind: "none" };
  const coding = headers.get("transfer-encoding");
  if (coding !== undefined) {
    const last = coding.split(",").at(-1)!.trim().toLowerCase();
    return last === "chunked" ? { kind: "chunked" } : { kind: "close" };
  }
  const declared = headers.get("content-length");
  if (declared === undefined) return { kind: "close" };
  const values = new Set(declared.split(",").map((value) => value.trim()));
  const [length] = values;
  if (values.size !== 1 || !DIGITS.test(length!)) {
    throw new MalformedAnswerError("The answer's Content-Length is not one number");
  }
  return Number(length) === 0 ? { kind: "none" } : { kind: "length", length: Number(length) };
}

/** Reads at most `MAX_BODY_READ_BYTES` of a body delimited by `framing`. */
async function _readBody(reader: ConnectionReader, framing: _Framing): Promise<BodyPrefix> {
  switch (framing.kind) {
    case "none":
      return { bytes: _EMPTY, isComplete: true };
    case "length": {
      const bytes = new Uint8Array(Math.min(framing.length, MAX_BODY_READ_BYTES));
      const read = await _readInto(reader, bytes, 0, bytes.length);
      if (read < bytes.length) {
        return {
          bytes: bytes.subarray(0, read),
          isComplete: false,
          failure: `The connection closed ${read} bytes into a body of ${framing.length}`,
        };
      }
      return { bytes, isComplete: framing.length <= MAX_BODY_READ_BYTES };
    }
    case "close": {
      const bytes = new Uint8Array(MAX_BODY_READ_BYTES);
      const read = await _readInto(reader, bytes, 0, bytes.length);
      // Complete when the stream ended before the cap; at the cap the rest is not needed.
      return { bytes: bytes.subarray(0, read), isComplete: read < bytes.length };
    }
    case "chunked":
      return await _readChunked(reader);
  }
}

/** Copies up to `count` bytes into `bytes` at `offset`; fewer when the stream ends. */
async function _readInto(
  reader: ConnectionReader,
  bytes: Uint8Array,
  offset: number,
  count: number,
): Promise<number> {
  let read = 0;
  while (read < count) {
    const taken = await reader.take(count - read, bytes, offset + read);
    if (taken === 0) break;
    read += taken;
  }
  return read;
}

/** Reads a chunked body's data, at most `MAX_BODY_READ_BYTES` of it, and its trailers. */
async function _readChunked(reader: ConnectionReader): Promise<BodyPrefix> {
  const bytes = new Uint8Array(MAX_BODY_READ_BYTES);
  let total = 0;
  for (;;) {
    const line = await reader.line("A chunk's size line");
    if (line === undefined) return _endedEarly(bytes, total);
    const digits = line.split(";", 1)[0]!.trim();
    if (!HEX_DIGITS.test(digits) || digits.length > MAX_CHUNK_SIZE_DIGITS) {
      throw new MalformedAnswerError("The answer's chunked body has a malformed chunk size");
    }
    const size = parseInt(digits, 16);
    if (size === 0) break;
    const room = bytes.length - total;
    const read = await _readInto(reader, bytes, total, Math.min(size, room));
    total += read;
    if (read < Math.min(size, room)) return _endedEarly(bytes, total);
    if (size > room) return { bytes, isComplete: false }; // the cap: the rest is not needed
    const end = await reader.line("A chunk's end");
    if (end === undefined) return _endedEarly(bytes, total);
    if (end !== "") {
      throw new MalformedAnswerError("The answer's chunked body has a chunk longer than its size");
    }
  }
  for (;;) {
    const trailer = await reader.line("A trailer line");
    if (trailer === undefined) return _endedEarly(bytes, total);
    if (trailer === "") return { bytes: bytes.subarray(0, total), isComplete: true };
  }
}

/** A chunked body whose connection closed before its last chunk. */
function _endedEarly(bytes: Uint8Array, total: number): BodyPrefix {
  return {
    bytes: bytes.subarray(0, total),
    isComplete: false,
    failure: "The connection closed before the chunked body's end",
  };
}
