/**
 * The Flows endpoint's own overhead (`deno task bench`): the time to open a request (unwrap the
 * AES key with RSA-OAEP, decrypt and authenticate with AES-GCM, read the JSON) and to seal the
 * answer (AES-GCM with the flipped IV, base64), with no handler and no HTTP. Requests are made
 * beforehand as Meta makes them (`node:crypto`), each with its own AES key and IV. Prints p50,
 * p99 and the worst run against Meta's answer deadline.
 *
 * Usage: `deno run -A bench/flows.ts [--requests=2000]`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createCipheriv, generateKeyPairSync, publicEncrypt, randomBytes } from "node:crypto";
import { constants } from "node:crypto";
import { type EncryptedFlowRequest, openFlowRequest } from "../src/flows/crypto.ts";
import { importFlowsPrivateKey } from "../src/flows/keys.ts";
import { readFlowRequest } from "../src/flows/protocol.ts";

const REQUESTS = Number(Deno.args.find((a) => a.startsWith("--requests="))?.split("=")[1] ?? 2000);
/** Runs before measuring, for the JIT. */
const WARMUP = 200;
/** Meta's client waits this long for an answer before it shows an error. */
const META_TIMEOUT_MS = 10_000;

const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const key = await importFlowsPrivateKey({
  pem: String(privateKey.export({ type: "pkcs8", format: "pem" })),
});
/** A screen's submission of a typical size: a few fields. */
const clear = JSON.stringify({
  version: "3.0",
  action: "data_exchange",
  screen: "APPOINTMENT",
  flow_token: "booking:8f14e45f-ceea-467f-a0e6-2b3a4c5d6e7f",
  data: { slot: "10:30", name: "Ana Souza", email: "ana@example.com", notes: "x".repeat(200) },
});
const answer = { screen: "CONFIRM", data: { slot: "10:30", slots: ["09:00", "14:00", "16:30"] } };

function _metaRequest(): EncryptedFlowRequest {
  const aesKey = randomBytes(16);
  const iv = randomBytes(16);
  const cipher = createCipheriv("aes-128-gcm", aesKey, iv);
  const data = Buffer.concat([cipher.update(clear, "utf8"), cipher.final(), cipher.getAuthTag()]);
  const wrapped = publicEncrypt(
    { key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
    aesKey,
  );
  return {
    encrypted_flow_data: data.toString("base64"),
    encrypted_aes_key: wrapped.toString("base64"),
    initial_vector: iv.toString("base64"),
  };
}

const requests = Array.from({ length: WARMUP + REQUESTS }, _metaRequest);
const durations: number[] = [];
for (const [index, request] of requests.entries()) {
  const started = performance.now();
  const opened = await openFlowRequest(key, request);
  readFlowRequest(opened.text);
  await opened.seal(answer);
  if (index >= WARMUP) durations.push(performance.now() - started);
}
durations.sort((a, b) => a - b);
const at = (q: number): number =>
  durations[Math.min(durations.length - 1, Math.floor(q * durations.length))]!;
// deno-lint-ignore no-console
console.log(
  `Flows endpoint overhead (decrypt + read + encrypt, no handler), ${REQUESTS} requests: ` +
    `p50 ${at(0.5).toFixed(2)} ms, p99 ${at(0.99).toFixed(2)} ms, max ${
      durations.at(-1)!.toFixed(2)
    } ms; Meta waits ${META_TIMEOUT_MS} ms`,
);
