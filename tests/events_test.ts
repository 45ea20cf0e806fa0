/**
 * Tests for `parseDelivery`: every fixture yields exactly its hand-written events, batches are
 * flattened whole, and nothing a verified delivery can hold makes it throw or lose a part.
 *
 * @module
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import {
  countDrift,
  type InboundMessage,
  InvalidJsonError,
  type KnownChangeEvent,
  MAX_DELIVERY_ARRAY_ELEMENTS,
  MAX_DELIVERY_PARTS,
  MAX_DRIFT_SAMPLES,
  MAX_JSON_DEPTH,
  parseDelivery,
  parseDeliveryText,
  type WebhookEvent,
} from "../src/events/events.ts";
import { FIXTURES, readExpectedParse, readFixtureBytes } from "./fixtures/catalog.ts";

const WABA_ID = "102290000000001";
const METADATA = { display_phone_number: "15550001111", phone_number_id: "106540000000002" };

for (const fixture of FIXTURES) {
  Deno.test(`parseDelivery() yields the expected events for ${fixture.name}: ${fixture.description}`, async () => {
    const body = new TextDecoder().decode(await readFixtureBytes(fixture));
    deepStrictEqual(parseDelivery(JSON.parse(body)), await readExpectedParse(fixture));
  });
}

Deno.test("the fixture catalogue lists every fixture file, each with an expected file", async () => {
  const onDisk: string[] = [];
  for await (const file of Deno.readDir(new URL("./fixtures/", import.meta.url))) {
    if (file.isFile && file.name.endsWith(".json")) {
      onDisk.push(file.name.slice(0, -".json".length));
    }
  }
  const expected: string[] = [];
  for await (const file of Deno.readDir(new URL("./fixtures/expected/", import.meta.url))) {
    expected.push(file.name.slice(0, -".events.json".length));
  }
  const listed = FIXTURES.map((fixture) => fixture.name).sort();
  deepStrictEqual(onDisk.sort(), listed);
  deepStrictEqual(expected.sort(), listed);
});

Deno.test("parseDelivery() yields one event per message of a batched delivery", () => {
  const entries = [1, 2, 3].map((e) => ({
    id: `10229000000000${e}`,
    changes: [1, 2].map((c) => ({
      field: "messages",
      value: {
        messaging_product: "whatsapp",
        metadata: METADATA,
        messages: [1, 2, 3, 4, 5].map((m) => ({
          from: "5511999990000",
          id: `wamid.E${e}C${c}M${m}`,
          timestamp: "1767225600",
          type: "text",
          text: { body: `message ${m}` },
        })),
      },
    })),
  }));
  const { events, drift } = parseDelivery({ object: "whatsapp_business_account", entry: entries });
  equal(events.length, 30);
  ok(events.every((event) => event.kind === "message" && event.message.type === "text"));
  equal(new Set(events.map((event) => event.id)).size, 30);
  equal(events[29]?.id, "message:wamid.E3C2M5");
  deepStrictEqual(drift, []);
});

Deno.test("parseDelivery() yields one unknown event, and never throws, for what is not a delivery", () => {
  const delivery = "whatsapp_business_account";
  const cases: { payload: unknown; reason: string; raw: unknown }[] = [
    { payload: null, reason: "Delivery is not a JSON object", raw: null },
    { payload: undefined, reason: "Delivery is not a JSON object", raw: null },
    { payload: 42, reason: "Delivery is not a JSON object", raw: 42 },
    { payload: "text", reason: "Delivery is not a JSON object", raw: "text" },
    { payload: [], reason: "Delivery is not a JSON object", raw: [] },
    {
      payload: { object: "page" },
      reason: `Delivery is for object "page", not "whatsapp_business_account"`,
      raw: { object: "page" },
    },
    { payload: { entry: [] }, reason: `Delivery has no "object"`, raw: { entry: [] } },
    { payload: { object: delivery }, reason: "Delivery has no entries", raw: { object: delivery } },
    {
      payload: { object: delivery, entry: [] },
      reason: "Delivery has no entries",
      raw: { object: delivery, entry: [] },
    },
    {
      payload: { object: delivery, entry: {} },
      reason: "Delivery has no entries",
      raw: { object: delivery, entry: {} },
    },
    { payload: { object: delivery, entry: [null] }, reason: `Entry has no "id"`, raw: null },
    {
      payload: { object: delivery, entry: [{ changes: [] }] },
      reason: `Entry has no "id"`,
      raw: { changes: [] },
    },
    {
      payload: { object: delivery, entry: [{ id: WABA_ID }] },
      reason: "Entry has no changes",
      raw: { id: WABA_ID },
    },
    {
      payload: { object: delivery, entry: [{ id: WABA_ID, changes: [] }] },
      reason: "Entry has no changes",
      raw: { id: WABA_ID, changes: [] },
    },
    {
      payload: { object: delivery, entry: [{ id: WABA_ID, changes: [{ value: {} }] }] },
      reason: `Change has no "field"`,
      raw: { value: {} },
    },
  ];
  for (const { payload, reason, raw } of cases) {
    const { events, drift } = parseDelivery(payload);
    equal(events.length, 1, `one event for ${JSON.stringify(payload)}`);
    const event = events[0];
    ok(event?.kind === "unknown");
    equal(event.reason, reason);
    deepStrictEqual(event.raw, raw);
    ok(/^unknown:[0-9a-f]{32}$/.test(event.id));
    deepStrictEqual(drift, []);
  }
});

Deno.test("parseDelivery() keeps the other changes of an entry when one change is malformed", () => {
  const { events } = parseDelivery({
    object: "whatsapp_business_account",
    entry: [{
      id: WABA_ID,
      changes: [
        "not a change",
        { field: "security", value: { display_phone_number: "15550001111", event: "PIN_CHANGED" } },
      ],
    }],
  });
  deepStrictEqual(events.map((event) => event.kind), ["unknown", "change"]);
  deepStrictEqual(events[0] && { ...events[0], id: "" }, {
    kind: "unknown",
    id: "",
    reason: `Change has no "field"`,
    raw: "not a change",
    wabaId: WABA_ID,
  });
});

Deno.test("parseDelivery() keeps a messages change without metadata whole, as an unknown change with drift", () => {
  const value = { messaging_product: "whatsapp", messages: [{ id: "wamid.A", type: "text" }] };
  const { events, drift } = parseDelivery({
    object: "whatsapp_business_account",
    entry: [{ id: WABA_ID, changes: [{ field: "messages", value }] }],
  });
  equal(events.length, 1);
  const event = events[0];
  ok(event?.kind === "change" && event.field === "unknown");
  equal(event.originalField, "messages");
  deepStrictEqual(event.value, value);
  deepStrictEqual(drift, [{
    field: "messages",
    type: "value",
    path: "entry[0].changes[0].value.metadata",
    reason: "Invalid input: expected object, received undefined",
  }]);
});

Deno.test("parseDelivery() yields an unknown event for a message without an id, and drift for its type", () => {
  const message = {
    from: "5511999990000",
    timestamp: "1767225600",
    type: "text",
    text: { body: "x" },
  };
  const { events, drift } = parseDelivery(_messagesDelivery({ messages: [message] }));
  equal(events.length, 1);
  const event = events[0];
  ok(event?.kind === "unknown");
  equal(event.reason, `Message has no "id" or no "timestamp"`);
  deepStrictEqual(event.raw, message);
  equal(event.field, "messages");
  equal(event.phoneNumberId, METADATA.phone_number_id);
  deepStrictEqual(drift, [{
    field: "messages",
    type: "text",
    path: "entry[0].changes[0].value.messages[0].id",
    reason: "Invalid input: expected string, received undefined",
  }]);
});

Deno.test("parseDelivery() reports drift for a malformed contact and leaves the message without it", () => {
  const { events, drift } = parseDelivery(_messagesDelivery({
    contacts: [{ wa_id: 5511999990000 }],
    messages: [{
      from: "5511999990000",
      id: "wamid.A",
      timestamp: "1767225600",
      type: "request_welcome",
    }],
  }));
  ok(events[0]?.kind === "message" && events[0].contact === undefined);
  deepStrictEqual(drift, [{
    field: "messages",
    type: "contact",
    path: "entry[0].changes[0].value.contacts[0].wa_id",
    reason: "Invalid input: expected string, received number",
  }]);
});

Deno.test("parseDelivery() reads timestamps sent as integers as well as strings", () => {
  const { events, drift } = parseDelivery(_messagesDelivery({
    messages: [{
      from: "5511999990000",
      id: "wamid.A",
      timestamp: 1767225600,
      type: "request_welcome",
    }],
    statuses: [{
      id: "wamid.B",
      status: "read",
      timestamp: 1767225601,
      recipient_id: "5511999990000",
    }],
  }));
  deepStrictEqual(events.map((event) => [event.id, "timestampMs" in event && event.timestampMs]), [
    ["message:wamid.A", 1767225600000],
    ["status:wamid.B:read:1767225601", 1767225601000],
  ]);
  deepStrictEqual(drift, []);
});

Deno.test("parseDelivery() yields the same ids when a retry sends the same delivery with keys reordered", async () => {
  for (const name of ["batched_mixed", "field_account_update", "foreign_object"]) {
    const fixture = FIXTURES.find((candidate) => candidate.name === name);
    ok(fixture !== undefined);
    const payload: unknown = JSON.parse(new TextDecoder().decode(await readFixtureBytes(fixture)));
    const reordered: unknown = JSON.parse(JSON.stringify(_reverseKeys(payload)));
    deepStrictEqual(
      parseDelivery(reordered).events.map((event) => event.id),
      parseDelivery(payload).events.map((event) => event.id),
    );
  }
});

Deno.test("parseDelivery() yields events that survive a JSON round trip unchanged", async () => {
  for (const fixture of FIXTURES) {
    const body = new TextDecoder().decode(await readFixtureBytes(fixture));
    const { events } = parseDelivery(JSON.parse(body));
    deepStrictEqual(JSON.parse(JSON.stringify(events)), events, fixture.name);
    for (const event of events) {
      ok(event.id.startsWith(`${event.kind}:`), event.id);
      ok(new TextEncoder().encode(event.id).length <= 512, event.id);
    }
  }
});

Deno.test("WebhookEvent narrows on kind, message type and field without casts", async () => {
  const events = [
    ...await _parseFixture("message_text"),
    ...await _parseFixture("field_account_update"),
  ];
  const seen: string[] = [];
  for (const event of events) {
    if (event.kind === "message" && event.message.type === "text") {
      seen.push(_textBody(event.message));
    } else if (event.kind === "change" && event.field === "account_update") {
      seen.push(_accountEvent(event));
    }
  }
  deepStrictEqual(seen, ["Oi, tudo bem?", "ACCOUNT_RESTRICTION"]);
});

function _textBody(message: Extract<InboundMessage, { type: "text" }>): string {
  return message.text.body;
}

Deno.test("parseDelivery() keeps a delivery of more than MAX_DELIVERY_PARTS entries whole, as one unknown event", () => {
  const entry = Array.from({ length: MAX_DELIVERY_PARTS + 1 }, (_, i) => ({ n: i }));
  const payload = { object: "whatsapp_business_account", entry };
  const { events, drift } = parseDelivery(payload);
  equal(events.length, 1);
  const event = events[0];
  ok(event?.kind === "unknown");
  equal(
    event.reason,
    `Delivery has more than ${MAX_DELIVERY_PARTS} entries, changes, contacts, messages and ` +
      "statuses; kept whole",
  );
  equal(event.raw, payload, "the whole delivery, nothing lost");
  deepStrictEqual(drift, []);
});

Deno.test("parseDelivery() walks a delivery of exactly MAX_DELIVERY_PARTS parts part by part", () => {
  // 1 entry + 1 change + the contacts and one message.
  const contacts = new Array(MAX_DELIVERY_PARTS - 3).fill({ wa_id: "5511999990000" });
  const message = { from: "5511999990000", id: "wamid.A", timestamp: "1767225600", type: "text" };
  const { events } = parseDelivery(_messagesDelivery({
    contacts,
    messages: [{ ...message, text: { body: "hi" } }],
  }));
  deepStrictEqual(events.map((event) => event.id), ["message:wamid.A"]);
});

Deno.test("parseDelivery() keeps a delivery with too many array elements whole, as one unknown event", () => {
  // One status whose errors[] alone would cost a validation issue per element.
  const status = {
    id: "wamid.S",
    status: "failed",
    timestamp: "1767225600",
    recipient_id: "5511999990000",
    errors: new Array(MAX_DELIVERY_ARRAY_ELEMENTS).fill(0),
  };
  const { events, drift } = parseDelivery(_messagesDelivery({ statuses: [status] }));
  equal(events.length, 1);
  ok(events[0]?.kind === "unknown");
  equal(
    events[0].reason,
    `Delivery has more than ${MAX_DELIVERY_ARRAY_ELEMENTS} array elements; kept whole`,
  );
  deepStrictEqual(drift, []);
});

Deno.test("parseDelivery() records the first MAX_DRIFT_SAMPLES drift in full and counts the rest", () => {
  const image = {
    from: "5511999990000",
    id: "wamid.A",
    timestamp: "1767225600",
    type: "image",
    image: { id: 1 },
  };
  const imageDrift = parseDelivery(_messagesDelivery({ messages: [image] })).drift.length;
  ok(imageDrift >= 1);
  const parsed = parseDelivery(_messagesDelivery({
    contacts: new Array(20).fill(0),
    messages: [image],
  }));
  equal(parsed.events.length, 1);
  equal(parsed.drift.length, MAX_DRIFT_SAMPLES);
  deepStrictEqual(parsed.drift[0], {
    field: "messages",
    type: "contact",
    path: "entry[0].changes[0].value.contacts[0]",
    reason: "Invalid input: expected object, received number",
  });
  deepStrictEqual(parsed.moreDrift, [
    { field: "messages", type: "contact", count: 20 - MAX_DRIFT_SAMPLES },
    { field: "messages", type: "image", count: imageDrift },
  ]);
  deepStrictEqual(countDrift(parsed), [
    { field: "messages", type: "contact", count: 20 },
    { field: "messages", type: "image", count: imageDrift },
  ]);
});

Deno.test("parseDelivery() keeps a value nested deeper than MAX_JSON_DEPTH whole without overflowing the stack", () => {
  let deep: unknown = 1;
  for (let i = 0; i < 10_000; i++) deep = [deep];
  const { events } = parseDelivery(deep);
  equal(events.length, 1);
  ok(events[0]?.kind === "unknown");
  equal(events[0].reason, `Delivery nests deeper than ${MAX_JSON_DEPTH} levels`);
});

Deno.test("parseDeliveryText() keeps a text nested deeper than MAX_JSON_DEPTH as text, unparsed", () => {
  const deepField = `{"a":`.repeat(6_000) + "1" + "}".repeat(6_000);
  const deepMessage = JSON.stringify(_messagesDelivery({
    messages: [{ from: "5511999990000", id: "wamid.A", timestamp: "1767225600", type: "text" }],
  })).replace(`"type":"text"`, `"type":"text","deep":${deepField}`);
  // Below 64 KiB the text is parsed and its depth found while walking; above, found by a scan.
  const deepTexts = [10_000, 50_000].map((levels) => "[".repeat(levels) + "]".repeat(levels));
  for (const text of [...deepTexts, deepMessage]) {
    const { events, drift } = parseDeliveryText(text);
    equal(events.length, 1);
    const event = events[0];
    ok(event?.kind === "unknown");
    equal(
      event.reason,
      `Delivery nests deeper than ${MAX_JSON_DEPTH} levels; kept as text, unparsed`,
    );
    equal(event.raw, text);
    equal(parseDeliveryText(text).events[0]?.id, event.id, "the same id for Meta's retry");
    deepStrictEqual(drift, []);
  }
});

Deno.test("parseDeliveryText() reads a text nested exactly MAX_JSON_DEPTH deep, brackets in strings aside", () => {
  const tricky = String.raw`a \" quote, [[[ and {{{ in a string`;
  const textNested = (levels: number): string => {
    let deep: unknown = tricky;
    for (let i = 0; i < levels; i++) deep = [deep];
    // The message object is 8 levels deep: object, entry[], entry, changes[], change, value,
    // messages[], message; its field `deep` adds `levels` more.
    return JSON.stringify(_messagesDelivery({
      messages: [{
        from: "5511999990000",
        id: "wamid.A",
        timestamp: "1767225600",
        type: "text",
        text: { body: tricky },
        deep,
      }],
    }));
  };
  deepStrictEqual(
    parseDeliveryText(textNested(MAX_JSON_DEPTH - 8)).events.map((event) => event.kind),
    ["message"],
  );
  const tooDeep = textNested(MAX_JSON_DEPTH - 7);
  deepStrictEqual(
    parseDeliveryText(tooDeep).events.map((event) => [event.kind, "raw" in event && event.raw]),
    [
      ["unknown", tooDeep],
    ],
  );
});

Deno.test("parseDeliveryText() throws InvalidJsonError naming the problem and byte, never the text", () => {
  const cases: [string, string][] = [
    ["TOPSECRET4 is not json", "Body is not valid JSON: unexpected character"],
    [`{"é":1 "TOPSECRET"}`, "Body is not valid JSON: expected ',' or '}' (at byte 8)"],
    [`{"TOPSECRET":`, "Body is not valid JSON: unexpected end of input"],
    [`["TOPSECRET`, "Body is not valid JSON: unterminated string (at byte 11)"],
  ];
  for (const [text, message] of cases) {
    try {
      parseDeliveryText(text);
      ok(false, `${text} parsed`);
    } catch (error) {
      ok(error instanceof InvalidJsonError);
      equal(error.message, message);
    }
  }
});

function _accountEvent(change: Extract<KnownChangeEvent, { field: "account_update" }>): string {
  return change.value.event;
}

async function _parseFixture(name: string): Promise<WebhookEvent[]> {
  const fixture = FIXTURES.find((candidate) => candidate.name === name);
  ok(fixture !== undefined, name);
  return parseDelivery(JSON.parse(new TextDecoder().decode(await readFixtureBytes(fixture))))
    .events;
}

function _messagesDelivery(arrays: Record<string, unknown[]>): unknown {
  return {
    object: "whatsapp_business_account",
    entry: [{
      id: WABA_ID,
      changes: [{
        field: "messages",
        value: { messaging_product: "whatsapp", metadata: METADATA, ...arrays },
      }],
    }],
  };
}

function _reverseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(_reverseKeys);
  if (typeof value !== "object" || value === null) return value;
  const entries = Object.entries(value).reverse().map(([key, item]) => [key, _reverseKeys(item)]);
  return Object.fromEntries(entries);
}
