/**
 * Signs deliveries to HTTP destinations the Standard Webhooks way, so that a consumer verifies
 * them with the reference libraries (`standardwebhooks` for Node, Python, Go, Ruby, PHP, …).
 *
 * A secret is `whsec_` and the standard base64 (padded) of 24 to 64 random bytes. The signed
 * text is `${webhook-id}.${webhook-timestamp}.${body}` (UTF-8), the signature its HMAC-SHA256 in
 * standard base64 behind `v1,`. While a secret is rotated a destination holds several, and the
 * `webhook-signature` header carries one signature per secret, separated by spaces: a consumer
 * holding any one of them accepts the delivery.
 *
 * The HMACs are computed with `node:crypto` (OpenSSL), synchronously: WebCrypto's `sign` costs a
 * busy destination's every attempt about twice as much in Deno (its argument checks and an async
 * operation), and a delivery signs once per attempt per secret. Consumers verify with the
 * reference libraries' own implementations; the tests check the bytes against WebCrypto.
 *
 * @module
 */
import { createHmac } from "node:crypto";

/** Prefix of a symmetric Standard Webhooks secret. */
export const SIGNING_SECRET_PREFIX = "whsec_";

/** Fewest secret bytes: the Standard Webhooks minimum (192 bits). */
export const MIN_SIGNING_SECRET_BYTES = 24;

/** Most secret bytes: the Standard Webhooks maximum (512 bits). */
export const MAX_SIGNING_SECRET_BYTES = 64;

/**
 * Most secrets per destination: a rotation needs two (the new one and the old one); each secret
 * costs one HMAC per delivery and one signature in a header consumers must accept.
 */
export const MAX_SIGNING_SECRETS = 4;

/** Version tag of an HMAC-SHA256 signature in `webhook-signature`. */
const SIGNATURE_VERSION = "v1";

/**
 * Longest `webhook-id` accepted for signing: ours are 36 characters; the bound keeps a header
 * made elsewhere from growing without limit.
 */
const MAX_WEBHOOK_ID_CHARS = 256;

/** Padded standard base64, the form every reference library decodes alike. */
const STANDARD_BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Visible ASCII except `.`, which separates the parts of the signed text. */
const WEBHOOK_ID_PATTERN = /^[!-\-/-~]+$/;

/**
 * A signing secret that cannot be used. The message names the secret by its position only and
 * never quotes any part of it, so that it can be logged.
 */
export class SigningSecretError extends Error {
  override name = "SigningSecretError";

  /**
   * @param message What is wrong, in words a person can act on; never the secret.
   * @param index The secret's 0-based position in the list given, or `-1` for the list itself.
   */
  constructor(message: string, readonly index: number) {
    super(message);
  }
}

/** What a delivery attempt signs. */
export interface SignInput {
  /** The delivery's `webhook-id` (see `webhookId` in `payload.ts`); no `.` and no spaces. */
  id: string;
  /** When the attempt is made, in whole seconds since the Unix epoch: new on every attempt. */
  timestamp: number;
  /** The exact body sent, as text; signed as UTF-8. */
  body: string;
}

/** The headers of a signed delivery, header names in lower case. */
export interface SignedHeaders extends Record<string, string> {
  /** Always `application/json`. */
  "content-type": string;
  /** The id signed. */
  "webhook-id": string;
  /** The timestamp signed, in decimal seconds. */
  "webhook-timestamp": string;
  /** `v1,<base64>`, one per secret, separated by spaces. */
  "webhook-signature": string;
}

/** Signs deliveries to one destination with keys made once. */
export interface Signer {
  /** How many secrets sign each delivery (more than one during a rotation). */
  readonly secretCount: number;
  /**
   * The headers of a delivery of `input.body`, signed with every secret.
   *
   * @throws {RangeError} when `input.timestamp` is not whole non-negative seconds, or
   * `input.id` is empty, longer than 256 characters or holds a `.`, a space or a control character.
   */
  sign(input: SignInput): SignedHeaders;
}

/**
 * Parses one `whsec_<base64>` secret into its key bytes.
 *
 * @param index The secret's 0-based position, for the error message.
 * @param count How many secrets the list holds, for the error message.
 * @throws {SigningSecretError} naming the position and what is wrong, never the secret.
 */
export function parseSigningSecret(secret: string, index = 0, count = 1): Uint8Array<ArrayBuffer> {
  const where = `Cannot use signing secret ${index + 1} of ${count}`;
  if (!secret.startsWith(SIGNING_SECRET_PREFIX)) {
    const asymmetric = secret.startsWith("whsk_") || secret.startsWith("whpk_");
    const hint = asymmetric ? "; asymmetric (ed25519) keys are not supported" : "";
    throw new SigningSecretError(
      `${where}: it does not start with "${SIGNING_SECRET_PREFIX}"${hint}`,
      index,
    );
  }
  const encoded = secret.slice(SIGNING_SECRET_PREFIX.length);
  if (!STANDARD_BASE64_PATTERN.test(encoded)) {
    throw new SigningSecretError(
      `${where}: the part after "${SIGNING_SECRET_PREFIX}" is not padded standard base64`,
      index,
    );
  }
  let key: Uint8Array<ArrayBuffer>;
  try {
    key = Uint8Array.fromBase64(encoded, { lastChunkHandling: "strict" });
  } catch {
    // The pattern let it through but its last character carries stray bits: not canonical.
    throw new SigningSecretError(
      `${where}: the part after "${SIGNING_SECRET_PREFIX}" is not canonical base64`,
      index,
    );
  }
  if (key.length < MIN_SIGNING_SECRET_BYTES || key.length > MAX_SIGNING_SECRET_BYTES) {
    throw new SigningSecretError(
      `${where}: it holds ${key.length} bytes, not ${MIN_SIGNING_SECRET_BYTES} to ` +
        `${MAX_SIGNING_SECRET_BYTES}; generate one with ` +
        `"echo ${SIGNING_SECRET_PREFIX}$(openssl rand -base64 32)"`,
      index,
    );
  }
  return key;
}

/**
 * A {@linkcode Signer} for one destination: parses every secret once, so that a delivery only
 * computes HMACs. List the new secret first during a rotation; every secret signs every delivery.
 *
 * @throws {SigningSecretError} when the list is empty or longer than
 * {@linkcode MAX_SIGNING_SECRETS}, or a secret is malformed (see {@linkcode parseSigningSecret}).
 */
export function createSigner(secrets: readonly string[]): Signer {
  if (secrets.length === 0 || secrets.length > MAX_SIGNING_SECRETS) {
    throw new SigningSecretError(
      `Cannot sign deliveries with ${secrets.length} signing secrets: give 1 to ` +
        `${MAX_SIGNING_SECRETS} (2 during a rotation)`,
      -1,
    );
  }
  // The key bytes themselves: a `KeyObject` would be exported again on every HMAC (a fifth of it).
  const keys = secrets.map((secret, index) => parseSigningSecret(secret, index, secrets.length));
  return { secretCount: keys.length, sign: (input) => _sign(keys, input) };
}

function _sign(keys: readonly Uint8Array[], input: SignInput): SignedHeaders {
  const { id, timestamp, body } = input;
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new RangeError(`Cannot sign delivery: timestamp "${timestamp}" is not whole seconds`);
  }
  if (id.length > MAX_WEBHOOK_ID_CHARS || !WEBHOOK_ID_PATTERN.test(id)) {
    throw new RangeError(
      `Cannot sign delivery: webhook id is empty, longer than ${MAX_WEBHOOK_ID_CHARS} ` +
        `characters or holds a ".", a space or a control character`,
    );
  }
  const signed = `${id}.${timestamp}.${body}`;
  const signatures = keys.map((key) =>
    `${SIGNATURE_VERSION},${createHmac("sha256", key).update(signed, "utf8").digest("base64")}`
  );
  return {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": signatures.join(" "),
  };
}
