/**
 * Echoes (`events/echoes.ts`): messages the business sent from the WhatsApp Business app become
 * `echo` events, kept verbatim with stable ids of their own; filters know the kind; and neither
 * the echo example nor the reply helper ever answers one.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Dispatcher } from "../src/dispatch/dispatcher.ts";
import { destinationFilterSchema, matchesFilter } from "../src/destinations/filter.ts";
import { type EchoEvent, parseDelivery, userIdOf } from "../src/events/events.ts";
import { messageEventId } from "../src/events/event_ids.ts";
import { FAKE_TOKEN, startFakeGraphApi } from "./fake_graph_api.ts";
import { fixtureEvents } from "./fixtures/catalog.ts";
import { postDelivery, startTestServer, waitFor } from "./support.ts";

function _delivery(field: string, value: unknown): Record<string, unknown> {
  return {
    object: "whatsapp_business_account",
    entry: [{ id: "102290000000001", changes: [{ field, value }] }],
  };
}

const METADATA = { display_phone_number: "15550001111", phone_number_id: "106540000000002" };

Deno.test("parseDelivery() makes each smb_message_echoes item an echo event, message_creation_type kept", () => {
  const events = fixtureEvents("field_smb_message_echoes_batch");
  assert.deepEqual(events.map((event) => event.kind), ["echo", "echo"]);
  const [image, edit] = events as EchoEvent[];
  assert.equal(image!.echo.message_creation_type, "SMB_APP");
  assert.equal(image!.echo.type, "image");
  assert.deepEqual((image!.echo as Record<string, unknown>).image, {
    id: "1479537139650973",
    mime_type: "image/jpeg",
    sha256: "SOvfkLvKJ0p3SA0aAZnBuMsm0B5bCxHgjL7TCc5ZlEw=",
    caption: "Catálogo de verão",
  });
  assert.equal(edit!.echo.type, "edit");
  assert.equal(edit!.contact?.user_id, "BR.1502576394655843", "matched on to_user_id");
  assert.equal(userIdOf(edit!), "BR.1502576394655843");
  assert.equal(userIdOf(image!), "5511988880000");
});

Deno.test("echo ids are stable across parses and never an inbound message's id", () => {
  const first = fixtureEvents("field_smb_message_echoes_batch").map((event) => event.id);
  const again = fixtureEvents("field_smb_message_echoes_batch").map((event) => event.id);
  assert.deepEqual(first, again);
  assert.equal(new Set(first).size, 2);
  const wamid = "wamid.HBgNNTUxMTk4ODg4MDAwMBEGABIYECHO03AA==";
  assert.equal(first[0], `echo:${wamid}`);
  assert.notEqual(first[0], messageEventId(wamid));
});

Deno.test("an echo that fails its schema is kept as an unknown event with drift; the others stay echoes", () => {
  const parsed = parseDelivery(_delivery("smb_message_echoes", {
    messaging_product: "whatsapp",
    metadata: METADATA,
    message_echoes: [
      { from: "15550001111", to: "5511999990000", id: "wamid.NOTIME", type: "text" },
      {
        from: "15550001111",
        to: "5511999990000",
        id: "wamid.OK",
        timestamp: "1767225829",
        type: "text",
      },
    ],
  }));
  assert.deepEqual(parsed.events.map((event) => event.kind), ["unknown", "echo"]);
  assert.equal(
    parsed.events[0]!.kind === "unknown" && parsed.events[0]!.field,
    "smb_message_echoes",
  );
  assert.deepEqual(parsed.drift.map((d) => [d.field, d.type, d.path]), [
    ["smb_message_echoes", "echo", "entry[0].changes[0].value.message_echoes[0].timestamp"],
  ]);
});

Deno.test("an echo field's change without echoes stays one change event", () => {
  const parsed = parseDelivery(_delivery("smb_message_echoes", {
    messaging_product: "whatsapp",
    metadata: METADATA,
    message_echoes: [],
  }));
  assert.deepEqual(parsed.events.map((event) => [event.kind, "field" in event && event.field]), [
    ["change", "smb_message_echoes"],
  ]);
});

Deno.test("destination filters name the echo kind, and fields pick echoes by the field they came on", () => {
  const [echo] = fixtureEvents("field_smb_message_echoes");
  const filter = (lists: unknown) => destinationFilterSchema.parse(lists);
  assert.equal(matchesFilter(filter({ kinds: ["echo"] }), echo!), true);
  assert.equal(matchesFilter(filter({ kinds: ["message"] }), echo!), false);
  assert.equal(matchesFilter(filter({ fields: ["smb_message_echoes"] }), echo!), true);
  assert.equal(matchesFilter(filter({ fields: ["message_echoes"] }), echo!), false);
  assert.equal(matchesFilter(filter({ messageTypes: ["text"] }), echo!), true, "not a message");
});

Deno.test("the echo example and the reply helper never answer an echo", async () => {
  await using fake = startFakeGraphApi();
  const replies: string[] = [];
  const bot = new Dispatcher().on("echo", async (ctx) => {
    try {
      await ctx.reply("answering an echo");
    } catch (error) {
      replies.push(error instanceof Error ? error.name : String(error));
    }
  }, { name: "tries-to-answer" });
  await using server = await startTestServer({
    dispatcher: bot,
    env: { ECHO_REPLIES: "true", WHATSAPP_TOKEN: FAKE_TOKEN, GRAPH_API_BASE_URL: fake.url },
  });
  const body = await Deno.readFile(
    new URL("./fixtures/field_smb_message_echoes_batch.json", import.meta.url),
  );
  const response = await postDelivery(server.origin, body);
  assert.equal(response.status, 200);
  await response.body?.cancel();
  for (const event of fixtureEvents("field_smb_message_echoes_batch")) {
    await waitFor(
      async () => (await server.store.getEvent(event.id))?.record.state === "done",
      `${event.id} done`,
    );
    assert.deepEqual((await server.store.getEvent(event.id))?.record.completedHandlers, [
      "tries-to-answer",
    ]);
  }
  assert.deepEqual(replies, ["PermanentError", "PermanentError"]);
  assert.deepEqual(fake.requests, [], "nothing was sent");
});
