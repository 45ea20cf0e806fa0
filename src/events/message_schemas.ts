/**
 * Zod schemas for inbound messages (`value.messages[]` of a `messages` change), one per `type`.
 *
 * Each schema validates a whole message: the fields every message shares (`id`, `timestamp`, the
 * sender, `context`, `referral`, …) plus the payload under the key named by `type`. Objects are
 * loose, so keys Meta adds later pass through. A message whose `type` is not listed here, or whose
 * payload fails its schema, becomes an {@linkcode UnknownMessage} in `events.ts`, never an error.
 *
 * @module
 */

import { z } from "zod";
import { unixSecondsSchema, whatsAppErrorSchema } from "./envelope.ts";

/** A number Meta sends as a JSON number in some payloads and as a string in others. */
const numberOrStringSchema = z.union([z.number(), z.string()]);

/** `context`: what the message replies to, whether it was forwarded, which product it asks about. */
export const messageContextSchema = z.looseObject({
  /** Sender of the quoted message (often your business number; do not route on it). */
  from: z.string().optional(),
  /** The `wamid` of the quoted message, or of the message that carried the tapped button. */
  id: z.string().optional(),
  /** Forwarded 5 times or fewer. */
  forwarded: z.boolean().optional(),
  /** Forwarded more than 5 times. */
  frequently_forwarded: z.boolean().optional(),
  /** The product the user asked about ("Message business" on a catalogue item). */
  referred_product: z.looseObject({
    catalog_id: z.string(),
    product_retailer_id: z.string(),
  }).optional(),
});

/** `referral`: the click-to-WhatsApp ad or post the conversation started from; on any type. */
export const referralSchema = z.looseObject({
  source_url: z.string().optional(),
  source_id: z.string().optional(),
  source_type: z.string().optional(),
  headline: z.string().optional(),
  body: z.string().optional(),
  media_type: z.string().optional(),
  image_url: z.string().optional(),
  video_url: z.string().optional(),
  thumbnail_url: z.string().optional(),
  /** Click id; omitted for ads shown in WhatsApp Status. */
  ctwa_clid: z.string().optional(),
  welcome_message: z.looseObject({ text: z.string().optional() }).optional(),
});

/**
 * Fields every message shares. `from` (the phone number) may be absent for users with a username;
 * `from_user_id` (the BSUID) is then the only sender id.
 */
const messageCommonShape = {
  id: z.string().min(1),
  timestamp: unixSecondsSchema,
  from: z.string().optional(),
  from_user_id: z.string().optional(),
  from_parent_user_id: z.string().optional(),
  group_id: z.string().optional(),
  context: messageContextSchema.optional(),
  referral: referralSchema.optional(),
  errors: z.array(whatsAppErrorSchema).optional(),
};

/** Fields of every media object; `url` is being rolled out gradually, do not depend on it. */
const mediaShape = {
  id: z.string(),
  mime_type: z.string(),
  sha256: z.string(),
  url: z.string().optional(),
};

/** `type: "text"`. */
export const textMessageSchema = z.looseObject({
  ...messageCommonShape,
  type: z.literal("text"),
  text: z.looseObject({ body: z.string() }),
});

/** `type: "image"`. */
export const imageMessageSchema = z.looseObject({
  ...messageCommonShape,
  type: z.literal("image"),
  image: z.looseObject({ ...mediaShape, caption: z.string().optional() }),
});

/** `type: "audio"`; `audio.voice` is true for a recorded voice note. */
export const audioMessageSchema = z.looseObject({
  ...messageCommonShape,
  type: z.literal("audio"),
  audio: z.looseObject({ ...mediaShape, voice: z.boolean().optional() }),
});

/** `type: "video"`. */
export const videoMessageSchema = z.looseObject({
  ...messageCommonShape,
  type: z.literal("video"),
  video: z.looseObject({ ...mediaShape, caption: z.string().optional() }),
});

/** `type: "document"`. */
export const documentMessageSchema = z.looseObject({
  ...messageCommonShape,
  type: z.literal("document"),
  document: z.looseObject({
    ...mediaShape,
    caption: z.string().optional(),
    filename: z.string().optional(),
  }),
});

/** `type: "sticker"`. */
export const stickerMessageSchema = z.looseObject({
  ...messageCommonShape,
  type: z.literal("sticker"),
  sticker: z.looseObject({ ...mediaShape, animated: z.boolean().optional() }),
});

/** `type: "location"`; coordinates are numbers in Meta's examples and strings in some typings. */
export const locationMessageSchema = z.looseObject({
  ...messageCommonShape,
  type: z.literal("location"),
  location: z.looseObject({
    latitude: numberOrStringSchema,
    longitude: numberOrStringSchema,
    name: z.string().optional(),
    address: z.string().optional(),
    url: z.string().optional(),
  }),
});

/** One shared contact card; devices omit many of its properties. */
export const sharedContactSchema = z.looseObject({
  name: z.looseObject({
    formatted_name: z.string(),
    first_name: z.string().optional(),
    last_name: z.string().optional(),
    middle_name: z.string().optional(),
    prefix: z.string().optional(),
    suffix: z.string().optional(),
  }),
  phones: z.array(z.looseObject({
    phone: z.string().optional(),
    wa_id: z.string().optional(),
    type: z.string().optional(),
  })).optional(),
  emails: z.array(z.looseObject({ email: z.string().optional(), type: z.string().optional() }))
    .optional(),
  addresses: z.array(z.looseObject({
    street: z.string().optional(),
    city: z.string().optional(),
    state: z.string().optional(),
    zip: z.string().optional(),
    country: z.string().optional(),
    country_code: z.string().optional(),
    type: z.string().optional(),
  })).optional(),
  org: z.looseObject({
    company: z.string().optional(),
    department: z.string().optional(),
    title: z.string().optional(),
  }).optional(),
  urls: z.array(z.looseObject({ url: z.string().optional(), type: z.string().optional() }))
    .optional(),
  birthday: z.string().optional(),
});

/** `type: "contacts"`: contact cards the user shared. */
export const contactsMessageSchema = z.looseObject({
  ...messageCommonShape,
  type: z.literal("contacts"),
  contacts: z.array(sharedContactSchema),
});

/**
 * The `interactive` object, discriminated on its own `type`: a reply button, a list row, a
 * completed Flow or address form (`nfm_reply`, whose `response_json` is a JSON *string*), or an
 * answer to a call-permission request.
 */
export const interactiveReplySchema = z.discriminatedUnion("type", [
  z.looseObject({
    type: z.literal("button_reply"),
    button_reply: z.looseObject({ id: z.string(), title: z.string() }),
  }),
  z.looseObject({
    type: z.literal("list_reply"),
    list_reply: z.looseObject({
      id: z.string(),
      title: z.string(),
      description: z.string().optional(),
    }),
  }),
  z.looseObject({
    type: z.literal("nfm_reply"),
    nfm_reply: z.looseObject({
      name: z.string().optional(),
      body: z.string().optional(),
      response_json: z.string(),
    }),
  }),
  z.looseObject({
    type: z.literal("call_permission_reply"),
    call_permission_reply: z.looseObject({
      response: z.string(),
      expiration_timestamp: unixSecondsSchema.optional(),
      response_source: z.string().optional(),
      is_permanent: z.boolean().optional(),
    }),
  }),
]);

/** `type: "interactive"`: the user answered an interactive message the business sent. */
export const interactiveMessageSchema = z.looseObject({
  ...messageCommonShape,
  type: z.literal("interactive"),
  interactive: interactiveReplySchema,
});

/** `type: "button"`: a tap on a template's quick-reply button; `context.id` is the template. */
export const buttonMessageSchema = z.looseObject({
  ...messageCommonShape,
  type: z.literal("button"),
  button: z.looseObject({ payload: z.string().optional(), text: z.string() }),
});

/** `type: "reaction"`; an empty or missing `emoji` means the reaction was removed. */
export const reactionMessageSchema = z.looseObject({
  ...messageCommonShape,
  type: z.literal("reaction"),
  reaction: z.looseObject({ message_id: z.string(), emoji: z.string().optional() }),
});

/** `type: "order"`: a cart sent from a catalogue. */
export const orderMessageSchema = z.looseObject({
  ...messageCommonShape,
  type: z.literal("order"),
  order: z.looseObject({
    catalog_id: z.string(),
    text: z.string().optional(),
    product_items: z.array(z.looseObject({
      product_retailer_id: z.string(),
      quantity: numberOrStringSchema,
      item_price: numberOrStringSchema,
      currency: z.string(),
    })),
  }),
});

/**
 * `type: "system"`: the user changed number (`user_changed_number`) or BSUID
 * (`user_changed_user_id`); older payloads say `customer_changed_number`, `customer_identity_changed`
 * and carry `customer` / `new_wa_id`. System messages come with no `contacts[]`.
 */
export const systemMessageSchema = z.looseObject({
  ...messageCommonShape,
  type: z.literal("system"),
  system: z.looseObject({
    type: z.string(),
    body: z.string().optional(),
    wa_id: z.string().optional(),
    user_id: z.string().optional(),
    parent_user_id: z.string().optional(),
    previous_user_id: z.string().optional(),
    previous_parent_user_id: z.string().optional(),
    customer: z.string().optional(),
    new_wa_id: z.string().optional(),
  }),
});

/** `type: "request_welcome"`: the user opened the chat for the first time; no payload object. */
export const requestWelcomeMessageSchema = z.looseObject({
  ...messageCommonShape,
  type: z.literal("request_welcome"),
});

/**
 * `type: "unsupported"`: a type Cloud API does not deliver (`unsupported.type` names it) or a
 * message that is unavailable; `errors[]` says which (codes 131051, 131060).
 */
export const unsupportedMessageSchema = z.looseObject({
  ...messageCommonShape,
  type: z.literal("unsupported"),
  unsupported: z.looseObject({ type: z.string().optional() }).optional(),
});

/** `type: "edit"`: the user edited a message (coexistence numbers only); the new content inside. */
export const editMessageSchema = z.looseObject({
  ...messageCommonShape,
  type: z.literal("edit"),
  edit: z.looseObject({
    original_message_id: z.string(),
    message: z.looseObject({ type: z.string() }),
  }),
});

/** `type: "revoke"`: the user deleted a message (coexistence numbers only). */
export const revokeMessageSchema = z.looseObject({
  ...messageCommonShape,
  type: z.literal("revoke"),
  revoke: z.looseObject({ original_message_id: z.string() }),
});

/** The schema of each known message `type`, keyed by that type. */
export const MESSAGE_SCHEMAS = {
  text: textMessageSchema,
  image: imageMessageSchema,
  audio: audioMessageSchema,
  video: videoMessageSchema,
  document: documentMessageSchema,
  sticker: stickerMessageSchema,
  location: locationMessageSchema,
  contacts: contactsMessageSchema,
  interactive: interactiveMessageSchema,
  button: buttonMessageSchema,
  reaction: reactionMessageSchema,
  order: orderMessageSchema,
  system: systemMessageSchema,
  request_welcome: requestWelcomeMessageSchema,
  unsupported: unsupportedMessageSchema,
  edit: editMessageSchema,
  revoke: revokeMessageSchema,
} as const;

/** A message `type` this service knows the payload of. */
export type KnownMessageType = keyof typeof MESSAGE_SCHEMAS;

/** A validated message of a known type, discriminated on `type`. */
export type KnownMessage = {
  [T in KnownMessageType]: z.output<(typeof MESSAGE_SCHEMAS)[T]>;
}[KnownMessageType];

/**
 * A message whose `type` is not known, or whose payload failed its schema: `originalType` is the
 * `type` Meta sent (absent when it sent none) and `raw` the message object as received.
 */
export const unknownMessageSchema = z.object({
  type: z.literal("unknown"),
  originalType: z.string().optional(),
  raw: z.unknown(),
});

/** A message this service could not type; see {@linkcode unknownMessageSchema}. */
export type UnknownMessage = z.output<typeof unknownMessageSchema>;

/**
 * Any inbound message: a known type, or `type: "unknown"` for the rest, so that
 * `Extract<InboundMessage, { type: "text" }>` narrows without a cast.
 */
export type InboundMessage = KnownMessage | UnknownMessage;

const messageSchemasByType: ReadonlyMap<string, z.ZodType<KnownMessage>> = new Map(
  Object.entries(MESSAGE_SCHEMAS),
);

/** The schema for a message `type`, or `undefined` when the type is not known. */
export function messageSchemaFor(type: string): z.ZodType<KnownMessage> | undefined {
  return messageSchemasByType.get(type);
}
