/**
 * Which events a destination receives: its filter, the zod schema that checks a declared one, and
 * {@linkcode matchesFilter} / {@linkcode destinationsFor}, which decide.
 *
 * A filter has up to five lists. The rule:
 *
 * - An absent or empty list allows everything.
 * - Within one list, any value matches; across lists, every list must allow the event.
 * - A list constrains only the events it describes, and lets every other event through:
 *   `kinds` every event; `fields` change and echo events (by the webhook field Meta sent); `messageTypes`
 *   message events (by the message `type` Meta sent); `statuses` status events (by
 *   `status.status`); `phoneNumberIds` every event that names a business number (messages and
 *   statuses always do; account-level changes and some unknown events do not, and pass).
 *   So `{ "messageTypes": ["text"] }` still lets statuses and changes through; to receive text
 *   messages only, add `"kinds": ["message"]`.
 * - `"unknown"` in `fields`, `messageTypes` or `statuses` matches what this service could not
 *   type: a change of a field it does not know, a message of a type it does not know, a status
 *   value outside `KNOWN_STATUS_VALUES`. A known name matches what Meta sent, even when the value
 *   failed its schema and the event carries it untyped (`originalField`, `originalType`): a
 *   destination that asked for text messages gets a text message whose shape changed.
 *
 * Values are checked against the lists the code has (`CHANGE_VALUE_SCHEMAS`, `MESSAGE_SCHEMAS`,
 * `KNOWN_STATUS_VALUES`), so a typo stops the start instead of silently matching nothing.
 *
 * @module
 */
import { describeValue } from "../refusal_text.ts";
import { z } from "zod";
import { CHANGE_VALUE_SCHEMAS } from "../events/field_schemas.ts";
import { MESSAGE_SCHEMAS } from "../events/message_schemas.ts";
import { KNOWN_STATUS_VALUES } from "../events/status_schemas.ts";
import type { KnownChangeField, KnownMessageType, WebhookEvent } from "../events/events.ts";
import type { Destination } from "./declarations.ts";

/** The value of the filter lists that matches what this service could not type. */
export const UNKNOWN_FILTER_VALUE = "unknown";

/** Event kinds a filter may name: the discriminants of `WebhookEvent`. */
export const EVENT_KINDS = ["message", "status", "echo", "change", "unknown"] as const;

/** A bound on each list: a filter longer than this is a mistake (every known type is fewer). */
export const MAX_FILTER_VALUES = 100;

/** Meta's phone number ids are about 15 digits; twice that leaves room and bounds the text. */
const MAX_PHONE_NUMBER_ID_DIGITS = 32;

/** The message types a filter may name: the known ones, and `"unknown"` for the rest. */
const _FILTER_MESSAGE_TYPES = [
  ...(Object.keys(MESSAGE_SCHEMAS) as KnownMessageType[]),
  UNKNOWN_FILTER_VALUE,
] as const;

/** The webhook fields a filter may name: the known ones, and `"unknown"` for the rest. */
const _FILTER_FIELDS = [
  ...(Object.keys(CHANGE_VALUE_SCHEMAS) as KnownChangeField[]),
  UNKNOWN_FILTER_VALUE,
] as const;

/** The status values a filter may name: the known ones, and `"unknown"` for the rest. */
const _FILTER_STATUSES = [...KNOWN_STATUS_VALUES, UNKNOWN_FILTER_VALUE] as const;

function _notPhoneNumberId(issue: { input?: unknown }): string {
  const expected = `a phone number id (up to ${MAX_PHONE_NUMBER_ID_DIGITS} digits)`;
  return `must be ${expected}, got ${describeValue(issue.input)}`;
}

/** An optional list of values, each one of `allowed`, with a refusal that names them all. */
function _listOf<const T extends readonly string[]>(allowed: T, what: string) {
  const expected = `${what} (${allowed.map((value) => `"${value}"`).join(", ")})`;
  return _boundedList(
    z.enum(allowed, { error: (issue) => `must be ${expected}, got ${describeValue(issue.input)}` }),
  );
}

/** An optional list of at most {@linkcode MAX_FILTER_VALUES} items. */
function _boundedList<T extends z.ZodType>(item: T) {
  return z.array(item, { error: (issue) => `must be a list, got ${describeValue(issue.input)}` })
    // Counted once it is a list: zod would count the characters of a text too.
    .pipe(
      z.array(z.custom<z.output<T>>()).max(
        MAX_FILTER_VALUES,
        `must have at most ${MAX_FILTER_VALUES} values`,
      ),
    )
    .optional();
}

const _filterLists = z.strictObject({
  kinds: _listOf(EVENT_KINDS, "an event kind"),
  fields: _listOf(_FILTER_FIELDS, 'a webhook field this service knows, or "unknown"'),
  messageTypes: _listOf(_FILTER_MESSAGE_TYPES, 'a message type this service knows, or "unknown"'),
  statuses: _listOf(_FILTER_STATUSES, 'a status value this service knows, or "unknown"'),
  phoneNumberIds: _boundedList(
    z.string({ error: _notPhoneNumberId })
      .regex(new RegExp(`^\\d{1,${MAX_PHONE_NUMBER_ID_DIGITS}}$`), { error: _notPhoneNumberId }),
  ),
}, {
  // Unknown lists keep their own issue, which names the keys.
  error: (issue) =>
    issue.code === "unrecognized_keys"
      ? undefined
      : `must be an object of lists, got ${describeValue(issue.input)}`,
});

/**
 * Which events a destination receives; see the module's documentation for the rule. Every list is
 * optional; absent or empty allows all:
 *
 * - `kinds`: `message`, `status`, `echo`, `change`, `unknown`
 * - `fields`: webhook fields of change and echo events (`account_update`, …), or `unknown`
 * - `messageTypes`: types of message events (`text`, `image`, …), or `unknown`
 * - `statuses`: values of status events (`sent`, `delivered`, `read`, `played`, `failed`), or `unknown`
 * - `phoneNumberIds`: business phone number ids, for events that name one
 */
export type DestinationFilter = z.output<typeof _filterLists>;

/**
 * A declared filter, as JSON gives it, each value checked; the {@linkcode DestinationFilter} it
 * makes has no empty list (they allow everything) and no value twice.
 */
export const destinationFilterSchema = _filterLists.transform(_withoutEmptyLists);

function _withoutEmptyLists(filter: DestinationFilter): DestinationFilter {
  const compact: Record<string, string[]> = {};
  for (const [list, values] of Object.entries(filter)) {
    if (values !== undefined && values.length > 0) compact[list] = [...new Set(values)];
  }
  return compact as DestinationFilter;
}

/**
 * Whether `event` passes `filter`: every list that describes the event allows it (see the module's
 * documentation). `undefined` or `{}` passes everything.
 */
export function matchesFilter(filter: DestinationFilter | undefined, event: WebhookEvent): boolean {
  if (filter === undefined) return true;
  if (!_allows(filter.kinds, event.kind)) return false;
  if (event.phoneNumberId !== undefined && !_allows(filter.phoneNumberIds, event.phoneNumberId)) {
    return false;
  }
  switch (event.kind) {
    case "message": {
      const { message } = event;
      return message.type === "unknown"
        ? _allowsUntyped(filter.messageTypes, _knownName(MESSAGE_SCHEMAS, message.originalType))
        : _allows(filter.messageTypes, message.type);
    }
    case "status": {
      const value = event.status.status;
      return (KNOWN_STATUS_VALUES as readonly string[]).includes(value)
        ? _allows(filter.statuses, value)
        : _allowsUntyped(filter.statuses, undefined);
    }
    case "echo":
      return _allows(filter.fields, event.field);
    case "change":
      return event.field === "unknown"
        ? _allowsUntyped(filter.fields, _knownName(CHANGE_VALUE_SCHEMAS, event.originalField))
        : _allows(filter.fields, event.field);
    case "unknown":
      return true;
  }
}

/**
 * The destinations whose filter `event` passes, in their declared order. Paused destinations are
 * included: their jobs are recorded and wait for the resume, so a pause loses nothing.
 */
export function destinationsFor(
  destinations: readonly Destination[],
  event: WebhookEvent,
): Destination[] {
  return destinations.filter((destination) => matchesFilter(destination.filter, event));
}

/** A list allows `value` when it is absent, empty, or holds it. */
function _allows(list: readonly string[] | undefined, value: string): boolean {
  return list === undefined || list.length === 0 || list.includes(value);
}

/**
 * A list allows an untyped value when it is absent or empty, holds `"unknown"`, or holds the name
 * Meta sent, when that name is one this service knows (a value that failed its schema).
 */
function _allowsUntyped(
  list: readonly string[] | undefined,
  knownName: string | undefined,
): boolean {
  if (list === undefined || list.length === 0 || list.includes(UNKNOWN_FILTER_VALUE)) return true;
  return knownName !== undefined && list.includes(knownName);
}

/** `name` when it is a key of `known`, else `undefined`. */
function _knownName(known: object, name: string | undefined): string | undefined {
  return name !== undefined && Object.hasOwn(known, name) ? name : undefined;
}
