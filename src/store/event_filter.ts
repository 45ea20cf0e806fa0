/**
 * The event log's filters on what an event says (rather than on its record): the webhook field of
 * a change, the type of a message, the business number and the other party. One definition for
 * every store, so the Deno KV and PostgreSQL stores list the same events for the same options.
 *
 * @module
 */
import type { WebhookEvent } from "../events/events.ts";

/** What an event says that the event log filters on; each absent when the event has none. */
export interface EventFacts {
  /** The webhook field: a change's `field` (`originalField` for an unknown one), an echo's. */
  field?: string;
  /** A message's `type` (`text`, `image`, …), an echo's message type, a status's value. */
  type?: string;
  /** The business number's `phone_number_id`. */
  businessNumber?: string;
  /** The other party: a message's sender, a status's recipient, an echo's recipient. */
  party?: string;
}

/** The filters of `ListEventsOptions` this module decides. */
export interface EventFactFilter {
  field?: string;
  type?: string;
  businessNumber?: string;
  party?: string;
}

/** Reads the facts of `event`; never throws, whatever an unknown event holds. */
export function eventFacts(event: WebhookEvent): EventFacts {
  const facts: EventFacts = {};
  const set = (name: keyof EventFacts, value: unknown): void => {
    if (typeof value === "string" && value !== "") facts[name] = value;
  };
  switch (event.kind) {
    case "message":
      set("type", event.message.type);
      set("businessNumber", event.phoneNumberId);
      set("party", (event.message as { from?: unknown }).from ?? event.contact?.wa_id);
      break;
    case "status":
      set("type", event.status.status);
      set("businessNumber", event.phoneNumberId);
      set("party", event.status.recipient_id);
      break;
    case "echo":
      set("field", event.field);
      set("type", (event.echo as { type?: unknown }).type);
      set("businessNumber", event.phoneNumberId);
      set("party", (event.echo as { to?: unknown }).to);
      break;
    case "change":
      set("field", event.field === "unknown" ? event.originalField : event.field);
      set("businessNumber", event.phoneNumberId);
      break;
    case "unknown":
      set("field", event.field);
      set("businessNumber", event.phoneNumberId);
      break;
  }
  return facts;
}

/** Whether `event` passes every filter that is set (an exact, case-sensitive comparison each). */
export function matchesFacts(event: WebhookEvent, filter: EventFactFilter): boolean {
  if (
    filter.field === undefined && filter.type === undefined &&
    filter.businessNumber === undefined && filter.party === undefined
  ) return true;
  const facts = eventFacts(event);
  return (filter.field === undefined || facts.field === filter.field) &&
    (filter.type === undefined || facts.type === filter.type) &&
    (filter.businessNumber === undefined || facts.businessNumber === filter.businessNumber) &&
    (filter.party === undefined || facts.party === filter.party);
}

/** Whether any filter of `filter` needs the event itself (not only its record). */
export function needsEvent(filter: EventFactFilter): boolean {
  return filter.field !== undefined || filter.type !== undefined ||
    filter.businessNumber !== undefined || filter.party !== undefined;
}
