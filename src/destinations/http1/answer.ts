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
    const received: _Received = { bytes: _EMPTY, length: 0 };
    let body: BodyPrefix;
    try {
      body = await _readBody(reader, framing, received);
    } catch (error) {
      body = {
        bytes: received.bytes.subarray(0, received.length), // what arrived before
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

/** A body's bytes as they arrive: what a failure partway keeps. */
interface _Received {
  bytes: Uint8Array;
  /** How many of `bytes` arrived. */
  length: number;
}

/** Reads at most `MAX_BODY_READ_BYTES` of a body delimited by `framing` into `received`. */
async function _readBody(
  reader: ConnectionReader,
  framing: _Framing,
  received: _Received,
): Promise<BodyPrefix> {
  switch (framing.kind) {
    case "none":
      return { bytes: _EMPTY, isComplete: true };
    case "length": {
      received.bytes = new Uint8Array(Math.min(framing.length, MAX_BODY_READ_BYTES));
      if (!(await _readUpTo(reader, received, received.bytes.length))) {
        return {
          bytes: received.bytes.subarray(0, received.length),
          isComplete: false,
          failure:
            `The connection closed ${received.length} bytes into a body of ${framing.length}`,
        };
      }
      return { bytes: received.bytes, isComplete: framing.length <= MAX_BODY_READ_BYTES };
    }
    case "close": {
      received.bytes = new Uint8Array(MAX_BODY_READ_BYTES);
      // Complete when the stream ended before the cap; at the cap the rest is not needed.
      const isAtCap = await _readUpTo(reader, received, received.bytes.length);
      return { bytes: received.bytes.subarray(0, received.length), isComplete: !isAtCap };
    }
    case "chunked":
      received.bytes = new Uint8Array(MAX_BODY_READ_BYTES);
      return await _readChunked(reader, received);
  }
}

/** Reads into `received` until it holds `length` bytes; `false` when the stream ended first. */
async function _readUpTo(
  reader: ConnectionReader,
  received: _Received,
  length: number,
): Promise<boolean> {
  while (received.length < length) {
    const taken = await reader.take(length - received.length, received.bytes, received.length);
    if (taken === 0) return false;
    received.length += taken;
  }
  return true;
}

/** Reads a chunked body's data, at most `MAX_BODY_READ_BYTES` of it, and its trailers. */
async function _readChunked(reader: ConnectionReader, received: _Received): Promise<BodyPrefix> {
  for (;;) {
    const line = await reader.line("A chunk's size line");
    if (line === undefined) return _endedEarly(received);
    const digits = line.split(";", 1)[0]!.trim();
    if (!HEX_DIGITS.test(digits) || digits.length > MAX_CHUNK_SIZE_DIGITS) {
      throw new MalformedAnswerError("The answer's chunked body has a malformed chunk size");
    }
    const size = parseInt(digits, 16);
    if (size === 0) break;
    const room = received.bytes.length - received.length;
    if (!(await _readUpTo(reader, received, received.length + Math.min(size, room)))) {
      return _endedEarly(received);
    }
    if (size > room) return { bytes: received.bytes, isComplete: false }; // the cap: rest unneeded
    const end = await reader.line("A chunk's end");
    if (end === undefined) return _endedEarly(received);
    if (end !== "") {
      throw new MalformedAnswerError("The answer's chunked body has a chunk longer than its size");
    }
  }
  for (;;) {
    const trailer = await reader.line("A trailer line");
    if (trailer === undefined) return _endedEarly(received);
    if (trailer === "") {
      return { bytes: received.bytes.subarray(0, received.length), isComplete: true };
    }
  }
}

/** A chunked body whose connection closed before its last chunk. */
function _endedEarly(received: _Received): BodyPrefix {
  return {
    bytes: received.bytes.subarray(0, received.length),
    isComplete: false,
    failure: "The connection closed before the chunked body's end",
  };
}
