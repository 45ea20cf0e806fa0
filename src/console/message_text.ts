/**
 * Message text is personal data: the console shows an event with the text of its messages
 * replaced, and reveals the whole event only on request (a `<details>` the operator opens), or
 * never when `CONSOLE_HIDE_TEXT=on`.
 *
 * @module
 */

/** Keys whose string values carry what people wrote (bodies, captions, replies' titles). */
const _TEXT_KEYS = new Set(["body", "caption", "text", "title", "description", "payload"]);
/** What replaces a hidden text. */
export const HIDDEN_TEXT = "‹hidden›";
/** Nesting read at most: an event is parsed JSON, but an unknown one may be deep. */
const _MAX_DEPTH = 32;

/** `value` with every string under a text key replaced by {@linkcode HIDDEN_TEXT}. */
export function withoutMessageText(value: unknown, depth = 0): unknown {
  if (depth > _MAX_DEPTH) return HIDDEN_TEXT;
  if (Array.isArray(value)) return value.map((item) => withoutMessageText(item, depth + 1));
  if (value === null || typeof value !== "object") return value;
  const result: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    result[key] = _TEXT_KEYS.has(key) && typeof item === "string"
      ? HIDDEN_TEXT
      : withoutMessageText(item, depth + 1);
  }
  return result;
}
