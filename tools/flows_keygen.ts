/**
 * `deno task flows-keygen`: makes the business key pair of WhatsApp Flows (2048-bit RSA, as Meta
 * requires), writes the private key to `./data/flows_private_key.pem` (readable by its owner only;
 * an existing file is never overwritten) and the public key beside it, and prints the public key
 * and the Graph API call that registers it for a business phone number.
 *
 * `--stdout` prints the private key instead of writing it, for a secret store
 * (`FLOWS_PRIVATE_KEY`). `--dir <dir>` writes elsewhere (the service reads `./data` only).
 *
 * @module
 */
import { generateKeyPairSync } from "node:crypto";
import { FLOWS_KEY_BITS } from "../src/flows/keys.ts";
import { DEFAULTS } from "../src/config.ts";

/** The files' names in the directory. */
const PRIVATE_KEY_FILE = "flows_private_key.pem";
const PUBLIC_KEY_FILE = "flows_public_key.pem";
/** The one directory the service's tasks and binary may read. */
const DEFAULT_DIR = "./data";

/** What {@linkcode generateFlowsKeys} makes. */
export interface FlowsKeys {
  /** PKCS#8 PEM, unencrypted. */
  privateKeyPem: string;
  /** SPKI PEM: what Meta's `business_public_key` takes. */
  publicKeyPem: string;
}

/** Makes a 2048-bit RSA key pair as PEM. */
export function generateFlowsKeys(): FlowsKeys {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: FLOWS_KEY_BITS });
  return {
    privateKeyPem: String(privateKey.export({ type: "pkcs8", format: "pem" })),
    publicKeyPem: String(publicKey.export({ type: "spki", format: "pem" })),
  };
}

/** The Graph API call that registers `publicKeyFile` for a phone number (`curl`). */
export function registrationCommand(publicKeyFile: string): string {
  return [
    `curl -X POST "${DEFAULTS.graphApiBaseUrl}/${DEFAULTS.graphApiVersion}/<PHONE_NUMBER_ID>/whatsapp_business_encryption" \\`,
    `  -H "Authorization: Bearer $WHATSAPP_TOKEN" \\`,
    `  --data-urlencode "business_public_key@${publicKeyFile}"`,
  ].join("\n");
}

if (import.meta.main) {
  const args = Deno.args;
  const isStdout = args.includes("--stdout");
  const dirIndex = args.indexOf("--dir");
  const dir = dirIndex === -1 ? DEFAULT_DIR : args[dirIndex + 1] ?? DEFAULT_DIR;
  const privatePath = `${dir}/${PRIVATE_KEY_FILE}`;
  const publicPath = `${dir}/${PUBLIC_KEY_FILE}`;
  const keys = generateFlowsKeys();
  // deno-lint-ignore no-console
  const print = (text: string): void => console.log(text);
  await Deno.mkdir(dir, { recursive: true });
  if (isStdout) {
    print("Private key: keep it secret, in FLOWS_PRIVATE_KEY (never in the repository):\n");
    print(keys.privateKeyPem);
  } else {
    try {
      // `createNew`: a key already registered with Meta is never replaced by accident.
      await Deno.writeTextFile(privatePath, keys.privateKeyPem, { createNew: true, mode: 0o600 });
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      print(`"${privatePath}" exists: move it away first, or pass --dir <another directory>`);
      Deno.exit(1);
    }
    print(`Private key written to "${privatePath}" (owner-only). Start the service with`);
    print(`FLOWS_PRIVATE_KEY_FILE=${privatePath}; keep the file out of the repository.\n`);
  }
  await Deno.writeTextFile(publicPath, keys.publicKeyPem);
  print(`Public key (also in "${publicPath}"):\n`);
  print(keys.publicKeyPem);
  print("Register it for each business phone number that sends the flow:\n");
  print(registrationCommand(publicPath));
  print('\nMeta answers {"success":true}. Check it with GET on the same path.');
}
