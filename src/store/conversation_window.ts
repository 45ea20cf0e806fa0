/**
 * The customer-service window of a conversation, as every store keeps it: per business number and
 * user, when the window closes. A user's message opens it, or extends it, until 24 hours after
 * that message; free-form messages reach the user only while it is open, templates at any time
 * (Meta "Service messages": "When a WhatsApp user messages you or calls you, a 24-hour timer
 * called a customer service window starts"; error 131047 otherwise).
 *
 * A window only moves forward: a message older than the one that last extended it (Meta's
 * retries and out-of-order deliveries bring those) changes nothing.
 *
 * @module
 */

/** How long a window stays open after the user's last message: Meta's 24 hours. */
export const CUSTOMER_SERVICE_WINDOW_MS = 24 * 60 * 60 * 1000;

/**
 * How long a store keeps a window after it closed: a week, the span of Meta's redeliveries, so
 * that the admin API can still say when a recent conversation's window closed.
 */
export const WINDOW_KEPT_AFTER_CLOSE_MS = 7 * 24 * 60 * 60 * 1000;

/** Which conversation: the business number and the user. */
export interface WindowOf {
  /** The business phone number id (`metadata.phone_number_id`). */
  business: string;
  /** The user: a business-scoped user id, or a phone number as digits (no `+`). */
  user: string;
}

/** What a store keeps per conversation. */
export interface WindowRecord {
  /** When the window closes (or closed), ms since the epoch. */
  closesAt: number;
}

/** Options for `Store.openWindow`. */
export interface OpenWindowOptions {
  /** When the window closes: the user's message's time plus {@linkcode CUSTOMER_SERVICE_WINDOW_MS}. */
  closesAt: number;
  /** The time of writing, ms since the epoch: the record lives until `closesAt` plus the margin. */
  now: number;
}

/**
 * Longest business number id or user id a store keeps a window for: a Deno KV key holds at most
 * 2 KiB, and real ones are under 150 characters (a BSUID is a country code, a dot and up to 128
 * alphanumerics).
 */
export const MAX_WINDOW_PART_CHARS = 256;

/**
 * Whether every store can keep `of`'s window: both ids present and within
 * {@linkcode MAX_WINDOW_PART_CHARS}. Others are neither opened nor found.
 */
export function isKeyableWindow(of: WindowOf): boolean {
  return of.business !== "" && of.user !== "" && of.business.length <= MAX_WINDOW_PART_CHARS &&
    of.user.length <= MAX_WINDOW_PART_CHARS;
}
