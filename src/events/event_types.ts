/**
 * What an event is: every kind a delivery yields (`message`, `status`, `echo`, `change`,
 * `unknown`), discriminated on `kind`, as `events.ts` makes them and handlers, stores and
 * destinations read them. Plain JSON.
 *
 * @module
 */
import type { Contact } from "./envelope.ts";
import type { EchoEvent } from "./echoes.ts";
import type { ChangeValue, KnownChangeField } from "./field_schemas.ts";
import type { InboundMessage } from "./message_schemas.ts";
import type { Status } from "./status_schemas.ts";

/** An inbound message, with the business it was sent to and the sender's contact. */
export interface MessageEvent {
  /** Discriminant of {@linkcode WebhookEvent}. */
  kind: "message";
  /** `message:<wamid>`: the same for every retry and every copy of the message. */
  id: string;
  /** The WABA id (`entry.id`). */
  wabaId: string;
  /** The business number the message was sent to: the number to answer from. */
  phoneNumberId: string;
  /** The business number as digits, when Meta sent it. */
  displayPhoneNumber?: string;
  /** The message's `timestamp` (when Meta sent the webhook), in ms since the Unix epoch. */
  timestampMs: number;
  /**
   * The sender's entry of `contacts[]`, matched on `user_id`/`wa_id` (never on position); absent
   * when Meta sent none, as for system messages.
   */
  contact?: Contact;
  /** The message, discriminated on `type`; `type: "unknown"` keeps what could not be typed. */
  message: InboundMessage;
}

/** A status update of a message the business sent. */
export interface StatusEvent {
  /** Discriminant of {@linkcode WebhookEvent}. */
  kind: "status";
  /** `status:<wamid>:<status>:<unix seconds>`. */
  id: string;
  /** The WABA id (`entry.id`). */
  wabaId: string;
  /** The business number that sent the message. */
  phoneNumberId: string;
  /** The business number as digits, when Meta sent it. */
  displayPhoneNumber?: string;
  /** The status's `timestamp`, in milliseconds since the Unix epoch. */
  timestampMs: number;
  /** The recipient's entry of `contacts[]`, when Meta sent one (often lean or missing). */
  contact?: Contact;
  /** The status as Meta sent it; `status.status` is any string, see `KNOWN_STATUS_VALUES`. */
  status: Status;
}

/** What every change event carries besides its field and value. */
export interface ChangeEventBase {
  /** Discriminant of {@linkcode WebhookEvent}. */
  kind: "change";
  /**
   * `change:<field>:<hash>`, the hash of the WABA id, the field, `entry.time` as sent (`null`
   * when absent) and the value (keys sorted): the same for Meta's retries, new for a repeat.
   */
  id: string;
  /** The WABA id (`entry.id`). */
  wabaId: string;
  /** `entry.time` in milliseconds, when Meta sent it (management fields do). */
  timestampMs?: number;
  /** `value.metadata.phone_number_id`, for messaging-style fields. */
  phoneNumberId?: string;
  /** `value.metadata.display_phone_number` or `value.display_phone_number`, when present. */
  displayPhoneNumber?: string;
}

/** A change of a known field whose value matched its schema, discriminated on `field`. */
export type KnownChangeEvent = {
  [F in KnownChangeField]: ChangeEventBase & { field: F; value: ChangeValue<F> };
}[KnownChangeField];

/**
 * A change of a field this service does not know, or of a known field whose value failed its
 * schema (then a {@linkcode SchemaDrift} says why): `originalField` is the field Meta sent and
 * `value` the value as received.
 */
export interface UnknownChangeEvent extends ChangeEventBase {
  /** Discriminant of {@linkcode ChangeEvent}: not a known field, or a value that failed. */
  field: "unknown";
  /** The `field` Meta sent. */
  originalField: string;
  /** The `value` as received. */
  value: unknown;
}

/**
 * A change that is neither a message, a status nor an echo: template, quality and account
 * updates, calls, history, …, one event per change (and an echo field's change that holds no
 * readable echo); and a `messages` change that holds no message and no
 * status, or holds `errors[]`.
 */
export type ChangeEvent = KnownChangeEvent | UnknownChangeEvent;

/**
 * Something that could not be read as any other event: a foreign or malformed delivery, an entry
 * or change without its keys, a message without `id` or `timestamp`, a status that failed its
 * schema. Kept whole in `raw` so that nothing is lost; `reason` says what was wrong.
 */
export interface UnknownEvent {
  /** Discriminant of {@linkcode WebhookEvent}. */
  kind: "unknown";
  /** `unknown:<hash>`, the hash of `raw` and of the WABA id when known. */
  id: string;
  /** Why this is not another kind of event, for the log line. */
  reason: string;
  /** The part of the delivery that could not be read, as received (`null` for no payload). */
  raw: unknown;
  /** The WABA id, when the entry had one. */
  wabaId?: string;
  /** The business number, when the change had one. */
  phoneNumberId?: string;
  /** The webhook field, when the change named one. */
  field?: string;
}

/** Every event a delivery yields, discriminated on `kind`. Plain JSON: stored and logged as is. */
export type WebhookEvent = MessageEvent | StatusEvent | EchoEvent | ChangeEvent | UnknownEvent;
