/**
 * The business's RSA private key for WhatsApp Flows: read from PEM text once at start, checked,
 * and imported into WebCrypto as an RSA-OAEP (SHA-256) key that unwraps each request's AES key.
 *
 * WebCrypto imports PKCS#8 only, and never an encrypted key; Meta's own instructions make an
 * encrypted one (`openssl genrsa -des3`). So the PEM is read by `node:crypto`
 * (`createPrivateKey`: PKCS#8, PKCS#1, encrypted PKCS#8 and the traditional encrypted PEM), and
 * exported as unencrypted PKCS#8 DER for WebCrypto. Nothing here reads a file at run time but
 * {@linkcode readFlowsKeyFile}, which `main.ts` calls once at start for `FLOWS_PRIVATE_KEY_FILE`.
 *
 * @module
 */
import { createPrivateKey } from "node:crypto";

/** Meta's documented key size: a business public key must be a 2048-bit RSA key. */
export const FLOWS_KEY_BITS = 2048;

/** A PEM private key is a few kilobytes; a file far larger is not one (or is the wrong file). */
const MAX_KEY_FILE_BYTES = 64 * 1024;

/** The one directory the tasks and the compiled binary may read. */
const READABLE_DIRECTORY = "./data";

/** The PEM headers of the private keys this reads. */
const _PEM_HEADER = /-----BEGIN (ENCRYPTED PRIVATE KEY|RSA PRIVATE KEY|PRIVATE KEY)-----/;

/** Raised when the key cannot be used; the message is the reason, after the setting's name. */
export class FlowsKeyError extends Error {
  override name = "FlowsKeyError";
}

/** What {@linkcode readFlowsPrivateKey} needs, and how its reasons name the settings. */
export interface FlowsKeyInput {
  /** The PEM text; `\n` written as two characters (an env file's one-line value) is accepted. */
  pem: string;
  /** The passphrase of an encrypted key. */
  passphrase?: string | undefined;
  /** How a reason names the passphrase setting; `FLOWS_KEY_PASSPHRASE` by default. */
  passphraseName?: string;
}

/**
 * Reads and checks the private key: a PEM RSA private key of at least 2048 bits, decrypted with
 * the passphrase when it is encrypted. Returns it as unencrypted PKCS#8 DER, for
 * {@linkcode importFlowsPrivateKey}.
 *
 * @throws {FlowsKeyError} saying what is wrong with the key (never quoting it)
 */
export function readFlowsPrivateKey(input: FlowsKeyInput): Uint8Array<ArrayBuffer> {
  const pem = normalizePem(input.pem);
  const passphraseName = input.passphraseName ?? "FLOWS_KEY_PASSPHRASE";
  const header = _PEM_HEADER.exec(pem)?.[1];
  if (header === undefined) {
    throw new FlowsKeyError(
      'is not a PEM private key: expected a "-----BEGIN PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----" or "-----BEGIN ENCRYPTED PRIVATE KEY-----" block',
    );
  }
  const isEncrypted = header === "ENCRYPTED PRIVATE KEY" || /Proc-Type:\s*4,ENCRYPTED/.test(pem);
  if (isEncrypted && !input.passphrase) {
    throw new FlowsKeyError(`is encrypted: set ${passphraseName} to its passphrase`);
  }
  let key;
  try {
    key = createPrivateKey(
      isEncrypted ? { key: pem, format: "pem", passphrase: input.passphrase } : { key: pem },
    );
  } catch {
    throw new FlowsKeyError(
      isEncrypted
        ? `cannot be decrypted with ${passphraseName}: check the passphrase`
        : "is not a readable PEM private key: its base64 body is damaged or cut short",
    );
  }
  if (key.asymmetricKeyType !== "rsa") {
    throw new FlowsKeyError(
      `is an "${key.asymmetricKeyType}" key; WhatsApp Flows need an RSA key (deno task flows-keygen makes one)`,
    );
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < FLOWS_KEY_BITS) {
    throw new FlowsKeyError(
      `is a ${bits}-bit RSA key; Meta requires ${FLOWS_KEY_BITS} bits (deno task flows-keygen makes one)`,
    );
  }
  return new Uint8Array(key.export({ type: "pkcs8", format: "der" }));
}

/**
 * Imports the key for unwrapping AES keys (RSA-OAEP with SHA-256, as Meta encrypts them). The
 * `CryptoKey` is not extractable.
 *
 * @throws {FlowsKeyError} as {@linkcode readFlowsPrivateKey} does
 */
export function importFlowsPrivateKey(input: FlowsKeyInput): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "pkcs8",
    readFlowsPrivateKey(input),
    { name: "RSA-OAEP", hash: "SHA-256" },
    false,
    ["decrypt"],
  );
}

/**
 * PEM text as `node:crypto` reads it: an env file's one-line value with `\n` written as two
 * characters gets real line breaks (only when it has none of its own), and spaces around are cut.
 */
export function normalizePem(text: string): string {
  const trimmed = text.trim();
  return trimmed.includes("\n") ? trimmed : trimmed.replaceAll("\\n", "\n");
}

/**
 * Reads the file of `FLOWS_PRIVATE_KEY_FILE` (for `main.ts`, once at start), at most
 * {@linkcode MAX_KEY_FILE_BYTES}. The tasks and the compiled binary may read `./data` only: a file
 * elsewhere gets a reason that says so.
 *
 * @throws {FlowsKeyError} saying why the file cannot be read
 */
export function readFlowsKeyFile(path: string): string {
  try {
    const info = Deno.statSync(path);
    if (info.isDirectory) throw new FlowsKeyError("is a directory: name the PEM file");
    if (info.size > MAX_KEY_FILE_BYTES) {
      throw new FlowsKeyError(
        `is ${info.size} bytes, larger than any PEM private key (at most ${MAX_KEY_FILE_BYTES})`,
      );
    }
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new FlowsKeyError(flowsKeyFileFailureReason(error));
  }
}

/** Why the key file could not be read, after its name. */
export function flowsKeyFileFailureReason(error: unknown): string {
  if (error instanceof FlowsKeyError) return error.message;
  if (error instanceof Deno.errors.NotCapable) {
    return `is outside the directories this process may read (the tasks and the compiled binary allow "${READABLE_DIRECTORY}" only): move the file into it, such as "${READABLE_DIRECTORY}/flows_private_key.pem", or give the PEM text in FLOWS_PRIVATE_KEY`;
  }
  if (error instanceof Deno.errors.NotFound) return "does not exist";
  const message = error instanceof Error ? error.message : String(error);
  return `cannot be read: ${message}`;
}
