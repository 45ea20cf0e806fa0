/**
 * The destination filter over real events (the fixtures, parsed by `parseDelivery`): a truth table
 * of filters against events, the rule that a list constrains only the events it describes, and
 * `destinationsFor()`.
 */
import assert from "node:assert/strict";
import {
  type DestinationFilter,
  destinationFilterSchema,
  destinationsFor,
  matchesFilter,
} from "../src/destinations/filter.ts";
import { type Destination, parseDestinations } from "../src/destinations/declarations.ts";
import { parseDelivery, type WebhookEvent } from "../src/events/events.ts";
import { firstFixtureEvent, fixtureEvents } from "./fixtures/catalog.ts";

/** The business number of most fixtures, and the second number of `batched_mixed`. */
const NUMBER = "106540000000002";
const OTHER_NUMBER = "106540000000010";

/** The `account_update` fixture with an `event` that fails its schema: an untyped change. */
function driftedAccountUpdate(): WebhookEvent {
  const url = new URL("./fixtures/field_account_update.json", import.meta.url);
  const delivery = JSON.parse(Deno.readTextFileSync(url));
  delivery.entry[0].changes[0].value.event = 42;
  const [event] = parseDelivery(delivery).events;
  assert.ok(event?.kind === "change" && event.field === "unknown");
  assert.equal(event.originalField, "account_update");
  return event;
}

/** The events of the table, by name; each asserted to be what its name says. */
const EVENTS: Record<string, WebhookEvent> = (() => {
  const otherText = fixtureEvents("batched_mixed").at(-1);
  assert.ok(otherText?.kind === "message" && otherText.message.type === "text");
  assert.equal(otherText.phoneNumberId, OTHER_NUMBER);
  const events = {
    text: firstFixtureEvent("message_text", "message"),
    image: firstFixtureEvent("message_image", "message"),
    untypedPoll: firstFixtureEvent("unknown_message_type", "message"),
    driftedImage: firstFixtureEvent("drift_mistyped_field", "message"),
    otherNumberText: otherText,
    read: firstFixtureEvent("status_read", "status"),
    failed: firstFixtureEvent("status_failed", "status"),
    unknownStatus: firstFixtureEvent("status_unknown_value", "status"),
    accountUpdate: firstFixtureEvent("field_account_update", "change"),
    calls: firstFixtureEvent("field_calls", "change"),
    unknownField: firstFixtureEvent("unknown_field", "change"),
    driftedAccountUpdate: driftedAccountUpdate(),
    foreign: firstFixtureEvent("foreign_object", "unknown"),
    mistypedStatus: firstFixtureEvent("drift_status_mistyped", "unknown"),
  };
  assert.equal(events.text.message.type, "text");
  assert.equal(events.image.message.type, "image");
  assert.ok(events.untypedPoll.message.type === "unknown");
  assert.equal(events.untypedPoll.message.originalType, "poll");
  assert.ok(events.driftedImage.message.type === "unknown");
  assert.equal(events.driftedImage.message.originalType, "image");
  assert.equal(events.read.status.status, "read");
  assert.equal(events.failed.status.status, "failed");
  assert.equal(events.unknownStatus.status.status, "deleted");
  assert.equal(events.accountUpdate.field, "account_update");
  assert.equal(events.accountUpdate.phoneNumberId, undefined);
  assert.equal(events.calls.field, "calls");
  assert.equal(events.calls.phoneNumberId, NUMBER);
  assert.ok(events.unknownField.field === "unknown");
  assert.equal(events.unknownField.originalField, "marketing_insights_update");
  assert.equal(events.foreign.phoneNumberId, undefined);
  assert.equal(events.mistypedStatus.phoneNumberId, NUMBER);
  assert.equal(events.mistypedStatus.field, "messages");
  for (const name of ["text", "image", "untypedPoll", "driftedImage", "read"] as const) {
    assert.equal(events[name].phoneNumberId, NUMBER);
  }
  return events;
})();

const ALL = Object.keys(EVENTS);
const MESSAGES = ["text", "image", "untypedPoll", "driftedImage", "otherNumberText"];
const STATUSES = ["read", "failed", "unknownStatus"];
const CHANGES = ["accountUpdate", "calls", "unknownField", "driftedAccountUpdate"];
const UNKNOWNS = ["foreign", "mistypedStatus"];
/** The events that name no business number. */
const WITHOUT_NUMBER = ["accountUpdate", "unknownField", "driftedAccountUpdate", "foreign"];

const but = (names: string[], left: string[]) => names.filter((name) => !left.includes(name));

/** Each filter and exactly the events it lets through. */
const TABLE: { why: string; filter: DestinationFilter | undefined; passes: string[] }[] = [
  { why: "no filter passes everything", filter: undefined, passes: ALL },
  { why: "an empty filter passes everything", filter: {}, passes: ALL },
  { why: "empty lists pass everything", filter: { kinds: [], messageTypes: [] }, passes: ALL },
  { why: "kinds: any listed kind", filter: { kinds: ["message"] }, passes: MESSAGES },
  {
    why: "kinds: either of two",
    filter: { kinds: ["status", "change"] },
    passes: [...STATUSES, ...CHANGES],
  },
  { why: "kinds: unknown events", filter: { kinds: ["unknown"] }, passes: UNKNOWNS },
  {
    why: "messageTypes alone constrains messages only",
    filter: { messageTypes: ["text"] },
    passes: but(ALL, ["image", "untypedPoll", "driftedImage"]),
  },
  {
    why: "messageTypes matches the type Meta sent, even untyped after drift",
    filter: { kinds: ["message"], messageTypes: ["image"] },
    passes: ["image", "driftedImage"],
  },
  {
    why: 'messageTypes "unknown" matches every untyped message',
    filter: { kinds: ["message"], messageTypes: ["unknown"] },
    passes: ["untypedPoll", "driftedImage"],
  },
  {
    why: "statuses: any listed value",
    filter: { kinds: ["status"], statuses: ["read", "failed"] },
    passes: ["read", "failed"],
  },
  {
    why: 'statuses "unknown" matches a value outside KNOWN_STATUS_VALUES',
    filter: { kinds: ["status"], statuses: ["unknown"] },
    passes: ["unknownStatus"],
  },
  {
    why: "statuses alone constrains statuses only",
    filter: { statuses: ["read"] },
    passes: but(ALL, ["failed", "unknownStatus"]),
  },
  {
    why: "fields matches the field Meta sent, even untyped after drift",
    filter: { kinds: ["change"], fields: ["account_update"] },
    passes: ["accountUpdate", "driftedAccountUpdate"],
  },
  {
    why: 'fields "unknown" matches every untyped change',
    filter: { kinds: ["change"], fields: ["unknown"] },
    passes: ["unknownField", "driftedAccountUpdate"],
  },
  {
    why: "fields alone constrains changes only (not unknown events that name a field)",
    filter: { fields: ["account_update"] },
    passes: but(ALL, ["calls", "unknownField"]),
  },
  {
    why: "phoneNumberIds constrains the events that name a number; the others pass",
    filter: { phoneNumberIds: [OTHER_NUMBER] },
    passes: ["otherNumberText", ...WITHOUT_NUMBER],
  },
  {
    why: "across lists every one must allow the event",
    filter: {
      kinds: ["message", "status"],
      phoneNumberIds: [NUMBER],
      messageTypes: ["text"],
      statuses: ["failed"],
    },
    passes: ["text", "failed"],
  },
];

for (const { why, filter, passes } of TABLE) {
  Deno.test(`matchesFilter(): ${why}`, () => {
    const passed = ALL.filter((name) => matchesFilter(filter, EVENTS[name]!));
    assert.deepEqual(passed, passes, JSON.stringify(filter));
  });
}

Deno.test("destinationFilterSchema drops empty lists and repeated values", () => {
  const filter = destinationFilterSchema.parse({
    kinds: ["message", "message"],
    fields: [],
    statuses: ["read"],
  });
  assert.deepEqual(filter, { kinds: ["message"], statuses: ["read"] });
});

Deno.test("destinationsFor() gives the matching destinations in declared order, paused ones too", () => {
  const secret = `whsec_${btoa("k".repeat(32))}`;
  const destinations: Destination[] = parseDestinations(
    JSON.stringify([
      {
        name: "statuses",
        url: "https://a.example/",
        secrets: [secret],
        filter: { kinds: ["status"] },
      },
      { name: "everything", url: "https://b.example/", secrets: [secret] },
      {
        name: "texts-paused",
        url: "https://c.example/",
        secrets: [secret],
        paused: true,
        filter: { kinds: ["message"], messageTypes: ["text"] },
      },
    ]),
    "DESTINATIONS",
  );
  const names = (event: WebhookEvent) =>
    destinationsFor(destinations, event).map((destination) => destination.name);
  assert.deepEqual(names(EVENTS.text!), ["everything", "texts-paused"]);
  assert.deepEqual(names(EVENTS.read!), ["statuses", "everything"]);
  assert.deepEqual(names(EVENTS.image!), ["everything"]);
  assert.deepEqual(destinationsFor([], EVENTS.text!), []);
});
