/**
 * Event ids that stay the same when Meta retries a delivery, so that the inbox can deduplicate on
 * them. Each id starts with its event kind; hashed parts are the first 128 bits of a SHA-256 of a
 * canonical JSON text (keys sorted, no spaces), in hex.
 *
 * Formats:
 * - `message:<wamid>`
 * - `status:<wamid>:<status>:<unix seconds>`
 * - `echo:<wamid>`, a message the business sent from the WhatsApp Business app
 * - `change:<field>:<hash of [wabaId, field, entry time or null, value]>`
 * - `unknown:<hash of [wabaId or null, raw]>`
 * - `unknown:<hash of the delivery's text>`, for a delivery kept whole because it is too large or
 *   too deep to walk
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
 * The id of an echo event: the `wamid` of the message the business sent from the WhatsApp
 * Business app (its own prefix, so it never meets an inbound message's id).
 */
export function echoEventId(wamid: string): string {
  return `echo:${_boundedIdPart(wamid)}`;
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

/**
 * The id of the one unknown event that keeps a whole delivery: a hash of its text as received,
 * which Meta's retries repeat byte for byte. Cheaper than {@linkcode unknownEventId} on a value
 * of a million elements, which is what such a delivery may hold.
 */
export function deliveryTextEventId(text: string): string {
  return `unknown:${_sha256Hex(text).slice(0, HASH_HEX_CHARS)}`;
}

/** The first 128 bits, in hex, of the SHA-256 of the canonical JSON of `value`. */
export function hashCanonicalJson(value: unknown): string {
  return _sha256Hex(canonicalJson(value)).slice(0, HASH_HEX_CHARS);
}

/**
 * JSON text with object keys sorted (by UTF-16 code units) and no spaces, so that two payloads
 * that differ only in key order serialise alike. Never throws: values JSON cannot hold (undefined,
 * functions, symbols, non-finite numbers) become `null`, bigints become strings and a cycle
 * becomes `null`. Iterative, so that no nesting depth can overflow the call stack.
 *
 * Matches Python's `json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` for
 * what Meta sends (strings, integers up to 2^53, everyday decimals). It differs on numbers, which
 * are written as JavaScript prints them after `JSON.parse` (`1.0` as `1`, `1e16` in full, `1e-7`
 * not `1e-07`, `-0.0` as `0`, integers beyond 2^53 already rounded), on lone surrogates (escaped
 * here, unencodable there) and on keys beyond U+FFFF, sorted by UTF-16 code units here.
 */
export function canonicalJson(value: unknown): string {
  let text = "";
  // The arrays and objects being written, innermost last; also the ancestors, to spot a cycle.
  const open: _OpenContainer[] = [];
  const ancestors = new Set<object>();
  let next: unknown = value;
  for (;;) {
    if (typeof next !== "object" || next === null) {
      text += _scalarJson(next);
    } else if (ancestors.has(next)) {
      text += "null";
    } else {
      ancestors.add(next);
      const isArray = Array.isArray(next);
      text += isArray ? "[" : "{";
      const keys = isArray ? undefined : _jsonKeys(next as Record<string, unknown>);
      open.push({ container: next, keys, index: 0 });
    }
    // Find the next value to write: the next member of the innermost open container, closing
    // the finished ones. Scalars of an array are written on the way, without a round trip.
    let hasNext = false;
    while (!hasNext && open.length > 0) {
      const current = open[open.length - 1] as _OpenContainer;
      if (current.keys === undefined) {
        const array = current.container as unknown[];
        while (current.index < array.length) {
          const member = array[current.index];
          if (current.index++ > 0) text += ",";
          if (typeof member === "object" && member !== null) {
            next = member;
            hasNext = true;
            break;
          }
          text += _scalarJson(member);
        }
        if (hasNext) break;
        text += "]";
      } else if (current.index < current.keys.length) {
        const key = current.keys[current.index] as string;
        text += `${current.index++ > 0 ? "," : ""}${JSON.stringify(key)}:`;
        next = (current.container as Record<string, unknown>)[key];
        hasNext = true;
        break;
      } else {
        text += "}";
      }
      ancestors.delete(current.container);
      open.pop();
    }
    if (!hasNext) return text;
  }
}

/** An array (`keys` undefined) or object being written by {@linkcode canonicalJson}. */
interface _OpenContainer {
  container: object;
  /** The object's keys to write, sorted. */
  keys: string[] | undefined;
  /** The next member to write. */
  index: number;
}

/** The keys JSON.stringify writes (not those of undefined, functions, symbols), sorted. */
function _jsonKeys(record: Record<string, unknown>): string[] {
  return Object.keys(record).sort().filter((key) => {
    const member = record[key];
    return member !== undefined && typeof member !== "function" && typeof member !== "symbol";
  });
}

/** The JSON text of a value that is not an object or an array. */
function _scalarJson(value: unknown): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
      return Number.isFinite(value) ? JSON.stringify(value) : "null";
    case "boolean":
      return value ? "true" : "false";
    case "bigint":
      return JSON.stringify(value.toString());
    default:
      return "null";
  }
}

function _boundedIdPart(text: string): string {
  return text.length <= MAX_ID_PART_CHARS
    ? text
    : `sha256-${_sha256Hex(text).slice(0, HASH_HEX_CHARS)}`;
}

function _sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
