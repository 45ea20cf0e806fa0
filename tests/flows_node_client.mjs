/**
 * Meta's side of WhatsApp Flows data exchange, written apart from the service, for Node (its
 * OpenSSL-backed `crypto`, not WebCrypto): encrypts a request exactly as the WhatsApp client
 * does, signs the body like Meta, posts it, and decrypts the answer.
 *
 * - a fresh 128-bit AES key and a 16-byte IV; the request JSON encrypted with AES-128-GCM, the
 *   16-byte tag appended; the AES key encrypted with the business public key by RSA-OAEP with
 *   SHA-256; the three base64 in `encrypted_flow_data`, `encrypted_aes_key`, `initial_vector`;
 * - `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body with the app secret>`;
 * - the answer: base64 of AES-128-GCM with the same key and the IV's every byte flipped.
 *
 * Reads one JSON command on standard input and writes one JSON result on standard output:
 * `{ url, appSecret, publicKeyPem, request, tamper?, signature?, padBytes? }` ->
 * `{ status, contentType, text, answer? }` (`answer` is the decrypted JSON of a 200).
 * `tamper` is `ciphertext`, `truncated_tag`, `bad_base64` or `missing_field`; `signature` is
 * `missing` or `wrong`; `padBytes` adds a field of that many characters to the body.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import crypto from "node:crypto";
import http from "node:http";
import process from "node:process";

const command = JSON.parse(
  await new Promise((resolve) => {
    let text = "";
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (chunk) => (text += chunk));
    process.stdin.on("end", () => resolve(text));
  }),
);

const aesKey = crypto.randomBytes(16);
const iv = crypto.randomBytes(16);
const cipher = crypto.createCipheriv("aes-128-gcm", aesKey, iv);
const encrypted = Buffer.concat([
  cipher.update(JSON.stringify(command.request), "utf8"),
  cipher.final(),
  cipher.getAuthTag(),
]);
const wrappedKey = crypto.publicEncrypt({
  key: command.publicKeyPem,
  padding: crypto.constants.RSA_PKCS1_OAEP_PADDING,
  oaepHash: "sha256",
}, aesKey);

let flowData = encrypted;
if (command.tamper === "ciphertext") {
  flowData = Buffer.from(encrypted);
  flowData[0] ^= 0x01;
}
if (command.tamper === "truncated_tag") flowData = encrypted.subarray(0, encrypted.length - 4);

const body = {
  encrypted_flow_data: command.tamper === "bad_base64"
    ? "not*base64!"
    : flowData.toString("base64"),
  encrypted_aes_key: wrappedKey.toString("base64"),
  initial_vector: iv.toString("base64"),
};
if (command.tamper === "missing_field") delete body.initial_vector;
if (command.padBytes) body.padding = "x".repeat(command.padBytes);
const text = JSON.stringify(body);

const headers = { "Content-Type": "application/json" };
if (command.signature !== "missing") {
  const mac = crypto.createHmac("sha256", command.appSecret).update(text).digest("hex");
  headers["X-Hub-Signature-256"] = command.signature === "wrong"
    ? `sha256=${"0".repeat(64)}`
    : `sha256=${mac}`;
}

// node:http rather than fetch: undici sends a request answered 421 once more by itself.
const response = await new Promise((resolve, reject) => {
  const outgoing = http.request(command.url, { method: "POST", headers }, (incoming) => {
    const chunks = [];
    incoming.on("data", (chunk) => chunks.push(chunk));
    incoming.on("end", () => resolve({ incoming, text: Buffer.concat(chunks).toString("utf8") }));
    incoming.on("error", reject);
  });
  outgoing.on("error", reject);
  outgoing.end(text);
});
const answerText = response.text;
const result = {
  status: response.incoming.statusCode,
  contentType: response.incoming.headers["content-type"] ?? null,
  text: answerText,
};
if (result.status === 200) {
  const sealed = Buffer.from(answerText, "base64");
  const flipped = Buffer.from(iv.map((byte) => ~byte & 0xff));
  const decipher = crypto.createDecipheriv("aes-128-gcm", aesKey, flipped);
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  const clear = Buffer.concat([
    decipher.update(sealed.subarray(0, sealed.length - 16)),
    decipher.final(),
  ]);
  result.answer = JSON.parse(clear.toString("utf8"));
}
process.stdout.write(JSON.stringify(result));
