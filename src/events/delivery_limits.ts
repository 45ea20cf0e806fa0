/**
 * The limits on the work one delivery may cost: parts walked, array elements, nesting. A delivery
 * past one is not walked part by part but kept whole (see `parseDelivery`).
 *
 * @module
 */
import { MAX_JSON_DEPTH } from "./json_text.ts";

/**
 * Parts of one delivery walked one by one at most: entries, changes, contacts, messages and
 * statuses together. Meta batches at most 1000 updates per POST; ten times that leaves room for
 * their contacts and for batches larger than documented, and still records in about a second. A
 * delivery with more is kept whole as one `unknown` event instead of yielding more events than a
 * sane delivery ever does (100,000 empty entries fit in 3 MB).
 */
export const MAX_DELIVERY_PARTS = 10_000;

/**
 * Array elements, at any depth, in one delivery at most. Each can cost a schema check and a
 * validation issue (1.5 million of them fit in 3 MB); a real delivery of the largest size (a
 * `history` chunk of thousands of messages) holds far fewer. A delivery with more is kept whole
 * as one `unknown` event.
 */
export const MAX_DELIVERY_ARRAY_ELEMENTS = 50_000;

/** The reason {@linkcode overLimitReason} gives for a delivery nested deeper than the limit. */
export const TOO_DEEP_REASON = `Delivery nests deeper than ${MAX_JSON_DEPTH} levels`;

/**
 * Why a delivery is too large or too deep to walk part by part, or `undefined` when it is not.
 * Visits each array and object once, without recursion, and stops at the first limit passed.
 */
export function overLimitReason(payload: unknown): string | undefined {
  let elements = 0;
  // Containers still to read and their depths, as two stacks: no allocation per value.
  const pending: object[] = [];
  const depths: number[] = [];
  if (typeof payload === "object" && payload !== null) {
    pending.push(payload);
    depths.push(1);
  }
  for (let value = pending.pop(); value !== undefined; value = pending.pop()) {
    const depth = depths.pop() as number;
    if (depth > MAX_JSON_DEPTH) return TOO_DEEP_REASON;
    if (Array.isArray(value)) {
      elements += value.length;
      if (elements > MAX_DELIVERY_ARRAY_ELEMENTS) {
        return `Delivery has more than ${MAX_DELIVERY_ARRAY_ELEMENTS} array elements; kept whole`;
      }
      for (const member of value) {
        if (typeof member === "object" && member !== null) {
          pending.push(member);
          depths.push(depth + 1);
        }
      }
    } else {
      for (const key in value) {
        const member = (value as Record<string, unknown>)[key];
        if (typeof member === "object" && member !== null) {
          pending.push(member);
          depths.push(depth + 1);
        }
      }
    }
  }
  if (_partCount(payload) > MAX_DELIVERY_PARTS) {
    return `Delivery has more than ${MAX_DELIVERY_PARTS} entries, changes, contacts, messages ` +
      "and statuses; kept whole";
  }
  return undefined;
}

/** Entries, changes, contacts, messages and statuses, counted without reading them. */
function _partCount(payload: unknown): number {
  if (!_isRecord(payload) || !Array.isArray(payload.entry)) return 0;
  let parts = payload.entry.length;
  for (const entry of payload.entry) {
    if (!_isRecord(entry) || !Array.isArray(entry.changes)) continue;
    parts += entry.changes.length;
    for (const change of entry.changes) {
      const value = _isRecord(change) ? change.value : undefined;
      if (!_isRecord(value)) continue;
      for (const list of [value.contacts, value.messages, value.statuses]) {
        if (Array.isArray(list)) parts += list.length;
      }
    }
  }
  return parts;
}

function _isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
