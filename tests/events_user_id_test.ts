/**
 * Tests for `userIdOf`: one accessor for "the user" whether Meta sent a phone number, a BSUID or
 * both, on the message, the status or only the contact.
 *
 * @module
 */

import { equal } from "node:assert/strict";
import { parseDelivery, userIdOf, type WebhookEvent } from "../src/events/events.ts";
import { messagesDelivery } from "./deliveries.ts";

const BSUID = "BR.1502576394655843";
const PHONE = "5511999990000";

function _firstEvent(arrays: Record<string, unknown[]>): WebhookEvent {
  const { events } = parseDelivery(messagesDelivery(arrays));
  const event = events[0];
  if (event === undefined) throw new Error("Cannot test: the delivery yielded no event");
  return event;
}

function _text(sender: Record<string, string>): Record<string, unknown> {
  return { ...sender, id: "wamid.A", timestamp: "1767225600", type: "text", text: { body: "x" } };
}

function _status(recipient: Record<string, string>): Record<string, unknown> {
  return { ...recipient, id: "wamid.B", status: "delivered", timestamp: "1767225601" };
}

const CASES: { name: string; arrays: Record<string, unknown[]>; expected: string | undefined }[] = [
  {
    name: "the BSUID of a message that has both ids",
    arrays: { messages: [_text({ from: PHONE, from_user_id: BSUID })] },
    expected: BSUID,
  },
  {
    name: "the BSUID of a message from a user with a username (no phone number)",
    arrays: { messages: [_text({ from_user_id: BSUID })] },
    expected: BSUID,
  },
  {
    name: "the phone number of a message without a BSUID",
    arrays: { messages: [_text({ from: PHONE })] },
    expected: PHONE,
  },
  {
    name: "the contact's BSUID when the message has only the phone number",
    arrays: {
      contacts: [{ wa_id: PHONE, user_id: BSUID }],
      messages: [_text({ from: PHONE })],
    },
    expected: BSUID,
  },
  {
    name: "the phone number without its leading plus",
    arrays: { messages: [_text({ from: `+${PHONE}` })] },
    expected: PHONE,
  },
  {
    name: "undefined for an empty wa_id and no other id",
    arrays: { contacts: [{ wa_id: "" }], messages: [_text({ from: "" })] },
    expected: undefined,
  },
  {
    name: "the sender of a message of an unknown type",
    arrays: {
      messages: [{ from_user_id: BSUID, id: "wamid.C", timestamp: "1767225600", type: "poll" }],
    },
    expected: BSUID,
  },
  {
    name: "the recipient BSUID of a status sent to a BSUID",
    arrays: { statuses: [_status({ recipient_user_id: BSUID })] },
    expected: BSUID,
  },
  {
    name: "the recipient phone number of a failed status with a wa_id-only contact",
    arrays: {
      contacts: [{ wa_id: PHONE }],
      statuses: [{ ..._status({ recipient_id: PHONE }), status: "failed" }],
    },
    expected: PHONE,
  },
  {
    name: "the participant, not the group, of a status of a group send",
    arrays: {
      statuses: [_status({
        recipient_type: "group",
        recipient_id: "Y2FwaV9ncm91cDoxNTU1MDAwMTExMToxMjAzNjMwMDAwMDAwMDAwMDEZD",
        recipient_participant_id: "5519988887777",
      })],
    },
    expected: "5519988887777",
  },
  {
    name: "undefined for a change",
    arrays: { errors: [{ code: 131000 }] },
    expected: undefined,
  },
];

for (const { name, arrays, expected } of CASES) {
  Deno.test(`userIdOf() returns ${name}`, () => {
    equal(userIdOf(_firstEvent(arrays)), expected);
  });
}

Deno.test("userIdOf() returns undefined for an unknown event", () => {
  const [event] = parseDelivery(null).events;
  equal(event === undefined ? "none" : userIdOf(event), undefined);
});
