/**
 * Constant-time comparison of secrets (verify token, admin token).
 *
 * @module
 */

const _encoder = new TextEncoder();

/**
 * Whether `given` equals `expected`, taking the same time wherever they differ.
 *
 * The time depends on the length of `expected` only, so an attacker learns neither the position
 * of the first wrong character nor, beyond it, the secret's length.
 */
export function timingSafeEqual(given: string, expected: string): boolean {
  const a = _encoder.encode(given);
  const b = _encoder.encode(expected);
  let difference = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) {
    difference |= (a[i % Math.max(a.length, 1)] ?? 0) ^ (b[i] ?? 0);
  }
  return difference === 0;
}
