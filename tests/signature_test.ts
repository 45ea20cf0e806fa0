import assert from "node:assert/strict";
import { createSignatureVerifier, signBody } from "../src/webhook/signature.ts";

const encode = (text: string): Uint8Array<ArrayBuffer> => new TextEncoder().encode(text);
const body = encode('{"object":"whatsapp_business_account","entry":[]}');

Deno.test("signBody() matches an HMAC-SHA256 computed independently", async () => {
  // Reference value from: printf '%s' 'hello' | openssl dgst -sha256 -hmac 'key'
  assert.equal(
    await signBody("key", encode("hello")),
    "sha256=9307b3b915efb5171ff14d8cb55fbcc798c6c0ef1456d66ded1a6aa723a58b7b",
  );
});

Deno.test("verifySignature() accepts the signature of exactly these bytes", async () => {
  const verifier = await createSignatureVerifier(["secret"]);
  assert.deepEqual(await verifier.verify(await signBody("secret", body), body), { valid: true });
  const upper = "sha256=" + (await signBody("secret", body)).slice("sha256=".length).toUpperCase();
  assert.deepEqual(await verifier.verify(upper, body), { valid: true });
});

Deno.test("verifySignature() rejects a body changed after signing", async () => {
  const verifier = await createSignatureVerifier(["secret"]);
  const signature = await signBody("secret", body);
  const changed = encode('{"object":"whatsapp_business_account","entry":[] }');
  const check = await verifier.verify(signature, changed);
  assert.equal(check.valid, false);
  assert.equal(!check.valid && check.failure, "mismatch");
});

Deno.test("verifySignature() accepts every configured secret and no other", async () => {
  const verifier = await createSignatureVerifier(["old-secret", "new-secret"]);
  for (const secret of ["old-secret", "new-secret"]) {
    assert.deepEqual(await verifier.verify(await signBody(secret, body), body), { valid: true });
  }
  const other = await verifier.verify(await signBody("other-secret", body), body);
  assert.equal(!other.valid && other.failure, "mismatch");
});

Deno.test("verifySignature() names a missing or malformed header", async () => {
  const verifier = await createSignatureVerifier(["secret"]);
  const hex = (await signBody("secret", body)).slice("sha256=".length);
  const cases: [string | null, string][] = [
    [null, "missing"],
    [hex, "malformed"],
    [`sha1=${hex}`, "malformed"],
    [`sha256=${hex.slice(1)}`, "malformed"],
    [`sha256=${hex}00`, "malformed"],
    [`sha256=${hex.slice(1)}g`, "malformed"],
    ["", "malformed"],
  ];
  for (const [header, failure] of cases) {
    const check = await verifier.verify(header, body);
    assert.equal(!check.valid && check.failure, failure, `header ${header}`);
    assert.match(!check.valid ? check.reason : "", /^Cannot verify signature: header/);
  }
});

Deno.test("verifySignature() holds for Meta's escapes and raw UTF-8 without re-serialising", async () => {
  const verifier = await createSignatureVerifier(["secret"]);
  const bodies = [
    String.raw`{"text":{"body":"J'ai mang\u00e9 des p\u00e2tes"}}`,
    String.raw`{"text":{"body":"see https:\/\/example.com\/a"}}`,
    String.raw`{"text":{"body":"\ud83d\ude00 ok"}}`,
    `{"text":{"body":"J'ai mangé des pâtes 😀 / @"}}`,
  ];
  for (const text of bodies) {
    const bytes = encode(text);
    const signature = await signBody("secret", bytes);
    assert.deepEqual(await verifier.verify(signature, bytes), { valid: true });
    // Re-serialising changes the bytes, which is why only the raw bytes may be verified.
    const reserialised = encode(JSON.stringify(JSON.parse(text)));
    if (text.includes("\\")) {
      assert.equal((await verifier.verify(signature, reserialised)).valid, false);
    }
  }
});
