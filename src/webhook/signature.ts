/**
 * `X-Hub-Signature-256`: `sha256=` and the hex HMAC-SHA256 of the raw body, keyed with the app
 * secret. Verified with WebCrypto (constant time) against every configured secret, so a secret can
 * be rotated without downtime.
 *
 * @module
 */

/** The header Meta signs deliveries with. */
export const SIGNATURE_HEADER = "X-Hub-Signature-256";

const _HEADER_FORMAT = /^sha256=([0-9a-fA-F]{64})$/;
const _encoder = new TextEncoder();

/** Why a signature was refused. */
export type SignatureFailure = "missing" | "malformed" | "mismatch";

/** The outcome of a check: valid, or the failure and a reason a person can act on. */
export type SignatureCheck =
  | { valid: true }
  | { valid: false; failure: SignatureFailure; reason: string };

/** Checks signatures against secrets imported once. */
export interface SignatureVerifier {
  /** Checks `header` (the raw header value, or `null`) against exactly these body bytes. */
  verify(header: string | null, body: Uint8Array<ArrayBuffer>): Promise<SignatureCheck>;
}

/** Imports each secret as an HMAC key once and returns a verifier that accepts any of them. */
export async function createSignatureVerifier(
  secrets: readonly string[],
): Promise<SignatureVerifier> {
  if (secrets.length === 0) throw new Error("Cannot verify signatures without an app secret");
  const keys = await Promise.all(secrets.map((secret) => _importKey(secret, ["verify"])));

  return {
    async verify(header, body) {
      if (header === null) {
        return _failure("missing", `header "${SIGNATURE_HEADER}" is missing`);
      }
      const hex = _HEADER_FORMAT.exec(header.trim())?.[1];
      if (!hex) {
        return _failure(
          "malformed",
          `header "${SIGNATURE_HEADER}" is not "sha256=" and 64 hex digits`,
        );
      }
      const signature = _hexToBytes(hex);
      // Every key is tried, even after a match, so timing does not reveal which secret matched.
      const results = await Promise.all(
        keys.map((key) => crypto.subtle.verify("HMAC", key, signature, body)),
      );
      if (results.includes(true)) return { valid: true };
      return _failure("mismatch", "signature does not match the body with any configured secret");
    },
  };
}

/** Signs bytes the way Meta does: returns the full header value `sha256=<hex>`. */
export async function signBody(secret: string, body: Uint8Array<ArrayBuffer>): Promise<string> {
  const key = await _importKey(secret, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, body));
  return `sha256=${Array.from(mac, (byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

function _importKey(secret: string, usages: KeyUsage[]): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    _encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    usages,
  );
}

function _hexToBytes(hex: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

function _failure(failure: SignatureFailure, detail: string): SignatureCheck {
  return { valid: false, failure, reason: `Cannot verify signature: ${detail}` };
}
