/**
 * How a refused setting's value is quoted in its reason: text cut short and kept on one line,
 * anything else named by its type. Shared by the configuration readers and the destinations'
 * declarations, whose reasons read alike.
 *
 * @module
 */

/** Quoted values in a refusal are cut to this many characters. */
const MAX_QUOTED_CHARS = 40;

/**
 * `value` for a refusal: text quoted (cut to `maxChars`, 40 unless said, and escaped so that it
 * stays on one line), anything else by its type. Never use it on a secret.
 */
export function describeValue(value: unknown, maxChars: number = MAX_QUOTED_CHARS): string {
  if (typeof value === "string") {
    const cut = value.length > maxChars ? `${value.slice(0, maxChars)}…` : value;
    return JSON.stringify(cut);
  }
  if (typeof value === "number" || typeof value === "boolean") return `"${value}"`;
  if (value === null) return "null";
  if (value === undefined) return "nothing";
  return Array.isArray(value) ? "a list" : `an ${typeof value}`;
}
