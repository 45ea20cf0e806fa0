/**
 * Echoes: messages the business sent itself from the WhatsApp Business app or a linked device
 * (coexistence), which Meta reports on `smb_message_echoes` (and, for some set-ups, on
 * `message_echoes`). They look like inbound messages but are outbound: each becomes an event of
 * its own kind, `echo`, kept verbatim (`message_creation_type` and any other key included), so
 * that no message handler, auto-reply or reply helper ever sees one.
 *
 * Meta's reference (smb_message_echoes webhook reference, May 2026): `value.message_echoes[]`,
 * each `{from, to, id, timestamp, type, <type>: {…}}`; `type` may also be `edit` or `revoke`;
 * `to_user_id` / `to_parent_user_id` name a user known by BSUID.
 *
 * @module
 */
import { z } from "zod";
import { type Contact, contactSchema, metadataSchema, unixSecondsSchema } from "./envelope.ts";
import { echoEventId } from "./event_ids.ts";
import { type DriftFound, recordDrift } from "./drift.ts";
import { echoRecipientOf, findContact } from "./parties.ts";

/** The webhook fields whose `message_echoes[]` become echo events. */
export const ECHO_FIELDS = ["smb_message_echoes", "message_echoes"] as const;

/** One of {@linkcode ECHO_FIELDS}. */
export type EchoField = (typeof ECHO_FIELDS)[number];

/** One item of `message_echoes[]`: typed where Meta documents it, every other key kept as sent. */
export const echoSchema = z.looseObject({
  id: z.string().min(1),
  from: z.string().optional(),
  to: z.string().optional(),
  to_user_id: z.string().optional(),
  to_parent_user_id: z.string().optional(),
  timestamp: unixSecondsSchema,
  type: z.string(),
  /** How the message was made (app, linked device, …): not in Meta's reference; kept when sent. */
  message_creation_type: z.string().optional(),
});

/** One message the business sent from the WhatsApp Business app, as Meta echoed it. */
export type Echo = z.output<typeof echoSchema>;

/** A message the business sent from the WhatsApp Business app or a linked device (coexistence). */
export interface EchoEvent {
  /** Discriminant of `WebhookEvent`. */
  kind: "echo";
  /** `echo:<wamid>`: the same for every retry, apart from any message or status id. */
  id: string;
  /** The webhook field it came on. */
  field: EchoField;
  /** The WABA id (`entry.id`). */
  wabaId: string;
  /** The business number that sent it. */
  phoneNumberId: string;
  /** The business number as digits, when Meta sent it. */
  displayPhoneNumber?: string;
  /** The echo's `timestamp`, in ms since the Unix epoch. */
  timestampMs: number;
  /** The recipient's entry of `contacts[]`, when Meta sent one. */
  contact?: Contact;
  /** The echoed message, verbatim. */
  echo: Echo;
}

/** Where a change of an echo field was found. */
export interface EchoOrigin {
  field: EchoField;
  wabaId: string;
  /** The change's path in the delivery, for drift samples. */
  changePath: string;
}

/** An echo that could not be read, to keep as an unknown event. */
export interface UnreadableEcho {
  raw: unknown;
  reason: string;
  phoneNumberId: string;
}

/** What {@linkcode collectEchoes} found in one change. */
export type CollectedEcho = EchoEvent | { unreadable: UnreadableEcho };

/** The `value` of an echo field as far as walking it needs; each echo is validated on its own. */
const _echoesEnvelopeSchema = z.looseObject({
  metadata: metadataSchema,
  contacts: z.array(z.unknown()).optional(),
  message_echoes: z.array(z.unknown()).min(1),
});

/** Whether `field` is one of {@linkcode ECHO_FIELDS}. */
export function isEchoField(field: string): field is EchoField {
  return (ECHO_FIELDS as readonly string[]).includes(field);
}

/**
 * The echoes of one change of an echo field, one per item of `message_echoes[]` in order; an item
 * that fails {@linkcode echoSchema} is returned as unreadable (and counted as drift).
 * `undefined` when the value holds no business number or no echo: the caller keeps it as a change.
 */
export function collectEchoes(
  value: unknown,
  origin: EchoOrigin,
  found: DriftFound,
): CollectedEcho[] | undefined {
  const envelope = _echoesEnvelopeSchema.safeParse(value);
  if (!envelope.success) return undefined;
  const { metadata, contacts = [], message_echoes: items } = envelope.data;
  const valid = contacts.flatMap((contact) => {
    const result = contactSchema.safeParse(contact);
    return result.success ? [result.data] : [];
  });
  const phoneNumberId = metadata.phone_number_id;
  return items.map((raw, k): CollectedEcho => {
    const result = echoSchema.safeParse(raw);
    if (!result.success) {
      const path = `${origin.changePath}.value.message_echoes[${k}]`;
      recordDrift(found, result.error, { field: origin.field, type: "echo", path });
      return { unreadable: { raw, reason: "Echo does not match its schema", phoneNumberId } };
    }
    const echo = result.data;
    const contact = findContact(valid, echoRecipientOf(echo));
    return {
      kind: "echo",
      id: echoEventId(echo.id),
      field: origin.field,
      wabaId: origin.wabaId,
      phoneNumberId,
      ...(metadata.display_phone_number === undefined
        ? {}
        : { displayPhoneNumber: metadata.display_phone_number }),
      timestampMs: Number(echo.timestamp) * 1000,
      ...(contact === undefined ? {} : { contact }),
      echo,
    };
  });
}
