/**
 * Zod schema for the status of a message the business sent (`value.statuses[]` of a `messages`
 * change): sent, delivered, read, played, failed, or any other value Meta adds, kept as a string.
 *
 * @module
 */

import { z } from "zod";
import { unixSecondsSchema, whatsAppErrorSchema } from "./envelope.ts";

/**
 * The status values Meta documents, in delivery order (`failed` aside). `status` is typed as a
 * plain string because Meta has sent others (`deleted`, `warning` on older APIs).
 */
export const KNOWN_STATUS_VALUES = ["sent", "delivered", "read", "played", "failed"] as const;

/** One of {@linkcode KNOWN_STATUS_VALUES}. */
export type KnownStatusValue = (typeof KNOWN_STATUS_VALUES)[number];

/**
 * `conversation`: omitted on v24.0+ webhooks outside free entry-point windows;
 * `expiration_timestamp` only on `sent`.
 */
export const conversationSchema = z.looseObject({
  id: z.string(),
  expiration_timestamp: unixSecondsSchema.optional(),
  origin: z.looseObject({ type: z.string() }).optional(),
});

/** `pricing`: on `sent` and on one of `delivered`/`read`; `billable` is being deprecated. */
export const pricingSchema = z.looseObject({
  billable: z.boolean().optional(),
  pricing_model: z.string().optional(),
  type: z.string().optional(),
  category: z.string().optional(),
});

/**
 * One status update. The recipient is `recipient_id` (a phone number, or a group id when
 * `recipient_type` is `group`) and/or `recipient_user_id` (a BSUID, when the message was sent to
 * one); group sends name the participant in `recipient_participant_*`.
 */
export const statusSchema = z.looseObject({
  /** The `wamid` returned when the message was sent. */
  id: z.string().min(1),
  status: z.string().min(1),
  timestamp: unixSecondsSchema,
  recipient_id: z.string().optional(),
  recipient_user_id: z.string().optional(),
  parent_recipient_user_id: z.string().optional(),
  recipient_type: z.string().optional(),
  recipient_participant_id: z.string().optional(),
  recipient_participant_user_id: z.string().optional(),
  recipient_participant_parent_user_id: z.string().optional(),
  recipient_identity_key_hash: z.string().optional(),
  /** The business's own string from the send request (at most 512 characters). */
  biz_opaque_callback_data: z.string().optional(),
  conversation: conversationSchema.optional(),
  pricing: pricingSchema.optional(),
  /** Only on `failed`. */
  errors: z.array(whatsAppErrorSchema).optional(),
});

/** One status update of an outgoing message; see {@linkcode statusSchema}. */
export type Status = z.output<typeof statusSchema>;
