import assert from "node:assert/strict";
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import {
  deliveryBody,
  EVENT_TYPES,
  eventTypeOf,
  MAX_EVENT_TYPE_CHARS,
  webhookId,
} from "../src/destinations/payload.ts";
import {
  createSigner,
  MAX_SIGNING_SECRETS,
  parseSigningSecret,
  SigningSecretError,
} from "../src/destinations/signing.ts";
import { type MessageEvent, parseDelivery, type WebhookEvent } from "../src/events/events.ts";
import {
  firstFixtureEvent,
  FIXTURES,
  readFixtureBytes,
  textMessageEvent,
} from "./fixtures/catalog.ts";

/** `whsec_` and the base64 of `byteCount` bytes counting from `start`. */
function testSecret(byteCount: number, start = 0): string {
  const bytes = Uint8Array.from({ length: byteCount }, (_, i) => (start + i * 7) % 256);
  return `whsec_${bytes.toBase64()}`;
}

/** The new and the old secret of a rotation, and one the destination does not hold. */
const NEW_SECRET = testSecret(32, 1);
const OLD_SECRET = testSecret(24, 100);
const OTHER_SECRET = testSecret(32, 200);

/** 9 January 2026, 12:00:00.123 UTC. */
const RECEIVED_AT_MS = Date.UTC(2026, 0, 9, 12, 0, 0, 123);

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Every event of every fixture, with the fixture's name. */
async function allFixtureEvents(): Promise<{ fixture: string; event: WebhookEvent }[]> {
  const all: { fixture: string; event: WebhookEvent }[] = [];
  for (const fixture of FIXTURES) {
    const text = new TextDecoder().decode(await readFixtureBytes(fixture));
    for (const event of parseDelivery(JSON.parse(text)).events) {
      all.push({ fixture: fixture.name, event });
    }
  }
  return all;
}

/** Bodies to sign: ASCII, accents/emoji/CJK from a fixture, and about 1 MB of mixed text. */
function samplePayloads(): { label: string; body: string }[] {
  const nonAscii = firstFixtureEvent("non_ascii_text", "message");
  const large = textMessageEvent("wamid.LARGE", "é😀 x\u2028".repeat(200_000));
  return [
    { label: "ASCII", body: deliveryBody(firstFixtureEvent("message_text", "message"), 0) },
    { label: "non-ASCII", body: deliveryBody(nonAscii, RECEIVED_AT_MS) },
    { label: "large", body: deliveryBody(large, RECEIVED_AT_MS) },
  ];
}

// --- payload.ts: event types --------------------------------------------------------------------

Deno.test("eventTypeOf() names every fixture event by the documented scheme, bounded", async () => {
  const seen = new Set<string>();
  for (const { fixture, event } of await allFixtureEvents()) {
    const type = eventTypeOf(event);
    const where = `fixture "${fixture}", event "${event.id}"`;
    assert.ok(type.length <= MAX_EVENT_TYPE_CHARS, `${where}: "${type}" too long`);
    assert.match(type, /^whatsapp(\.[a-z0-9_]+){1,2}$/, where);
    assert.ok(EVENT_TYPES.includes(type), `${where}: "${type}" is not in EVENT_TYPES`);
    let expected: string;
    if (event.kind === "message") {
      const type = event.message.type;
      expected = `whatsapp.message.${type}`;
    } else if (event.kind === "status") {
      const value = event.status.status;
      const known = ["sent", "delivered", "read", "played", "failed"].includes(value);
      expected = `whatsapp.status.${known ? value : "unknown"}`;
    } else if (event.kind === "change") {
      expected = `whatsapp.change.${event.field}`;
    } else if (event.kind === "echo") {
      expected = `whatsapp.echo.${event.field}`;
    } else {
      expected = "whatsapp.unknown";
    }
    assert.equal(type, expected, where);
    seen.add(type);
  }
  // The fixtures reach every family, including each family's `unknown`.
  for (
    const type of [
      "whatsapp.message.text",
      "whatsapp.message.interactive",
      "whatsapp.message.unknown",
      "whatsapp.status.delivered",
      "whatsapp.status.failed",
      "whatsapp.status.unknown",
      "whatsapp.change.account_update",
      "whatsapp.change.message_template_status_update",
      "whatsapp.change.messages",
      "whatsapp.change.unknown",
      "whatsapp.unknown",
    ]
  ) assert.ok(seen.has(type), `no fixture yields "${type}"`);
});

Deno.test("eventTypeOf() names a value outside the known lists unknown, never from its text", () => {
  const text = firstFixtureEvent("message_text", "message");
  const status = firstFixtureEvent("status_delivered", "status");
  const change = firstFixtureEvent("field_account_update", "change");
  const long = "x".repeat(10_000);
  const cases: [WebhookEvent, string][] = [
    // As if read back from a store written by another version: the types lie.
    [_withMessageType(text, `New.Type ${long}`), "message"],
    [_withMessageType(text, "__proto__"), "message"],
    [{ ...status, status: { ...status.status, status: `seen.${long}` } }, "status"],
    [{ ...change, field: "toString" } as unknown as WebhookEvent, "change"],
  ];
  for (const [event, family] of cases) {
    assert.equal(eventTypeOf(event), `whatsapp.${family}.unknown`);
  }
});

/** `event` with a message type the union does not allow, as a store could hand it back. */
function _withMessageType(event: MessageEvent, type: string): WebhookEvent {
  return { ...event, message: { ...event.message, type } } as unknown as WebhookEvent;
}

Deno.test("EVENT_TYPES lists distinct types, each bounded and in [a-z0-9_] segments", () => {
  assert.equal(new Set(EVENT_TYPES).size, EVENT_TYPES.length);
  for (const type of EVENT_TYPES) {
    assert.ok(type.length <= MAX_EVENT_TYPE_CHARS, type);
    assert.match(type, /^whatsapp(\.[a-z0-9_]+){1,2}$/);
  }
  assert.ok(EVENT_TYPES.includes("whatsapp.change.message_template_components_update"));
  assert.ok(EVENT_TYPES.includes("whatsapp.status.played"));
});

// --- payload.ts: body and webhook id ------------------------------------------------------------

Deno.test("deliveryBody() is minified { type, timestamp, data } with the time received", () => {
  const event = firstFixtureEvent("status_delivered", "status");
  const body = deliveryBody(event, RECEIVED_AT_MS);
  assert.equal(
    body,
    `{"type":"whatsapp.status.delivered","timestamp":"2026-01-09T12:00:00.123Z",` +
      `"data":${JSON.stringify(event)}}`,
  );
  assert.deepEqual(JSON.parse(body).data, event);
  assert.equal(deliveryBody(event, RECEIVED_AT_MS), body, "the same bytes on every attempt");
  assert.throws(() => deliveryBody(event, Number.NaN), RangeError);
});

Deno.test("webhookId() matches an id computed independently and is stable", () => {
  // Reference values from Python: "msg_" + base64.urlsafe_b64encode(hashlib.sha256(json.dumps(
  // [destination, event_id], separators=(",", ":"), ensure_ascii=False).encode()).digest())
  // .decode()[:32]
  const eventId = "message:wamid.HBgNNTUxMTk5OTk5MDAwMBUCABIYTEXT01AA==";
  assert.equal(webhookId("crm", eventId), "msg_bWuMu1QCldYmaZwTLAvhYbdNlQE-VPSf");
  assert.equal(webhookId("Café ☕", eventId), "msg_VzkmnSmdgcFwvaRMZM5Lt1RwJXl94CWJ");
  assert.equal(webhookId("crm", eventId), webhookId("crm", eventId));
});

Deno.test("webhookId() differs per destination and per event, without a dot", async () => {
  const ids = new Map<string, string>();
  const events = await allFixtureEvents();
  for (const destination of ["crm", "analytics", "a\nb", "a"]) {
    for (const { event } of events) {
      const id = webhookId(destination, event.id);
      assert.match(id, /^msg_[A-Za-z0-9_-]{32}$/);
      const pair = JSON.stringify([destination, event.id]);
      const earlier = ids.get(id);
      assert.ok(earlier === undefined || earlier === pair, `${pair} and ${earlier} share ${id}`);
      ids.set(id, pair);
    }
  }
  // Names that run together under a plain separator stay apart.
  assert.notEqual(webhookId("a\nb", "c"), webhookId("a", "b\nc"));
});

// --- signing.ts: secrets ------------------------------------------------------------------------

Deno.test("parseSigningSecret() accepts 24 to 64 bytes of padded standard base64", () => {
  assert.equal(parseSigningSecret(testSecret(24)).length, 24);
  assert.equal(parseSigningSecret(testSecret(32)).length, 32);
  assert.equal(parseSigningSecret(testSecret(64)).length, 64);
  // A secret as Svix and the Standard Webhooks libraries generate it.
  assert.equal(parseSigningSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").length, 24);
});

Deno.test("parseSigningSecret() names what is wrong and where, never the secret", () => {
  const unpadded = testSecret(32).replace(/=+$/, "");
  const cases: [string, RegExp][] = [
    [testSecret(32).slice("whsec_".length), /does not start with "whsec_"/],
    [`WHSEC_${testSecret(32).slice(6)}`, /does not start with "whsec_"/],
    ["whsk_" + testSecret(32).slice(6), /asymmetric \(ed25519\) keys are not supported/],
    [`whsec_${"ab!d".repeat(8)}`, /is not padded standard base64/],
    [`whsec_${"ab-_".repeat(8)}`, /is not padded standard base64/],
    [` ${testSecret(32)}`, /does not start with "whsec_"/],
    [`${testSecret(24)}\n`, /is not padded standard base64/],
    [unpadded, /is not padded standard base64/],
    ["whsec_", /holds 0 bytes, not 24 to 64/],
    ["whsec_QUJDRA==", /holds 4 bytes, not 24 to 64/],
    [testSecret(16), /holds 16 bytes, not 24 to 64/],
    [testSecret(23), /holds 23 bytes, not 24 to 64/],
    [testSecret(65), /holds 65 bytes, not 24 to 64/],
    // Stray bits in the last character: decoders disagree on it, so it is refused.
    [`${testSecret(32).slice(0, -2)}B=`, /is not canonical base64/],
  ];
  for (const [secret, reason] of cases) {
    assert.throws(() => parseSigningSecret(secret, 1, 2), (error: unknown) => {
      assert.ok(error instanceof SigningSecretError, `${JSON.stringify(secret)}: ${error}`);
      assert.equal(error.index, 1);
      assert.match(error.message, /^Cannot use signing secret 2 of 2: /);
      assert.match(error.message, reason);
      // No 8 characters of the secret beyond its prefix appear in the message.
      const body = secret.replace(/^\s*\w+_/, "").trim();
      for (let i = 0; i + 8 <= body.length; i++) {
        assert.ok(!error.message.includes(body.slice(i, i + 8)), "the message quotes the secret");
      }
      return true;
    });
  }
});

Deno.test("createSigner() refuses no secrets, too many, or one bad secret by its position", () => {
  assert.throws(() => createSigner([]), /Cannot sign deliveries with 0 signing secrets/);
  const many = Array.from({ length: MAX_SIGNING_SECRETS + 1 }, (_, i) => testSecret(32, i));
  assert.throws(() => createSigner(many), SigningSecretError);
  assert.throws(() => createSigner([NEW_SECRET, "whsec_short="]), (error: unknown) => {
    assert.ok(error instanceof SigningSecretError);
    assert.equal(error.index, 1);
    assert.match(error.message, /^Cannot use signing secret 2 of 2: /);
    return true;
  });
});

// --- signing.ts: signatures the reference library accepts ---------------------------------------

Deno.test("sign() headers verify with npm:standardwebhooks under each rotation secret", () => {
  const signer = createSigner([NEW_SECRET, OLD_SECRET]);
  assert.equal(signer.secretCount, 2);
  for (const { label, body } of samplePayloads()) {
    const id = webhookId("crm", `message:${label}`);
    const headers = signer.sign({ id, timestamp: nowSeconds(), body });
    assert.equal(headers["content-type"], "application/json");
    assert.equal(headers["webhook-id"], id);
    assert.match(headers["webhook-signature"], /^v1,[A-Za-z0-9+/]{43}= v1,[A-Za-z0-9+/]{43}=$/);
    for (const secret of [NEW_SECRET, OLD_SECRET]) {
      // Each secret alone, as a consumer on either side of the rotation holds it.
      assert.deepEqual(new Webhook(secret).verify(body, headers), JSON.parse(body), label);
    }
  }
});

Deno.test("sign() with one secret sends one signature", () => {
  const signer = createSigner([NEW_SECRET]);
  const body = samplePayloads()[0]!.body;
  const headers = signer.sign({ id: "msg_one", timestamp: nowSeconds(), body });
  assert.match(headers["webhook-signature"], /^v1,[A-Za-z0-9+/]{43}=$/);
  new Webhook(NEW_SECRET).verify(body, headers);
});

Deno.test("npm:standardwebhooks rejects a changed body, another secret, a stale timestamp", () => {
  const signer = createSigner([NEW_SECRET, OLD_SECRET]);
  const body = samplePayloads()[1]!.body;
  const id = webhookId("crm", "message:x");
  const headers = signer.sign({ id, timestamp: nowSeconds(), body });
  const consumer = new Webhook(NEW_SECRET);
  const tampered = body.replace("whatsapp.message.text", "whatsapp.message.texts");
  assert.notEqual(tampered, body);
  assert.throws(() => consumer.verify(tampered, headers), /No matching signature found/);
  assert.throws(() => consumer.verify(body, { ...headers, "webhook-id": `${id}x` }), /No matching/);
  assert.throws(() => new Webhook(OTHER_SECRET).verify(body, headers), /No matching signature/);
  const stale = signer.sign({ id, timestamp: nowSeconds() - 10 * 60, body });
  assert.throws(() => consumer.verify(body, stale), WebhookVerificationError);
  assert.throws(() => consumer.verify(body, stale), /Message timestamp too old/);
});

Deno.test("sign() computes the HMAC bytes WebCrypto computes over id.timestamp.body", async () => {
  // The signer uses node:crypto (OpenSSL); WebCrypto is Deno's other implementation.
  const secrets = [NEW_SECRET, OLD_SECRET];
  const signer = createSigner(secrets);
  for (const { body } of samplePayloads()) {
    const id = "msg_bWuMu1QCldYmaZwTLAvhYbdNlQE-VPSf";
    const timestamp = 1_767_960_000;
    const headers = signer.sign({ id, timestamp, body });
    assert.equal(headers["webhook-timestamp"], "1767960000");
    const expected = await Promise.all(secrets.map(async (secret) => {
      const raw = Uint8Array.fromBase64(secret.slice("whsec_".length));
      const key = await crypto.subtle.importKey(
        "raw",
        raw,
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign"],
      );
      const signed = new TextEncoder().encode(`${id}.${timestamp}.${body}`);
      const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, signed));
      return `v1,${mac.toBase64()}`;
    }));
    assert.equal(headers["webhook-signature"], expected.join(" "));
  }
});

Deno.test("sign() refuses a timestamp that is not whole seconds and an id with a dot", () => {
  const signer = createSigner([NEW_SECRET]);
  for (const timestamp of [Date.now() + 0.5, -1, Number.NaN]) {
    assert.throws(() => signer.sign({ id: "msg_a", timestamp, body: "{}" }), RangeError);
  }
  for (const id of ["", "msg.a", "msg a", "msg_\na", "m".repeat(257)]) {
    assert.throws(() => signer.sign({ id, timestamp: 1, body: "{}" }), RangeError);
  }
});

// --- a real consumer ----------------------------------------------------------------------------

/** One POST the consumer received, and whether each secret verified it. */
interface Received {
  id: string | null;
  type: string | undefined;
  verifiedWith: string[];
  failures: string[];
}

Deno.test("a consumer verifying with npm:standardwebhooks accepts every fixture event", async () => {
  const consumers = { new: new Webhook(NEW_SECRET), old: new Webhook(OLD_SECRET) };
  const received: Received[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const raw = await request.text();
    const headers = Object.fromEntries(request.headers);
    const entry: Received = {
      id: request.headers.get("webhook-id"),
      type: undefined,
      verifiedWith: [],
      failures: [],
    };
    for (const [name, consumer] of Object.entries(consumers)) {
      try {
        entry.type = (consumer.verify(raw, headers) as { type: string }).type;
        entry.verifiedWith.push(name);
      } catch (error) {
        entry.failures.push(`${name}: ${error}`);
      }
    }
    received.push(entry);
    return new Response(null, { status: entry.failures.length === 0 ? 204 : 401 });
  });
  try {
    const url = `http://127.0.0.1:${server.addr.port}/whatsapp`;
    const signer = createSigner([NEW_SECRET, OLD_SECRET]);
    const sent: { id: string; type: string }[] = [];
    for (const { event } of await allFixtureEvents()) {
      const body = deliveryBody(event, RECEIVED_AT_MS);
      const id = webhookId("crm", event.id);
      const headers = signer.sign({ id, timestamp: nowSeconds(), body });
      const response = await fetch(url, { method: "POST", headers, body });
      await response.body?.cancel();
      assert.equal(response.status, 204, `event "${event.id}": ${received.at(-1)?.failures}`);
      sent.push({ id, type: eventTypeOf(event) });
    }
    assert.ok(sent.length >= FIXTURES.length);
    assert.deepEqual(
      received.map(({ id, type, verifiedWith, failures }) => ({
        id,
        type,
        verifiedWith,
        failures,
      })),
      sent.map(({ id, type }) => ({ id, type, verifiedWith: ["new", "old"], failures: [] })),
    );
  } finally {
    await server.shutdown();
  }
});
