/**
 * Zod schemas for the parts of a delivery that every webhook field shares: the business number's
 * `metadata`, a user's `contacts[]` entry, Meta's error object, Unix-second timestamps, and the
 * `value` of a `messages` change.
 *
 * Every object schema is loose: keys Meta adds later pass through untouched.
 *
 * @module
 */

import { z } from "zod";

/** The `object` of every WhatsApp delivery; anything else is a foreign payload. */
export const WHATSAPP_OBJECT = "whatsapp_business_account";

/** Unix seconds written as a string: digits only, at most 12 of them (year 33658). */
export const UNIX_SECONDS_PATTERN = /^\d{1,12}$/;

/**
 * A Unix time in seconds. Meta sends strings of digits inside messages and statuses and integers
 * elsewhere (`entry.time`, some management fields): both are accepted and kept as sent.
 */
export const unixSecondsSchema = z.union([
  z.string().regex(UNIX_SECONDS_PATTERN),
  z.number().int().nonnegative(),
]);

/** One of Meta's error objects (`value.errors[]`, `messages[].errors[]`, `statuses[].errors[]`). */
export const whatsAppErrorSchema = z.looseObject({
  code: z.number(),
  title: z.string().optional(),
  message: z.string().optional(),
  error_data: z.looseObject({ details: z.string().optional() }).optional(),
  href: z.string().optional(),
});

/** One of Meta's error objects; build logic on `code` and `error_data.details`, not on titles. */
export type WhatsAppError = z.output<typeof whatsAppErrorSchema>;

/** The business number a messaging change is about. */
export const metadataSchema = z.looseObject({
  display_phone_number: z.string().optional(),
  phone_number_id: z.string(),
});

/** The business number a messaging change is about; `phone_number_id` is the number to send from. */
export type Metadata = z.output<typeof metadataSchema>;

/**
 * A user named in `value.contacts[]`. Every field may be missing: `wa_id` is withheld for users
 * with a username (2026), `user_id` is missing on some failed statuses, `profile` on most statuses.
 */
export const contactSchema = z.looseObject({
  profile: z.looseObject({ name: z.string().optional(), username: z.string().optional() })
    .optional(),
  wa_id: z.string().optional(),
  user_id: z.string().optional(),
  parent_user_id: z.string().optional(),
  identity_key_hash: z.string().optional(),
  country_code: z.string().optional(),
});

/** A user named in `value.contacts[]`; see `userIdOf` in `events.ts` to identify them. */
export type Contact = z.output<typeof contactSchema>;

/**
 * The `value` of a `messages` change as far as walking it needs: the business number and the
 * arrays, whose items are validated one by one so that one bad item spoils only itself.
 */
export const messagesEnvelopeSchema = z.looseObject({
  messaging_product: z.string().optional(),
  metadata: metadataSchema,
  contacts: z.array(z.unknown()).optional(),
  messages: z.array(z.unknown()).optional(),
  statuses: z.array(z.unknown()).optional(),
});

/**
 * The `value` of a `messages` change as a change event carries it (when it holds no message and no
 * status, or holds `errors[]`): the envelope plus typed `errors[]`.
 */
export const messagesValueSchema = messagesEnvelopeSchema.extend({
  errors: z.array(whatsAppErrorSchema).optional(),
});
