/**
 * Checking media bytes as they stream by: counted against the size cap, hashed with SHA-256 and
 * compared with the `sha256` Meta sent. WebCrypto has no streaming digest, so the hash is
 * `node:crypto`'s, updated chunk by chunk: a 100 MB file is never held whole.
 *
 * Meta writes `sha256` as hex in some payloads and as base64 in others (reference §5.2, and its
 * media endpoint's examples); both are accepted, base64 in its URL-safe form too.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** The media is larger than the cap: nothing past the cap was kept. */
export class MediaTooLargeError extends Error {
  override readonly name = "MediaTooLargeError";
}

/** The bytes do not hash to the `sha256` Meta sent. */
export class MediaHashMismatchError extends Error {
  override readonly name = "MediaHashMismatchError";
}

/** What {@linkcode verifyingStream} checks. */
export interface VerifyOptions {
  /** The media's id, for the reasons. */
  id: string;
  /** More bytes than this fail the stream with {@linkcode MediaTooLargeError}. */
  maxBytes: number;
  /** The name of the cap's setting, for the reasons (`MEDIA_MAX_BYTES`). */
  capName: string;
  /** The SHA-256 Meta sent, hex or base64; the stream fails at its end when it differs. */
  sha256: string;
}

/**
 * A pass-through stream that fails with {@linkcode MediaTooLargeError} as soon as more than
 * `maxBytes` went by, and at its end with {@linkcode MediaHashMismatchError} when the bytes do
 * not hash to `sha256`. A store fed through it keeps nothing that failed either check.
 */
export function verifyingStream(options: VerifyOptions): TransformStream<Uint8Array, Uint8Array> {
  const hash = createHash("sha256");
  let size = 0;
  return new TransformStream({
    transform(chunk, controller) {
      size += chunk.byteLength;
      if (size > options.maxBytes) {
        throw new MediaTooLargeError(
          `Cannot store media "${options.id}": it is larger than ${options.capName} (${options.maxBytes} bytes); raise ${options.capName} to keep it`,
        );
      }
      hash.update(chunk);
      controller.enqueue(chunk);
    },
    flush() {
      const digest = hash.digest();
      if (!sha256Matches(options.sha256, digest)) {
        throw new MediaHashMismatchError(
          `Cannot store media "${options.id}": its bytes hash to "${
            digest.toString("hex")
          }", not to the sha256 "${options.sha256.slice(0, 100)}" the webhook gave`,
        );
      }
    },
  });
}

/** Whether `expected` (hex, or base64 standard or URL-safe, padded or not) is `digest`. */
export function sha256Matches(expected: string, digest: Uint8Array): boolean {
  const text = expected.trim();
  const bytes = /^[0-9a-fA-F]{64}$/.test(text)
    ? Uint8Array.from(text.match(/../g)!, (pair) => parseInt(pair, 16))
    : _fromBase64(text);
  return bytes !== undefined && bytes.length === digest.length &&
    bytes.every((byte, i) => byte === digest[i]);
}

function _fromBase64(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(text)) return undefined;
  const standard = text.replaceAll("-", "+").replaceAll("_", "/").replace(/=*$/, "=");
  try {
    return Uint8Array.from(atob(standard), (char) => char.charCodeAt(0));
  } catch {
    return undefined;
  }
}
