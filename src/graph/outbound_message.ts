/**
 * What an outbound message is, as the Cloud API's send reference has it: who it goes to (a phone
 * number in `to`, or a business-scoped user id in `recipient`) and its content by `type`. The
 * client (`client.ts`) sends these; handlers and the conversation window build and read them.
 *
 * @module
 */

/** A business-scoped user id: country code, optional `ENT` (parent BSUID), alphanumerics. */
const BSUID_PATTERN = /^[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}$/;

/** Whether `value` has the format of a business-scoped user id (`US.13491208655302741918`). */
export function isBusinessScopedUserId(value: string): boolean {
  return BSUID_PATTERN.test(value);
}

/** What a webhook tells about a user: a phone number (`wa_id`/`from`), a BSUID, or both. */
export interface RecipientIdentity {
  /** The phone number (`wa_id`, `from`); absent when Meta withholds it. */
  phone?: string | undefined;
  /** The business-scoped user id (`user_id`, `from_user_id`). */
  userId?: string | undefined;
}

/** Who a message goes to: a phone number in `to`, or a BSUID in `recipient` (reference §8.2). */
export type RecipientFields = { to: string; recipient?: never } | {
  recipient: string;
  to?: never;
};

/**
 * Builds the recipient fields of a message. The phone number wins when both are known: every
 * message type accepts `to`, while some refuse a BSUID (131062, e.g. authentication templates),
 * and statuses of sends to a phone carry `recipient_id` as before. The BSUID goes in `recipient`
 * (a BSUID put in `to` is dropped silently). A string is taken as a BSUID when it has the BSUID
 * format, else as a phone number.
 *
 * @throws {TypeError} when neither a phone number nor a BSUID is given.
 */
export function recipientFields(who: string | RecipientIdentity): RecipientFields {
  if (typeof who === "string") {
    return isBusinessScopedUserId(who) ? { recipient: who } : { to: who };
  }
  if (who.phone) return { to: who.phone };
  if (who.userId) return { recipient: who.userId };
  throw new TypeError("Cannot address a message: the recipient has neither a phone nor a user id");
}

/** A media object: an uploaded media id or a public link. */
export type OutboundMedia = ({ id: string; link?: never } | { link: string; id?: never }) & {
  caption?: string;
  filename?: string;
};

/** The content of an outbound message, by `type`, as Meta's send reference names it. */
export type OutboundContent =
  | { type: "text"; text: { body: string; preview_url?: boolean } }
  | { type: "image"; image: OutboundMedia }
  | { type: "audio"; audio: OutboundMedia }
  | { type: "video"; video: OutboundMedia }
  | { type: "document"; document: OutboundMedia }
  | { type: "sticker"; sticker: OutboundMedia }
  | { type: "reaction"; reaction: { message_id: string; emoji: string } }
  | {
    type: "location";
    location: { latitude: number; longitude: number; name?: string; address?: string };
  }
  | { type: "contacts"; contacts: Record<string, unknown>[] }
  | { type: "interactive"; interactive: Record<string, unknown> }
  | {
    type: "template";
    template: { name: string; language: { code: string }; components?: unknown[] };
  };

/** Any outbound message body except `messaging_product`, which the client adds. */
export type OutboundMessage = RecipientFields & OutboundContent & {
  /** `individual` (default at Meta) or `group`, with `to` a group id. */
  recipient_type?: "individual" | "group";
  /** Makes the message a reply that quotes `message_id`. */
  context?: { message_id: string };
  /** Comes back in the status webhooks of this message. */
  biz_opaque_callback_data?: string;
};
