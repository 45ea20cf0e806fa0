/**
 * The encryption of WhatsApp Flows data exchange, as Meta specifies it, on WebCrypto:
 *
 * - the request's `encrypted_aes_key` is a 128-bit AES key wrapped with the business public key
 *   (RSA-OAEP, SHA-256 for both the hash and MGF1); the private key unwraps it;
 * - `encrypted_flow_data` is the request's JSON encrypted with that key by AES-GCM, with the
 *   16-byte tag at its end, and `initial_vector` is the IV (16 bytes);
 * - the answer is the response JSON encrypted with the same key by AES-GCM, with the IV's every
 *   byte flipped (bitwise NOT), tag appended, and sent as base64 text.
 *
 * Every failure to open a request is a {@linkcode FlowDecryptionError}: Meta's status for it (421)
 * makes the client fetch the public key again and retry once.
 *
 * @module
 */

/** The GCM tag length Meta uses, in bytes, appended to each ciphertext. */
export const GCM_TAG_BYTES = 16;

/** AES key lengths AES-GCM takes, in bytes; Meta sends 128-bit keys. */
const _AES_KEY_BYTES = [16, 24, 32];

const _encoder = new TextEncoder();
const _decoder = new TextDecoder("utf-8", { fatal: true });

/** The three base64 fields of a Flows request body. */
export interface EncryptedFlowRequest {
  encrypted_flow_data: string;
  encrypted_aes_key: string;
  initial_vector: string;
}

/** Raised when a request cannot be opened; the message says which part failed and why. */
export class FlowDecryptionError extends Error {
  override name = "FlowDecryptionError";
}

/** A request opened: its clear text, and what answering it needs. */
export interface OpenedFlowRequest {
  /** The request's JSON text. Never log it: it holds the user's answers and the flow token. */
  text: string;
  /** Encrypts `response` (serialised as JSON) for this request: base64 text for the body. */
  seal(response: unknown): Promise<string>;
}

/**
 * Opens a request: unwraps the AES key with `privateKey`, then decrypts and authenticates the
 * data.
 *
 * @throws {FlowDecryptionError} when a field is not base64, the key cannot be unwrapped (another
 * public key encrypted it), or the data does not authenticate (changed, cut, or another key)
 */
export async function openFlowRequest(
  privateKey: CryptoKey,
  request: EncryptedFlowRequest,
): Promise<OpenedFlowRequest> {
  const wrappedKey = _base64Field(request, "encrypted_aes_key");
  const iv = _base64Field(request, "initial_vector");
  const data = _base64Field(request, "encrypted_flow_data");
  if (iv.byteLength === 0) throw new FlowDecryptionError('"initial_vector" is empty');
  if (data.byteLength < GCM_TAG_BYTES) {
    throw new FlowDecryptionError(
      `"encrypted_flow_data" is ${data.byteLength} bytes, shorter than its ${GCM_TAG_BYTES}-byte tag`,
    );
  }
  let rawKey: Uint8Array<ArrayBuffer>;
  try {
    rawKey = new Uint8Array(
      await crypto.subtle.decrypt({ name: "RSA-OAEP" }, privateKey, wrappedKey),
    );
  } catch {
    throw new FlowDecryptionError(
      '"encrypted_aes_key" cannot be unwrapped with the configured private key: it was encrypted for another public key (register this key\'s public key, or the client refreshes it)',
    );
  }
  if (!_AES_KEY_BYTES.includes(rawKey.byteLength)) {
    throw new FlowDecryptionError(
      `"encrypted_aes_key" holds ${rawKey.byteLength} bytes, not an AES key`,
    );
  }
  const aesKey = await crypto.subtle.importKey("raw", rawKey, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
  let clear: ArrayBuffer;
  try {
    clear = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv, tagLength: GCM_TAG_BYTES * 8 },
      aesKey,
      data,
    );
  } catch {
    throw new FlowDecryptionError(
      '"encrypted_flow_data" does not authenticate: it was changed or cut, or encrypted with another key or IV',
    );
  }
  let text: string;
  try {
    text = _decoder.decode(clear);
  } catch {
    throw new FlowDecryptionError('"encrypted_flow_data" decrypts to text that is not UTF-8');
  }
  const flipped = iv.map((byte) => ~byte & 0xff);
  return {
    text,
    async seal(response) {
      const sealed = await crypto.subtle.encrypt(
        { name: "AES-GCM", iv: flipped, tagLength: GCM_TAG_BYTES * 8 },
        aesKey,
        _encoder.encode(JSON.stringify(response)),
      );
      return new Uint8Array(sealed).toBase64();
    },
  };
}

function _base64Field(
  request: EncryptedFlowRequest,
  field: keyof EncryptedFlowRequest,
): Uint8Array<ArrayBuffer> {
  try {
    return Uint8Array.fromBase64(request[field]);
  } catch {
    throw new FlowDecryptionError(`"${field}" is not base64`);
  }
}
