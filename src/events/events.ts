/**
 * Turns a verified delivery into typed events, all of them: one per message, one per status, one
 * per other change, and an `unknown` event for whatever cannot be read. Never throws and never
 * drops a part of a delivery because its shape is new.
 *
 * Events come in delivery order: entry by entry, change by change; inside a `messages` change its
 * messages, then its statuses, then its change event if it has one; inside an echo field's change
 * its echoes (`echoes.ts`). The events' types are in `event_types.ts`, exported here too, with the
 * payload types they carry, so that handlers import the whole vocabulary from this module.
 *
 * @module
 */

import {
  type Contact,
  contactSchema,
  messagesEnvelopeSchema,
  UNIX_SECONDS_PATTERN,
  WHATSAPP_OBJECT,
} from "./envelope.ts";
import {
  changeEventId,
  deliveryTextEventId,
  messageEventId,
  statusEventId,
  unknownEventId,
} from "./event_ids.ts";
import { collectEchoes, type EchoField, isEchoField } from "./echoes.ts";
import { changeValueSchemaFor } from "./field_schemas.ts";
import { type InboundMessage, messageSchemaFor, type UnknownMessage } from "./message_schemas.ts";
import { InvalidJsonError, MAX_JSON_DEPTH, nestsDeeperThan, parseJsonText } from "./json_text.ts";
import { statusSchema } from "./status_schemas.ts";
import { overLimitReason, TOO_DEEP_REASON } from "./delivery_limits.ts";
import { type DriftFound, type DriftSummary, recordDrift } from "./drift.ts";
import { findContact, nonEmpty, recipientOf, senderOf } from "./parties.ts";
import type {
  ChangeEvent,
  ChangeEventBase,
  KnownChangeEvent,
  MessageEvent,
  StatusEvent,
  UnknownEvent,
  WebhookEvent,
} from "./event_types.ts";

/**
 * Texts at least this long are scanned for depth before `JSON.parse`: parsing the deepest text
 * this short takes about 20 ms, and the scan of a typical 5 KB delivery costs more than its parse.
 */
const DEPTH_SCAN_MIN_CHARS = 64 * 1024;

// The payload types that events carry, so that handlers import the whole vocabulary from here.
export type { Contact, WhatsAppError } from "./envelope.ts";
export { InvalidJsonError, MAX_JSON_DEPTH };
export { MAX_DELIVERY_ARRAY_ELEMENTS, MAX_DELIVERY_PARTS } from "./delivery_limits.ts";
export {
  countDrift,
  type DriftCount,
  type DriftSummary,
  MAX_DRIFT_SAMPLES,
  type SchemaDrift,
} from "./drift.ts";
export type { ChangeValue, KnownChangeField } from "./field_schemas.ts";
export { ECHO_FIELDS } from "./echoes.ts";
export { userIdOf } from "./parties.ts";
export type { Echo, EchoEvent, EchoField } from "./echoes.ts";
export type {
  InboundMessage,
  KnownMessage,
  KnownMessageType,
  UnknownMessage,
} from "./message_schemas.ts";
export type { KnownStatusValue, Status } from "./status_schemas.ts";

export type {
  ChangeEvent,
  ChangeEventBase,
  KnownChangeEvent,
  MessageEvent,
  StatusEvent,
  UnknownChangeEvent,
  UnknownEvent,
  WebhookEvent,
} from "./event_types.ts";

/** The events of a delivery, and the schema drift found on the way. */
export interface ParsedDelivery extends DriftSummary {
  /** At least one event for any payload; see {@linkcode parseDelivery}. */
  events: WebhookEvent[];
}

/**
 * Flattens a delivery (`JSON.parse` of the verified body) into events: exactly one per message,
 * one per status, one per other change, and one `unknown` event per part that cannot be read
 * (a foreign `object`, no `entry`, an entry without changes, …), so that any payload yields at
 * least one event. Never throws.
 *
 * The work is bounded: a delivery of more than {@linkcode MAX_DELIVERY_PARTS} parts, more than
 * {@linkcode MAX_DELIVERY_ARRAY_ELEMENTS} array elements or nested deeper than
 * {@linkcode MAX_JSON_DEPTH} is not walked but kept whole as one `unknown` event whose `reason`
 * says which limit it passed; drift past {@linkcode MAX_DRIFT_SAMPLES} is only counted.
 */
export function parseDelivery(payload: unknown): ParsedDelivery {
  const tooLarge = overLimitReason(payload);
  if (tooLarge !== undefined) return { events: [_unknownEvent(payload, tooLarge, {})], drift: [] };
  return _walkDelivery(payload);
}

/**
 * Turns the text of a verified delivery into events: {@linkcode parseDelivery} of its JSON, except
 * that a delivery kept whole gets its id from its text ({@linkcode deliveryTextEventId}), cheap
 * however large it is. A text nested deeper than {@linkcode MAX_JSON_DEPTH} is kept whole, as
 * text, in one `unknown` event (walking, hashing or storing the value could exhaust the call
 * stack): it is signed, so it is Meta's, and refusing it would only make Meta retry it for a week.
 *
 * @throws {InvalidJsonError} when the text is not JSON; the error quotes no part of it.
 */
export function parseDeliveryText(text: string): ParsedDelivery {
  const tooDeep = `${TOO_DEEP_REASON}; kept as text, unparsed`;
  // `JSON.parse` handles any depth, at about 0.7 µs a level: a large text is scanned for depth
  // first so that 3 MB of brackets cost a scan, not a second of parsing; a small one (most
  // deliveries are a few KB) is parsed at once, the scan costing more than the parse.
  if (text.length >= DEPTH_SCAN_MIN_CHARS && nestsDeeperThan(text, MAX_JSON_DEPTH)) {
    return _keptWhole(text, text, tooDeep);
  }
  const payload = parseJsonText(text);
  const tooLarge = overLimitReason(payload);
  if (tooLarge === TOO_DEEP_REASON) return _keptWhole(text, text, tooDeep);
  if (tooLarge !== undefined) return _keptWhole(payload, text, tooLarge);
  return _walkDelivery(payload);
}

function _walkDelivery(payload: unknown): ParsedDelivery {
  const found: _Found = { events: [], drift: [], moreDrift: new Map() };
  try {
    _collectDelivery(payload, found);
  } catch (error) {
    // Defence in depth: the walk reads JSON values only and is not expected to throw, but a
    // verified delivery must be kept whatever happens.
    const detail = error instanceof Error ? error.message : String(error);
    const reason = `Cannot read delivery: ${detail}`;
    found.events = [_unknownEvent(payload, reason, {})];
  }
  const parsed: ParsedDelivery = { events: found.events, drift: found.drift };
  if (found.moreDrift.size > 0) parsed.moreDrift = [...found.moreDrift.values()];
  return parsed;
}

/** One unknown event holding a whole delivery, `raw` as parsed (or its text), id from `text`. */
function _keptWhole(raw: unknown, text: string, reason: string): ParsedDelivery {
  return { events: [{ kind: "unknown", id: deliveryTextEventId(text), reason, raw }], drift: [] };
}

/** What the walk has found so far. */
interface _Found extends DriftFound {
  events: WebhookEvent[];
}

/** The parts of an entry every event of it carries. */
interface EntryContext {
  wabaId: string;
  /** `entry.time` as Meta sent it, for change ids. */
  time: unknown;
  timeMs: number | undefined;
}

/** The business number a `messages` change is for. */
interface Origin {
  wabaId: string;
  phoneNumberId: string;
  displayPhoneNumber?: string;
}

/** Where an unknown event was found, as far as known. */
interface Whereabouts {
  wabaId?: string;
  phoneNumberId?: string;
  field?: string;
}

function _collectDelivery(payload: unknown, parsed: _Found): void {
  if (!_isRecord(payload)) {
    parsed.events.push(_unknownEvent(payload, "Delivery is not a JSON object", {}));
    return;
  }
  if (payload.object !== WHATSAPP_OBJECT) {
    const reason = typeof payload.object === "string"
      ? `Delivery is for object "${payload.object}", not "${WHATSAPP_OBJECT}"`
      : `Delivery has no "object"`;
    parsed.events.push(_unknownEvent(payload, reason, {}));
    return;
  }
  const entries = payload.entry;
  if (!Array.isArray(entries) || entries.length === 0) {
    parsed.events.push(_unknownEvent(payload, "Delivery has no entries", {}));
    return;
  }
  for (let i = 0; i < entries.length; i++) _collectEntry(entries[i], `entry[${i}]`, parsed);
}

function _collectEntry(entry: unknown, path: string, parsed: _Found): void {
  if (!_isRecord(entry) || typeof entry.id !== "string" || entry.id === "") {
    parsed.events.push(_unknownEvent(entry, `Entry has no "id"`, {}));
    return;
  }
  const wabaId = entry.id;
  const changes = entry.changes;
  if (!Array.isArray(changes) || changes.length === 0) {
    parsed.events.push(_unknownEvent(entry, "Entry has no changes", { wabaId }));
    return;
  }
  const context: EntryContext = { wabaId, time: entry.time, timeMs: _secondsToMs(entry.time) };
  for (let j = 0; j < changes.length; j++) {
    const change = changes[j];
    const changePath = `${path}.changes[${j}]`;
    if (!_isRecord(change) || typeof change.field !== "string") {
      parsed.events.push(_unknownEvent(change, `Change has no "field"`, { wabaId }));
    } else if (change.field === "messages") {
      _collectMessagesChange(change.value, context, changePath, parsed);
    } else if (isEchoField(change.field)) {
      _collectEchoesChange(change.field, change.value, context, changePath, parsed);
    } else {
      parsed.events.push(_changeEvent(change.field, change.value, context, changePath, parsed));
    }
  }
}

function _collectMessagesChange(
  value: unknown,
  entry: EntryContext,
  changePath: string,
  parsed: _Found,
): void {
  const envelope = messagesEnvelopeSchema.safeParse(value);
  if (!envelope.success) {
    // The value of a known field failed its schema: one change event keeps it whole.
    parsed.events.push(_changeEvent("messages", value, entry, changePath, parsed));
    return;
  }
  const { metadata, contacts = [], messages = [], statuses = [] } = envelope.data;
  const origin: Origin = metadata.display_phone_number === undefined
    ? { wabaId: entry.wabaId, phoneNumberId: metadata.phone_number_id }
    : {
      wabaId: entry.wabaId,
      phoneNumberId: metadata.phone_number_id,
      displayPhoneNumber: metadata.display_phone_number,
    };
  const valuePath = `${changePath}.value`;
  const knownContacts = _validContacts(contacts, `${valuePath}.contacts`, parsed);
  for (let k = 0; k < messages.length; k++) {
    const path = `${valuePath}.messages[${k}]`;
    parsed.events.push(_messageEvent(messages[k], origin, knownContacts, path, parsed));
  }
  for (let k = 0; k < statuses.length; k++) {
    const path = `${valuePath}.statuses[${k}]`;
    parsed.events.push(_statusEvent(statuses[k], origin, knownContacts, path, parsed));
  }
  const hasErrors = Array.isArray(envelope.data.errors) && envelope.data.errors.length > 0;
  if ((messages.length === 0 && statuses.length === 0) || hasErrors) {
    parsed.events.push(_changeEvent("messages", value, entry, changePath, parsed));
  }
}

function _collectEchoesChange(
  field: EchoField,
  value: unknown,
  entry: EntryContext,
  changePath: string,
  parsed: _Found,
): void {
  const echoes = collectEchoes(value, { field, wabaId: entry.wabaId, changePath }, parsed);
  if (echoes === undefined) {
    // No business number or no echo: one change event keeps the value whole.
    parsed.events.push(_changeEvent(field, value, entry, changePath, parsed));
    return;
  }
  for (const echo of echoes) {
    if (!("unreadable" in echo)) {
      parsed.events.push(echo);
      continue;
    }
    const { raw, reason, phoneNumberId } = echo.unreadable;
    parsed.events.push(_unknownEvent(raw, reason, { wabaId: entry.wabaId, phoneNumberId, field }));
  }
}

function _messageEvent(
  raw: unknown,
  origin: Origin,
  contacts: readonly Contact[],
  path: string,
  found: _Found,
): MessageEvent | UnknownEvent {
  const message = _parseMessage(raw, path, found);
  const wamid = _isRecord(raw) && typeof raw.id === "string" && raw.id !== "" ? raw.id : undefined;
  const timestampMs = _isRecord(raw) ? _secondsToMs(raw.timestamp) : undefined;
  if (wamid === undefined || timestampMs === undefined) {
    return _unknownEvent(raw, `Message has no "id" or no "timestamp"`, {
      wabaId: origin.wabaId,
      phoneNumberId: origin.phoneNumberId,
      field: "messages",
    });
  }
  const contact = findContact(contacts, senderOf(message));
  return {
    kind: "message",
    id: messageEventId(wamid),
    ...origin,
    timestampMs,
    ...(contact === undefined ? {} : { contact }),
    message,
  };
}

function _parseMessage(raw: unknown, path: string, found: _Found): InboundMessage {
  const type = _isRecord(raw) && typeof raw.type === "string" ? raw.type : undefined;
  const schema = type === undefined ? undefined : messageSchemaFor(type);
  if (type === undefined || schema === undefined) return _unknownMessage(type, raw);
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  recordDrift(found, result.error, { field: "messages", type, path });
  return _unknownMessage(type, raw);
}

function _unknownMessage(type: string | undefined, raw: unknown): UnknownMessage {
  return type === undefined
    ? { type: "unknown", raw }
    : { type: "unknown", originalType: type, raw };
}

function _statusEvent(
  raw: unknown,
  origin: Origin,
  contacts: readonly Contact[],
  path: string,
  found: _Found,
): StatusEvent | UnknownEvent {
  const result = statusSchema.safeParse(raw);
  if (!result.success) {
    recordDrift(found, result.error, { field: "messages", type: "status", path });
    return _unknownEvent(raw, "Status does not match its schema", {
      wabaId: origin.wabaId,
      phoneNumberId: origin.phoneNumberId,
      field: "messages",
    });
  }
  const status = result.data;
  const timestampSeconds = Number(status.timestamp);
  const contact = findContact(contacts, recipientOf(status));
  return {
    kind: "status",
    id: statusEventId(status.id, status.status, timestampSeconds),
    ...origin,
    timestampMs: timestampSeconds * 1000,
    ...(contact === undefined ? {} : { contact }),
    status,
  };
}

function _changeEvent(
  field: string,
  value: unknown,
  entry: EntryContext,
  changePath: string,
  parsed: _Found,
): ChangeEvent {
  const base: ChangeEventBase = {
    kind: "change",
    id: changeEventId(entry.wabaId, field, { entryTime: entry.time, value }),
    wabaId: entry.wabaId,
    ...(entry.timeMs === undefined ? {} : { timestampMs: entry.timeMs }),
    ..._businessNumberOf(value),
  };
  const schema = changeValueSchemaFor(field);
  if (schema !== undefined) {
    const result = schema.safeParse(value);
    // The cast restates what CHANGE_VALUE_SCHEMAS guarantees: `field` chose the schema that typed
    // `value`; TypeScript cannot follow that through a Map lookup.
    if (result.success) return { ...base, field, value: result.data } as KnownChangeEvent;
    recordDrift(parsed, result.error, { field, type: "value", path: `${changePath}.value` });
  }
  return { ...base, field: "unknown", originalField: field, value };
}

function _unknownEvent(raw: unknown, reason: string, whereabouts: Whereabouts): UnknownEvent {
  return {
    kind: "unknown",
    id: unknownEventId(raw, whereabouts.wabaId),
    reason,
    raw: raw === undefined ? null : raw,
    ...whereabouts,
  };
}

function _validContacts(
  contacts: readonly unknown[],
  path: string,
  found: _Found,
): Contact[] {
  const valid: Contact[] = [];
  for (let c = 0; c < contacts.length; c++) {
    const result = contactSchema.safeParse(contacts[c]);
    if (result.success) {
      valid.push(result.data);
    } else {
      recordDrift(found, result.error, {
        field: "messages",
        type: "contact",
        path: `${path}[${c}]`,
      });
    }
  }
  return valid;
}

function _businessNumberOf(
  value: unknown,
): { phoneNumberId?: string; displayPhoneNumber?: string } {
  if (!_isRecord(value)) return {};
  const metadata = _isRecord(value.metadata) ? value.metadata : {};
  const phoneNumberId = nonEmpty(metadata.phone_number_id);
  const displayPhoneNumber = nonEmpty(metadata.display_phone_number) ??
    nonEmpty(value.display_phone_number);
  return {
    ...(phoneNumberId === undefined ? {} : { phoneNumberId }),
    ...(displayPhoneNumber === undefined ? {} : { displayPhoneNumber }),
  };
}

/** Unix seconds (digits or an integer) to milliseconds; `undefined` for anything else. */
function _secondsToMs(value: unknown): number | undefined {
  if (typeof value === "number") {
    return Number.isSafeInteger(value) && value >= 0 ? value * 1000 : undefined;
  }
  if (typeof value === "string" && UNIX_SECONDS_PATTERN.test(value)) return Number(value) * 1000;
  return undefined;
}

function _isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
