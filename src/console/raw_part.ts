/**
 * The part of Meta's delivery an event came from, as Meta sent it. The store keeps the typed
 * event, not the delivery, but each kind of event keeps Meta's own object: a message's item of
 * `messages[]` (or, for a type that could not be typed, the item as received), a status's item of
 * `statuses[]`, an echo's item, a change's `field` and `value`, an unknown event's `raw`.
 *
 * @module
 */
import type { WebhookEvent } from "../events/events.ts";

/** A part of a delivery, and where in the delivery it sat. */
export interface RawPart {
  /** Where it sat, as a person reads Meta's payload: `value.messages[]`, `changes[]`, … */
  path: string;
  /** The part as Meta sent it (parsed JSON). */
  part: unknown;
}

/** The part of the delivery `event` came from, as Meta sent it. */
export function rawPartOf(event: WebhookEvent): RawPart {
  switch (event.kind) {
    case "message":
      return {
        path: "entry[].changes[].value.messages[]",
        part: event.message.type === "unknown" ? event.message.raw : event.message,
      };
    case "status":
      return { path: "entry[].changes[].value.statuses[]", part: event.status };
    case "echo":
      return { path: `entry[].changes[] (field "${event.field}"): the echo`, part: event.echo };
    case "change":
      return {
        path: "entry[].changes[]",
        part: {
          field: event.field === "unknown" ? event.originalField : event.field,
          value: event.value,
        },
      };
    case "unknown":
      return { path: "the part that could not be read", part: event.raw };
  }
}
