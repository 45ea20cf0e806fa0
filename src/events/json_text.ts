/**
 * The text of a delivery before it is a value: how deep it nests, checked without parsing, and
 * `JSON.parse` with an error that says where the text is wrong without quoting any of it (V8's
 * messages quote the body: `Unexpected token 'T', "TOPSECRET4"... is not valid JSON`).
 *
 * @module
 */

/**
 * Deepest nesting of arrays and objects accepted. Meta's payloads nest about 10 levels deep (an
 * interactive reply inside a message inside a change inside an entry); 64 leaves room for fields
 * Meta adds, while every recursive step after parsing (schema checks, `JSON.stringify`, Deno KV's
 * serialiser) stays far from the call stack's limit, which 10,000 levels exceed.
 */
export const MAX_JSON_DEPTH = 64;

/** A text that is not JSON; the message names the problem and its byte offset, never content. */
export class InvalidJsonError extends Error {
  /** Where the text stops being JSON, in UTF-8 bytes from its start, when V8 said. */
  readonly byteOffset: number | undefined;

  /** `problem` is a fixed phrase (`unexpected end of input`), never part of the text. */
  constructor(problem: string | undefined, byteOffset: number | undefined) {
    const where = byteOffset === undefined ? "" : ` (at byte ${byteOffset})`;
    super(`Body is not valid JSON${problem === undefined ? "" : `: ${problem}`}${where}`);
    this.name = "InvalidJsonError";
    this.byteOffset = byteOffset;
  }
}

/**
 * Whether `text` opens more than `maxDepth` arrays and objects inside one another, counting the
 * brackets outside strings. One pass, no allocation; on a text that is not JSON the answer is
 * only an estimate, and `JSON.parse` will refuse it anyway.
 */
export function nestsDeeperThan(text: string, maxDepth: number): boolean {
  let depth = 0;
  let isInString = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (isInString) {
      if (code === _BACKSLASH) i++; // the escaped character cannot end the string
      else if (code === _QUOTE) isInString = false;
    } else if (code === _QUOTE) {
      isInString = true;
    } else if (code === _OPEN_BRACKET || code === _OPEN_BRACE) {
      if (++depth > maxDepth) return true;
    } else if (code === _CLOSE_BRACKET || code === _CLOSE_BRACE) {
      depth--;
    }
  }
  return false;
}

/**
 * `JSON.parse(text)`, throwing {@linkcode InvalidJsonError} instead of V8's `SyntaxError`, whose
 * message may quote the text.
 */
export function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const message = error instanceof Error ? error.message : "";
    const problem = _PROBLEMS.find(([pattern]) => pattern.test(message))?.[1];
    const position = /\bat position (\d+)/.exec(message)?.[1];
    const byteOffset = position === undefined
      ? undefined
      : new TextEncoder().encode(text.slice(0, Number(position))).byteLength;
    throw new InvalidJsonError(problem, byteOffset);
  }
}

const _QUOTE = 0x22;
const _BACKSLASH = 0x5c;
const _OPEN_BRACKET = 0x5b;
const _CLOSE_BRACKET = 0x5d;
const _OPEN_BRACE = 0x7b;
const _CLOSE_BRACE = 0x7d;

/**
 * V8's `JSON.parse` messages, as fixed phrases: only these words reach a response or a log, so a
 * message V8 adds later, or one that quotes the text, never leaks it.
 */
const _PROBLEMS: readonly (readonly [RegExp, string])[] = [
  [/^Unexpected end of JSON input/, "unexpected end of input"],
  [/^Unexpected token/, "unexpected character"],
  [/^Unexpected non-whitespace character after JSON/, "unexpected text after the value"],
  [/^Unterminated string/, "unterminated string"],
  [/^Bad control character in string literal/, "control character in a string"],
  [/^Bad escaped character/, "bad escape in a string"],
  [/^Bad Unicode escape/, "bad escape in a string"],
  [/^Expected property name/, "expected a property name"],
  [/^Expected ',' or '}'/, "expected ',' or '}'"],
  [/^Expected ',' or '\]'/, "expected ',' or ']'"],
  [/^Expected ':'/, "expected ':'"],
  [/^Expected double-quoted property name/, "expected a property name"],
  [/^No number after minus sign/, "bad number"],
  [/^Exponent part is missing a number/, "bad number"],
  [/^Unterminated fractional number/, "bad number"],
];
