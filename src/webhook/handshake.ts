/**
 * Meta's verification handshake: `GET ?hub.mode=subscribe&hub.verify_token=T&hub.challenge=X`
 * answers 200 with `X` when `T` is our verify token.
 *
 * @module
 */
import { HttpError } from "../http/errors.ts";
import { timingSafeEqual } from "../http/secure_compare.ts";

/** Longer challenges are refused: Meta's are short numbers, and we echo the value back. */
const MAX_CHALLENGE_LENGTH = 1024;

/**
 * Answers the handshake.
 *
 * @throws {HttpError} 400 when a parameter is missing or `hub.mode` is not `subscribe`,
 *   403 when the verify token does not match (compared in constant time)
 */
export function answerHandshake(url: URL, verifyToken: string): Response {
  const mode = url.searchParams.get("hub.mode");
  const token = url.searchParams.get("hub.verify_token");
  const challenge = url.searchParams.get("hub.challenge");
  const missing = [
    ["hub.mode", mode],
    ["hub.verify_token", token],
    ["hub.challenge", challenge],
  ].filter(([, value]) => !value).map(([name]) => `"${name}"`);
  if (mode === null || token === null || challenge === null || missing.length > 0) {
    throw new HttpError(400, `Cannot verify webhook: parameter ${missing.join(", ")} is missing`);
  }
  if (mode !== "subscribe") {
    throw new HttpError(400, `Cannot verify webhook: "hub.mode" is "${mode}", not "subscribe"`);
  }
  if (challenge.length > MAX_CHALLENGE_LENGTH) {
    throw new HttpError(400, 'Cannot verify webhook: "hub.challenge" is too long');
  }
  if (!timingSafeEqual(token, verifyToken)) {
    throw new HttpError(403, 'Cannot verify webhook: "hub.verify_token" does not match');
  }
  return new Response(challenge, {
    headers: { "Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff" },
  });
}
