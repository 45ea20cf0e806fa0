/**
 * Event ids that stay the same when Meta retries a delivery, so that the inbox can deduplicate on
 * them. Each id starts with its event kind; hashed parts are the first 128 bits of a SHA-256 of a
 * canonical JSON text (keys sorted, no spaces), in hex.
 *
 * Formats:
 * - `message:<wamid>`
 * - `status:<wamid>:<status>:<unix seconds>`
 * - `change:<field>:<hash of [wabaId, field, entry time or null, value]>`
 * - `unknown:<hash of [wabaId or null, raw]>`
 *
 * @module
 */

import { createHash } from "node:crypto";

/** Hex characters kept from a SHA-256 digest: 128 bits, ample to tell deliveries apart. */
const HASH_HEX_CHARS = 32;

/**
 * Longest text (a `wamid`, a status value, a field name) put into an id as is; a longer one is
 * hashed, so that an id always fits in a Deno KV key (2048 bytes for the whole key).
 */
const MAX_ID_PART_CHARS = 256;

/** The id of an inbound message event. */
export function messageEventId(wamid: string): string {
  return `message:${_boundedIdPart(wamid)}`;
}

/**
 * The id of a status event: one message has several statuses (sent, delivered, read), and the
 * same status may repeat with another timestamp.
 */
export function statusEventId(wamid: string, status: string, timestampSeconds: number): string {
  return `status:${_boundedIdPart(wamid)}:${_boundedIdPart(status)}:${timestampSeconds}`;
}

/** What {@linkcode changeEventId} hashes besides the WABA id and the field. */
export interface ChangeEventIdOptions {
  /**
   * `entry.time` exactly as Meta sent it (Unix seconds, usually a number), or `undefined` when the
   * entry has none. Not normalised: a retry repeats it byte for byte.
   */
  entryTime: unknown;
  /** The change's `value`, as received. */
  value: unknown;
}

/**
 * The id of a change event. A change carries no id of its own, so its content and its entry's
 * `time` are the id: Meta's retries of a delivery repeat `entry.time` and keep the id, while the
 * same update sent again later (a template approved, paused, approved again) gets a new one.
 * A missing `entryTime` is hashed as `null`.
 */
export function changeEventId(
  wabaId: string,
  field: string,
  options: ChangeEventIdOptions,
): string {
  const { entryTime, value } = options;
  const hashed = hashCanonicalJson([wabaId, field, entryTime ?? null, value]);
  return `change:${_boundedIdPart(field)}:${hashed}`;
}

/** The id of an unknown event: a hash of what could not be read, and of its WABA when known. */
export function unknownEventId(raw: unknown, wabaId: string | undefined): string {
  return `unknown:${hashCanonicalJson([wabaId ?? null, raw])}`;
}

/** The first 128 bits, in hex, of the SHA-256 of the canonical JSON of `value`. */
export function hashCanonicalJson(value: unknown): string {
  return _sha256Hex(canonicalJson(value)).slice(0, HASH_HEX_CHARS);
}

/**
 * JSON text with object keys sorted (by UTF-16 code units) and no spaces, so that two payloads
 * that differ only in key order serialise alike. Never throws: values JSON cannot hold (undefined,
 * functions, symbols, non-finite numbers) become `null`, bigints become strings and a cycle
 * becomes `null`.
 *
 * Matches Python's `json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` for
 * what Meta sends (strings, integers up to 2^53, everyday decimals). It differs on numbers, which
 * are written as JavaScript prints them after `JSON.parse` (`1.0` as `1`, `1e16` in full, `1e-7`
 * not `1e-07`, `-0.0` as `0`, integers beyond 2^53 already rounded), on lone surrogates (escaped
 * here, unencodable there) and on keys beyond U+FFFF, sorted by UTF-16 code units here.
 */
export function canonicalJson(value: unknown): string {
  return _canonicalJson(value, new Set());
}

function _canonicalJson(value: unknown, ancestors: Set<object>): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
      return Number.isFinite(value) ? JSON.stringify(value) : "null";
    case "boolean":
      return value ? "true" : "false";
    case "bigint":
      return JSON.stringify(value.toString());
    case "object":
      break;
    default:
      return "null";
  }
  if (value === null || ancestors.has(value)) return "null";
  ancestors.add(value);
  let text: string;
  if (Array.isArray(value)) {
    text = `[${value.map((item) => _canonicalJson(item, ancestors)).join(",")}]`;
  } else {
    const record = value as Record<string, unknown>;
    const members: string[] = [];
    for (const key of Object.keys(record).sort()) {
      const member = record[key];
      if (member === undefined || typeof member === "function" || typeof member === "symbol") {
        continue; // JSON.stringify leaves these keys out too
      }
      members.push(`${JSON.stringify(key)}:${_canonicalJson(member, ancestors)}`);
    }
    text = `{${members.join(",")}}`;
  }
  ancestors.delete(value);
  return text;
}

function _boundedIdPart(text: string): string {
  return text.length <= MAX_ID_PART_CHARS
    ? text
    : `sha256-${_sha256Hex(text).slice(0, HASH_HEX_CHARS)}`;
}

function _sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
