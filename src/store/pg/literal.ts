/**
 * Values written into SQL text, for the statements sent in the simple query protocol (which takes
 * no parameters): dollar-quoted with a random tag that the values do not contain, so no value can
 * end the literal whatever it holds.
 *
 * @module
 */

/** Tags tried before giving up: a random tag inside a value is already a one-in-2^64 event. */
const MAX_TAG_ATTEMPTS = 8;

/**
 * A function that dollar-quotes each of `values` (and only them) with one tag none contains.
 *
 * @throws when no such tag was found (never in practice)
 */
export function dollarQuoter(values: readonly string[]): (value: string) => string {
  for (let attempt = 0; attempt < MAX_TAG_ATTEMPTS; attempt++) {
    const random = crypto.getRandomValues(new Uint32Array(2));
    const tag = `$wa${random[0]!.toString(36)}x${random[1]!.toString(36)}$`;
    if (values.every((value) => !value.includes(tag))) {
      return (value) => {
        if (!values.includes(value)) throw new TypeError("Cannot quote a value not checked");
        return `${tag}${value}${tag}`;
      };
    }
  }
  throw new Error("Cannot quote the values: every tag tried occurs in them");
}
