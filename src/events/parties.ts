/**
 * Who a message, status or echo is about, as far as it says: its business-scoped user id and phone
 * number, read from the payload, the contact of the change that matches them, and the user an
 * event is about (`userIdOf`).
 *
 * @module
 */
import type { Echo } from "./echoes.ts";
import type { Contact } from "./envelope.ts";
import type { WebhookEvent } from "./events.ts";
import type { InboundMessage } from "./message_schemas.ts";
import type { Status } from "./status_schemas.ts";

/** Who a message or status is about, as far as it says: BSUID and phone number, both optional. */
export interface Party {
  /** The business-scoped user id (BSUID). */
  userId?: string;
  /** The phone number, digits only. */
  phone?: string;
}

/** The contact a party is: by BSUID first, else by phone number. */
export function findContact(contacts: readonly Contact[], party: Party): Contact | undefined {
  const { userId, phone } = party;
  if (userId !== undefined) {
    const byUserId = contacts.find((contact) => contact.user_id === userId);
    if (byUserId !== undefined) return byUserId;
  }
  if (phone !== undefined) return contacts.find((contact) => phoneNumber(contact.wa_id) === phone);
  return undefined;
}

/** Who sent a message, from its `from_user_id` and `from` (an unknown type's raw fields too). */
export function senderOf(message: InboundMessage): Party {
  const fields: unknown = message.type === "unknown" ? message.raw : message;
  if (!_isRecord(fields)) return {};
  return _party(fields.from_user_id, fields.from);
}

/** Who a status is about: the recipient, or the participant of a group send. */
export function recipientOf(status: Status): Party {
  return status.recipient_type === "group"
    ? _party(status.recipient_participant_user_id, status.recipient_participant_id)
    : _party(status.recipient_user_id, status.recipient_id);
}

function _party(userId: unknown, phone: unknown): Party {
  const party: Party = {};
  const bsuid = nonEmpty(userId);
  const digits = phoneNumber(phone);
  if (bsuid !== undefined) party.userId = bsuid;
  if (digits !== undefined) party.phone = digits;
  return party;
}

/** `value` when it is a non-empty string. */
export function nonEmpty(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** A phone number as digits: Meta's examples write it both with and without a leading `+`. */
export function phoneNumber(value: unknown): string | undefined {
  const text = nonEmpty(value);
  return text?.startsWith("+") ? nonEmpty(text.slice(1)) : text;
}

function _isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Who an echo went to: `to_user_id` and `to`. */
export function echoRecipientOf(echo: Echo): Party {
  const party: Party = {};
  const userId = nonEmpty(echo.to_user_id);
  const phone = phoneNumber(echo.to);
  if (userId !== undefined) party.userId = userId;
  if (phone !== undefined) party.phone = phone;
  return party;
}

/**
 * The id of the user a message or status is about: the business-scoped user id (BSUID) when Meta
 * sent one, on the message, the status or the matched contact; otherwise the phone number
 * (`from`, `recipient_id`, `wa_id`) without a leading `+`; `undefined` when there is neither, and
 * for change and unknown events. For a status of a group send, the user is the participant; for
 * an echo, its recipient (`to_user_id`, `to`).
 *
 * The two kinds of id do not compare: a BSUID looks like `US.13491208655302741918`, a phone number
 * is digits. Key users by `(phoneNumberId, userIdOf(event))`.
 */
export function userIdOf(event: WebhookEvent): string | undefined {
  let party: Party;
  if (event.kind === "message") party = senderOf(event.message);
  else if (event.kind === "status") party = recipientOf(event.status);
  else if (event.kind === "echo") party = echoRecipientOf(event.echo);
  else return undefined;
  return party.userId ?? nonEmpty(event.contact?.user_id) ?? party.phone ??
    phoneNumber(event.contact?.wa_id);
}
