/**
 * Zod schemas for the `value` of each webhook `field` (reference §7), typed at least at their top
 * level. Fields whose shape Meta has not documented (marked "not verified") accept any object so
 * that they never count as drift; their keys still pass through.
 *
 * Arrays that hold several items (`calls[]`, `history[]`, `message_echoes[]`, `state_sync[]`,
 * `user_preferences[]`) stay inside their change: `parseDelivery` yields one change event per
 * change for these fields, so echoes and history never look like inbound messages.
 *
 * @module
 */

import { z } from "zod";
import {
  contactSchema,
  messagesValueSchema,
  metadataSchema,
  unixSecondsSchema,
  whatsAppErrorSchema,
} from "./envelope.ts";

/** Ids that Meta sends as numbers in some payloads (`message_template_id`) and strings in others. */
const numericIdSchema = z.union([z.string(), z.number()]);

/** Limits that Meta's tables give as `TIER_*` strings and its examples as integers. */
const limitSchema = z.union([z.string(), z.number()]);

/** Keys of messaging-style values (calls, echoes, history, …); management fields have neither. */
const messagingShape = {
  messaging_product: z.string().optional(),
  metadata: metadataSchema.optional(),
};

/** Not verified: a value of which only the messaging keys are known, if any. */
const unverifiedMessagingValueSchema = z.looseObject(messagingShape);

/** Not verified: any object. */
const unverifiedValueSchema = z.looseObject({});

/** `account_alerts`: an alert about the business or one of its numbers. */
export const accountAlertsValueSchema = z.looseObject({
  entity_type: z.string(),
  entity_id: numericIdSchema,
  alert_info: z.looseObject({
    alert_severity: z.string().optional(),
    alert_status: z.string().optional(),
    alert_type: z.string().optional(),
    alert_description: z.string().optional(),
  }),
});

/** `account_review_update`: the WABA was reviewed against policy (not verified). */
export const accountReviewUpdateValueSchema = z.looseObject({ decision: z.string().optional() });

/** `account_update`: `event` names what happened; each event adds its own object. */
export const accountUpdateValueSchema = z.looseObject({
  event: z.string(),
  phone_number: z.string().optional(),
  restriction_info: z.array(z.looseObject({
    restriction_type: z.string().optional(),
    expiration: numericIdSchema.optional(),
  })).optional(),
  violation_info: z.looseObject({}).optional(),
  ban_info: z.looseObject({}).optional(),
  waba_info: z.looseObject({}).optional(),
  disconnection_info: z.looseObject({}).optional(),
  volume_tier_info: z.looseObject({}).optional(),
  country: z.string().optional(),
});

/** `business_capability_update`: new messaging limits for the business. */
export const businessCapabilityUpdateValueSchema = z.looseObject({
  max_daily_conversations_per_business: limitSchema.optional(),
  max_daily_conversation_per_phone: limitSchema.optional(),
  max_phone_numbers_per_business: limitSchema.optional(),
  max_phone_numbers_per_waba: limitSchema.optional(),
});

/** `business_username_updates`: the business's own username (not verified on Meta's page). */
export const businessUsernameUpdatesValueSchema = z.looseObject({
  display_phone_number: z.string().optional(),
  username: z.string().optional(),
  status: z.string().optional(),
});

/** One call event of a `calls` change (`wacid.…` ids). */
export const callSchema = z.looseObject({
  id: z.string(),
  from: z.string().optional(),
  to: z.string().optional(),
  event: z.string().optional(),
  direction: z.string().optional(),
  timestamp: unixSecondsSchema.optional(),
  session: z.looseObject({ sdp_type: z.string().optional(), sdp: z.string().optional() })
    .optional(),
  status: z.string().optional(),
  start_time: unixSecondsSchema.optional(),
  end_time: unixSecondsSchema.optional(),
  duration: z.number().optional(),
  biz_opaque_callback_data: z.string().optional(),
});

/** One call status (`RINGING`, `ACCEPTED`, `REJECTED`) of a `calls` change. */
export const callStatusSchema = z.looseObject({
  id: z.string(),
  type: z.string().optional(),
  status: z.string().optional(),
  timestamp: unixSecondsSchema.optional(),
  recipient_id: z.string().optional(),
  biz_opaque_callback_data: z.string().optional(),
});

/** `calls`: call events (`calls[]`) or call statuses (`statuses[]`). */
export const callsValueSchema = z.looseObject({
  ...messagingShape,
  contacts: z.array(contactSchema).optional(),
  calls: z.array(callSchema).optional(),
  statuses: z.array(callStatusSchema).optional(),
  errors: z.array(whatsAppErrorSchema).optional(),
});

/** `flows`: a Flow changed status or crossed an alert threshold. */
export const flowsValueSchema = z.looseObject({
  event: z.string(),
  message: z.string().optional(),
  flow_id: z.string().optional(),
  old_status: z.string().optional(),
  new_status: z.string().optional(),
  alert_state: z.string().optional(),
});

/** `history`: coexistence chat history (`history[]`), or the media of history items (`messages[]`). */
export const historyValueSchema = z.looseObject({
  ...messagingShape,
  history: z.array(z.looseObject({
    metadata: z.looseObject({
      phase: z.number().optional(),
      chunk_order: z.number().optional(),
      progress: z.number().optional(),
    }).optional(),
    threads: z.array(z.looseObject({
      id: z.string().optional(),
      messages: z.array(z.unknown()).optional(),
    })).optional(),
    errors: z.array(whatsAppErrorSchema).optional(),
  })).optional(),
  messages: z.array(z.unknown()).optional(),
});

/** `message_template_components_update`: a template's components were edited. */
export const messageTemplateComponentsUpdateValueSchema = z.looseObject({
  message_template_id: numericIdSchema.optional(),
  message_template_name: z.string().optional(),
  message_template_language: z.string().optional(),
  message_template_element: z.string().optional(),
});

/** `message_template_quality_update`: scores `GREEN`, `YELLOW`, `RED`, `UNKNOWN`. */
export const messageTemplateQualityUpdateValueSchema = z.looseObject({
  previous_quality_score: z.string().optional(),
  new_quality_score: z.string(),
  message_template_id: numericIdSchema,
  message_template_name: z.string().optional(),
  message_template_language: z.string().optional(),
});

/** `message_template_status_update`: `event` is `APPROVED`, `REJECTED`, `PAUSED`, … */
export const messageTemplateStatusUpdateValueSchema = z.looseObject({
  event: z.string(),
  message_template_id: numericIdSchema,
  message_template_name: z.string().optional(),
  message_template_language: z.string().optional(),
  reason: z.string().nullable().optional(),
  message_template_category: z.string().optional(),
  rejection_info: z.looseObject({
    reason: z.string().optional(),
    recommendation: z.string().optional(),
  }).optional(),
});

/** `phone_number_name_update`: the decision on a requested display name. */
export const phoneNumberNameUpdateValueSchema = z.looseObject({
  display_phone_number: z.string().optional(),
  decision: z.string(),
  requested_verified_name: z.string().optional(),
  rejection_reason: z.string().nullable().optional(),
});

/** `phone_number_quality_update`: the number's messaging limit changed (`TIER_*`). */
export const phoneNumberQualityUpdateValueSchema = z.looseObject({
  display_phone_number: z.string().optional(),
  event: z.string(),
  max_daily_conversations_per_business: limitSchema.optional(),
  current_limit: z.string().optional(),
  old_limit: z.string().optional(),
});

/** `security`: the number's two-step verification PIN changed or was asked for. */
export const securityValueSchema = z.looseObject({
  display_phone_number: z.string().optional(),
  event: z.string(),
  requester: z.string().optional(),
});

/** `smb_app_state_sync`: contacts added or removed in the WhatsApp Business app (coexistence). */
export const smbAppStateSyncValueSchema = z.looseObject({
  ...messagingShape,
  state_sync: z.array(z.looseObject({
    type: z.string().optional(),
    contact: z.looseObject({
      full_name: z.string().optional(),
      first_name: z.string().optional(),
      phone_number: z.string().optional(),
    }).optional(),
    action: z.string().optional(),
    metadata: z.looseObject({ timestamp: unixSecondsSchema.optional() }).optional(),
  })).optional(),
});

/**
 * `smb_message_echoes`: messages the business sent from the WhatsApp Business app or a linked
 * device. Outbound: never feed them to auto-reply logic.
 */
export const smbMessageEchoesValueSchema = z.looseObject({
  ...messagingShape,
  contacts: z.array(contactSchema).optional(),
  message_echoes: z.array(z.looseObject({
    id: z.string(),
    from: z.string().optional(),
    to: z.string().optional(),
    to_user_id: z.string().optional(),
    to_parent_user_id: z.string().optional(),
    timestamp: unixSecondsSchema.optional(),
    type: z.string(),
  })).optional(),
});

/** `template_category_update`: Meta moved a template to another category. */
export const templateCategoryUpdateValueSchema = z.looseObject({
  message_template_id: numericIdSchema.optional(),
  message_template_name: z.string().optional(),
  message_template_language: z.string().optional(),
  previous_category: z.string().optional(),
  new_category: z.string().optional(),
});

/** `user_preferences`: users stopping or resuming marketing messages. */
export const userPreferencesValueSchema = z.looseObject({
  ...messagingShape,
  contacts: z.array(contactSchema).optional(),
  user_preferences: z.array(z.looseObject({
    wa_id: z.string().optional(),
    user_id: z.string().optional(),
    detail: z.string().optional(),
    category: z.string().optional(),
    value: z.string().optional(),
    timestamp: unixSecondsSchema.optional(),
    signup_id: z.string().optional(),
  })).optional(),
});

/**
 * The schema of the `value` of each known webhook `field`. `messages` is here for the changes that
 * hold neither messages nor statuses (only `errors[]`, say); its messages and statuses become
 * events of their own.
 */
export const CHANGE_VALUE_SCHEMAS = {
  messages: messagesValueSchema,
  account_alerts: accountAlertsValueSchema,
  account_review_update: accountReviewUpdateValueSchema,
  account_settings_update: unverifiedMessagingValueSchema,
  account_update: accountUpdateValueSchema,
  automatic_events: unverifiedValueSchema,
  business_capability_update: businessCapabilityUpdateValueSchema,
  business_username_updates: businessUsernameUpdatesValueSchema,
  calls: callsValueSchema,
  consumer_profile: unverifiedMessagingValueSchema,
  flows: flowsValueSchema,
  group_lifecycle_update: unverifiedMessagingValueSchema,
  group_participants_update: unverifiedMessagingValueSchema,
  group_settings_update: unverifiedMessagingValueSchema,
  group_status_update: unverifiedMessagingValueSchema,
  history: historyValueSchema,
  message_echoes: unverifiedMessagingValueSchema,
  message_template_components_update: messageTemplateComponentsUpdateValueSchema,
  message_template_quality_update: messageTemplateQualityUpdateValueSchema,
  message_template_status_update: messageTemplateStatusUpdateValueSchema,
  messaging_handovers: unverifiedMessagingValueSchema,
  partner_solutions: unverifiedValueSchema,
  payment_configuration_update: unverifiedValueSchema,
  phone_number_name_update: phoneNumberNameUpdateValueSchema,
  phone_number_quality_update: phoneNumberQualityUpdateValueSchema,
  security: securityValueSchema,
  smb_app_state_sync: smbAppStateSyncValueSchema,
  smb_message_echoes: smbMessageEchoesValueSchema,
  standby: unverifiedMessagingValueSchema,
  template_category_update: templateCategoryUpdateValueSchema,
  user_preferences: userPreferencesValueSchema,
} as const;

/** A webhook `field` this service knows the value of. */
export type KnownChangeField = keyof typeof CHANGE_VALUE_SCHEMAS;

/** The validated `value` of a change of `field`. */
export type ChangeValue<F extends KnownChangeField> = z.output<(typeof CHANGE_VALUE_SCHEMAS)[F]>;

const changeValueSchemasByField: ReadonlyMap<string, z.ZodType> = new Map(
  Object.entries(CHANGE_VALUE_SCHEMAS),
);

/** The schema for the value of `field`, or `undefined` when the field is not known. */
export function changeValueSchemaFor(field: string): z.ZodType | undefined {
  return changeValueSchemasByField.get(field);
}
