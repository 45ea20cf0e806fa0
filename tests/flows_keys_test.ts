/**
 * The Flows private key from configuration: every PEM format Meta's instructions and `openssl`
 * make (PKCS#8, PKCS#1, encrypted with a passphrase either way), and one clear refusal for each
 * way a key can be unusable, naming the variable and never quoting the key.
 *
 * @module
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { ConfigError } from "../src/config.ts";
import { loadConfig } from "../src/config_env.ts";
import { FlowsKeyError, readFlowsKeyFile, readFlowsPrivateKey } from "../src/flows/keys.ts";
import { generateFlowsKeys, registrationCommand } from "../tools/flows_keygen.ts";
import { flowsKeyPair } from "./flows_support.ts";
import { TEST_SECRET, TEST_VERIFY_TOKEN } from "./support.ts";

const REQUIRED = { APP_SECRET: TEST_SECRET, VERIFY_TOKEN: TEST_VERIFY_TOKEN };

/** The refusal of `env`, as one line. */
function refusal(env: Record<string, string>, readFlowsKeyFile?: (path: string) => string): string {
  try {
    loadConfig({ ...REQUIRED, ...env }, readFlowsKeyFile ? { readFlowsKeyFile } : {});
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.message;
  }
  assert.fail("the configuration was accepted");
}

Deno.test("readFlowsPrivateKey() reads PKCS#8, PKCS#1 and both encrypted forms to the same key", () => {
  const { privateKey, privateKeyPem } = flowsKeyPair();
  const der = readFlowsPrivateKey({ pem: privateKeyPem });
  const forms = {
    pkcs1: String(privateKey.export({ type: "pkcs1", format: "pem" })),
    encryptedPkcs8: String(
      privateKey.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pw" }),
    ),
    // `openssl genrsa -des3 -traditional`: the PEM with Proc-Type and DEK-Info headers.
    encryptedPkcs1: String(
      privateKey.export({ type: "pkcs1", format: "pem", cipher: "des-ede3-cbc", passphrase: "pw" }),
    ),
  };
  assert.deepEqual(readFlowsPrivateKey({ pem: forms.pkcs1 }), der);
  assert.deepEqual(readFlowsPrivateKey({ pem: forms.encryptedPkcs8, passphrase: "pw" }), der);
  assert.deepEqual(readFlowsPrivateKey({ pem: forms.encryptedPkcs1, passphrase: "pw" }), der);
  // An env file's one-line value, "\n" written as two characters.
  assert.deepEqual(readFlowsPrivateKey({ pem: privateKeyPem.trim().replaceAll("\n", "\\n") }), der);
});

Deno.test("readFlowsPrivateKey() says what is wrong with a key that cannot serve Flows", () => {
  const { privateKey, privateKeyPem } = flowsKeyPair();
  const encrypted = String(
    privateKey.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pw" }),
  );
  const small = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey;
  const ec = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey;
  const body = privateKeyPem.split("\n");
  const cases: [string, string | undefined, RegExp][] = [
    ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", undefined, /^is not a PEM private key: expected a/],
    [
      [body[0], body[1], body.at(-2)].join("\n"),
      undefined,
      /^is not a readable PEM private key: its base64 body is damaged or cut short$/,
    ],
    [encrypted, undefined, /^is encrypted: set FLOWS_KEY_PASSPHRASE to its passphrase$/],
    [encrypted, "wrong", /^cannot be decrypted with FLOWS_KEY_PASSPHRASE: check the passphrase$/],
    [
      String(small.export({ type: "pkcs8", format: "pem" })),
      undefined,
      /^is a 1024-bit RSA key; Meta requires 2048 bits/,
    ],
    [String(ec.export({ type: "pkcs8", format: "pem" })), undefined, /^is an "ec" key;/],
  ];
  for (const [pem, passphrase, reason] of cases) {
    assert.throws(
      () => readFlowsPrivateKey({ pem, passphrase }),
      (error) => error instanceof FlowsKeyError && reason.test(error.message),
      String(reason),
    );
  }
});

Deno.test("loadConfig() refuses a malformed FLOWS_PRIVATE_KEY in one line that names it", () => {
  assert.equal(
    refusal({
      FLOWS_PRIVATE_KEY: "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----",
    }),
    "Invalid configuration: FLOWS_PRIVATE_KEY is not a readable PEM private key: its base64 body is damaged or cut short",
  );
  assert.equal(
    refusal({ FLOWS_KEY_PASSPHRASE: "pw" }),
    "Invalid configuration: FLOWS_KEY_PASSPHRASE is set but FLOWS_PRIVATE_KEY is not: set the key, or unset the passphrase",
  );
  assert.equal(
    refusal({ FLOWS_PATH: "/webhook/flows", FLOWS_PRIVATE_KEY: flowsKeyPair().privateKeyPem }),
    "Invalid configuration: FLOWS_PATH must not be one of the service's own paths (/webhook, /healthz, /readyz, /metrics, /admin, /console)",
  );
  // The key is never quoted.
  const pem = flowsKeyPair().privateKeyPem.replace("MII", "MI!");
  assert.doesNotMatch(refusal({ FLOWS_PRIVATE_KEY: pem }), /MI!|BEGIN/);
});

Deno.test("loadConfig() reads FLOWS_PRIVATE_KEY_FILE once and names the file in its refusals", () => {
  const { privateKeyPem } = flowsKeyPair();
  const reads: string[] = [];
  const { config } = loadConfig({ ...REQUIRED, FLOWS_PRIVATE_KEY_FILE: "./data/flows.pem" }, {
    readFlowsKeyFile: (path) => {
      reads.push(path);
      return privateKeyPem;
    },
  });
  assert.deepEqual(reads, ["./data/flows.pem"]);
  assert.equal(config.flowsPrivateKey, privateKeyPem.trim());
  assert.equal(config.flowsPath, "/flows");
  assert.equal(
    refusal({ FLOWS_PRIVATE_KEY_FILE: "./data/flows.pem" }, () => "nonsense"),
    'Invalid configuration: FLOWS_PRIVATE_KEY_FILE "./data/flows.pem" is not a PEM private key: expected a "-----BEGIN PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----" or "-----BEGIN ENCRYPTED PRIVATE KEY-----" block',
  );
  assert.equal(
    refusal({ FLOWS_PRIVATE_KEY_FILE: "./data/missing.pem" }, readFlowsKeyFile),
    'Invalid configuration: FLOWS_PRIVATE_KEY_FILE "./data/missing.pem" does not exist',
  );
  assert.equal(
    refusal({ FLOWS_PRIVATE_KEY_FILE: "./data/a.pem", FLOWS_PRIVATE_KEY: privateKeyPem }),
    "Invalid configuration: FLOWS_PRIVATE_KEY and FLOWS_PRIVATE_KEY_FILE are both set: give the key in one of them",
  );
});

Deno.test("flows-keygen makes a key the service reads and prints Meta's registration call", () => {
  const keys = generateFlowsKeys();
  assert.equal(readFlowsPrivateKey({ pem: keys.privateKeyPem }).byteLength > 1_000, true);
  assert.match(keys.publicKeyPem, /^-----BEGIN PUBLIC KEY-----\n/);
  assert.equal(
    registrationCommand("./data/flows_public_key.pem"),
    'curl -X POST "https://graph.facebook.com/v26.0/<PHONE_NUMBER_ID>/whatsapp_business_encryption" \\\n' +
      '  -H "Authorization: Bearer $WHATSAPP_TOKEN" \\\n' +
      '  --data-urlencode "business_public_key@./data/flows_public_key.pem"',
  );
});
