/**
 * Support for the WhatsApp Flows tests: RSA key pairs made for the test run, and one exchange as
 * Meta makes it, by the Node client (`flows_node_client.mjs`, Node's own OpenSSL crypto).
 *
 * @module
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { TEST_SECRET } from "./support.ts";

/** A key pair as PEM: the business private key (PKCS#8) and its public key (SPKI). */
export interface FlowsKeyPair {
  privateKeyPem: string;
  publicKeyPem: string;
  /** The private key, to export in other formats. */
  privateKey: KeyObject;
}

const _pairs: FlowsKeyPair[] = [];

/**
 * The `index`th key pair of this test run (2048-bit RSA), made once: generating one takes a
 * tenth of a second or more.
 */
export function flowsKeyPair(index = 0): FlowsKeyPair {
  while (_pairs.length <= index) {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    _pairs.push({
      privateKey,
      privateKeyPem: String(privateKey.export({ type: "pkcs8", format: "pem" })),
      publicKeyPem: String(publicKey.export({ type: "spki", format: "pem" })),
    });
  }
  return _pairs[index]!;
}

/** What the Node client changes from Meta's request, to test the refusals. */
export type Tamper = "ciphertext" | "truncated_tag" | "bad_base64" | "missing_field";

/** One exchange for {@linkcode metaExchange}. */
export interface MetaExchange {
  /** The Flows endpoint's URL. */
  url: string;
  /** The request before encryption, as the WhatsApp client writes it. */
  request: Record<string, unknown>;
  /** The public key to encrypt with; the first test pair's by default. */
  publicKeyPem?: string;
  /** The app secret to sign with; the tests' by default. */
  appSecret?: string;
  tamper?: Tamper;
  signature?: "missing" | "wrong";
  /** Adds a field of this many characters to the body. */
  padBytes?: number;
}

/** What the Node client saw: the status, the raw answer, and the decrypted one of a 200. */
export interface MetaAnswer {
  status: number;
  contentType: string | null;
  text: string;
  answer?: Record<string, unknown>;
}

const _CLIENT = new URL("./flows_node_client.mjs", import.meta.url);

/** Runs one exchange through `node flows_node_client.mjs`; fails when the client fails. */
export async function metaExchange(exchange: MetaExchange): Promise<MetaAnswer> {
  const command = {
    appSecret: TEST_SECRET,
    publicKeyPem: flowsKeyPair().publicKeyPem,
    ...exchange,
  };
  const child = new Deno.Command("node", {
    args: [_CLIENT.pathname],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(command)));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const decoder = new TextDecoder();
  if (code !== 0) throw new Error(`The Node client failed:\n${decoder.decode(stderr)}`);
  return JSON.parse(decoder.decode(stdout));
}
