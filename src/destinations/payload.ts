/**
 * The body of one delivery to an HTTP destination, shaped as Standard Webhooks recommends
 * (`{ "type", "timestamp", "data" }`), and the `webhook-id` a consumer deduplicates on.
 *
 * Event types are `whatsapp.` followed by dotted identifiers in `[a-z0-9_]`, drawn only from
 * closed lists, so that a consumer can route on them and none is longer than
 * {@linkcode MAX_EVENT_TYPE_CHARS}:
 * - `whatsapp.message.<type>`: an inbound message of a known `message.type` (`text`, `image`,
 *   `interactive`, …); `whatsapp.message.unknown` for a message this service could not type
 *   (`data.message.originalType` holds what Meta sent).
 * - `whatsapp.status.<value>`: a status of a documented value (`sent`, `delivered`, `read`,
 *   `played`, `failed`); `whatsapp.status.unknown` for any other value (`data.status.status`
 *   holds it).
 * - `whatsapp.change.<field>`: a change of a known webhook field (`account_update`,
 *   `message_template_status_update`, …); `whatsapp.change.unknown` for a field not known or a
 *   value that failed its schema (`data.originalField` holds the field).
 * - `whatsapp.echo.<field>`: a message the business sent from the WhatsApp Business app, by the
 *   field it came on (`smb_message_echoes`, `message_echoes`).
 * - `whatsapp.unknown`: what could not be read as any other event (`data.reason` says why).
 *
 * {@linkcode EVENT_TYPES} lists them all. A value outside these lists (a message type Meta adds
 * later, an event recorded by another version) maps to the `unknown` name of its kind, never to
 * a name built from text that came from outside.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { ECHO_FIELDS, type WebhookEvent } from "../events/events.ts";
import { CHANGE_VALUE_SCHEMAS } from "../events/field_schemas.ts";
import { MESSAGE_SCHEMAS } from "../events/message_schemas.ts";
import { KNOWN_STATUS_VALUES } from "../events/status_schemas.ts";

/** Prefix of every event type: says where the event comes from when one consumer gets several. */
export const EVENT_TYPE_PREFIX = "whatsapp";

/**
 * Longest event type: the longest today is 50 characters
 * (`whatsapp.change.message_template_components_update`); room for a field Meta adds later,
 * short enough for a column or a metric label.
 */
export const MAX_EVENT_TYPE_CHARS = 64;

/** Prefix of every `webhook-id`, as in the Standard Webhooks examples (`msg_…`). */
export const WEBHOOK_ID_PREFIX = "msg_";

/**
 * Base64url characters kept from the SHA-256 behind a `webhook-id`: 192 bits, so that two
 * (destination, event) pairs never share an id in practice, in a header of 36 characters.
 */
const WEBHOOK_ID_HASH_CHARS = 32;

/** The segment that names whatever a closed list does not hold. */
const UNKNOWN_SEGMENT = "unknown";

const _MESSAGE_TYPES: ReadonlySet<string> = new Set(Object.keys(MESSAGE_SCHEMAS));
const _STATUS_VALUES: ReadonlySet<string> = new Set(KNOWN_STATUS_VALUES);
const _CHANGE_FIELDS: ReadonlySet<string> = new Set(Object.keys(CHANGE_VALUE_SCHEMAS));

/**
 * Every event type {@linkcode eventTypeOf} can return, in a stable order: messages, statuses,
 * changes (each list ending with its `unknown`), echoes, then `whatsapp.unknown`.
 */
export const EVENT_TYPES: readonly string[] = Object.freeze([
  ...[..._MESSAGE_TYPES, UNKNOWN_SEGMENT].map((type) => `${EVENT_TYPE_PREFIX}.message.${type}`),
  ...[..._STATUS_VALUES, UNKNOWN_SEGMENT].map((value) => `${EVENT_TYPE_PREFIX}.status.${value}`),
  ...[..._CHANGE_FIELDS, UNKNOWN_SEGMENT].map((field) => `${EVENT_TYPE_PREFIX}.change.${field}`),
  ...ECHO_FIELDS.map((field) => `${EVENT_TYPE_PREFIX}.echo.${field}`),
  `${EVENT_TYPE_PREFIX}.${UNKNOWN_SEGMENT}`,
]);

/** The JSON body of one delivery, in this key order. */
export interface DeliveryPayload {
  /** The event's type, see {@linkcode eventTypeOf}. */
  type: string;
  /** When the service received the event (ISO 8601, UTC); the same on every retry and replay. */
  timestamp: string;
  /** The typed event, as handlers get it and as the admin API shows it. */
  data: WebhookEvent;
}

/**
 * The dotted type of `event`, one of {@linkcode EVENT_TYPES} (see the module documentation for
 * the scheme): `whatsapp.message.text`, `whatsapp.status.delivered`,
 * `whatsapp.change.account_update`, `whatsapp.unknown`, ….
 */
export function eventTypeOf(event: WebhookEvent): string {
  switch (event.kind) {
    case "message":
      return `${EVENT_TYPE_PREFIX}.message.${_listed(_MESSAGE_TYPES, event.message.type)}`;
    case "status":
      return `${EVENT_TYPE_PREFIX}.status.${_listed(_STATUS_VALUES, event.status.status)}`;
    case "change":
      return `${EVENT_TYPE_PREFIX}.change.${_listed(_CHANGE_FIELDS, event.field)}`;
    case "echo":
      return `${EVENT_TYPE_PREFIX}.echo.${event.field}`;
    default:
      return `${EVENT_TYPE_PREFIX}.${UNKNOWN_SEGMENT}`;
  }
}

/**
 * The body of the delivery of `event`: minified JSON of a {@linkcode DeliveryPayload}, the exact
 * text to sign and send. It depends only on the event and when it was received, so every retry
 * and replay sends the same bytes; only the `webhook-timestamp` header changes per attempt.
 *
 * @param receivedAtMs When the service received the event, in ms since the Unix epoch.
 * @throws {RangeError} when `receivedAtMs` is not a time a `Date` can hold.
 */
export function deliveryBody(event: WebhookEvent, receivedAtMs: number): string {
  const payload: DeliveryPayload = {
    type: eventTypeOf(event),
    timestamp: new Date(receivedAtMs).toISOString(),
    data: event,
  };
  return JSON.stringify(payload);
}

/**
 * The `webhook-id` of the delivery of event `eventId` to destination `destinationName`:
 * `msg_` and the first 32 characters of the base64url (no padding) SHA-256 of the UTF-8 text
 * `JSON.stringify([destinationName, eventId])`. The same for every attempt and every replay, so a
 * consumer deduplicates on it; different for another destination or another event (the JSON array
 * keeps the two names apart whatever characters they hold). Never contains a `.`, which the
 * signed text `id.timestamp.body` uses as its separator.
 */
export function webhookId(destinationName: string, eventId: string): string {
  const digest = createHash("sha256").update(JSON.stringify([destinationName, eventId]))
    .digest("base64url");
  return `${WEBHOOK_ID_PREFIX}${digest.slice(0, WEBHOOK_ID_HASH_CHARS)}`;
}

/** `value` when `list` holds it, else `unknown`. */
function _listed(list: ReadonlySet<string>, value: unknown): string {
  return typeof value === "string" && list.has(value) ? value : UNKNOWN_SEGMENT;
}
