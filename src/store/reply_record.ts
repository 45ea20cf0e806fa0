/**
 * What a handler keeps about its reply to an inbound message, in every store: the reply Meta
 * accepted, or, while no send got an answer, that its outcome is unknown and how many sends that
 * makes. A handler that finds its reply sent does not send again, which makes the reply exactly
 * once across Meta's redeliveries, worker retries and admin replays.
 *
 * @module
 */

/** The reply a handler sent to an inbound message, or that its outcome is unknown. */
export type ReplyRecord = SentReplyRecord | UnknownReplyRecord;

/** A reply Meta accepted. Records written before `outcome` existed have none and are this kind. */
export interface SentReplyRecord {
  outcome?: "sent";
  /** The `wamid` Meta gave the reply; its status webhooks refer to it. */
  messageId: string;
  /** The business number the reply was sent from. */
  phoneNumberId: string;
  /**
   * Earlier sends whose outcome stayed unknown (a timeout, a lost connection): the user may have
   * received that many more copies. Absent when there were none.
   */
  unknownSends?: number;
}

/**
 * A reply sent without an answer: written before each send (so that a process that dies during
 * it leaves the count behind) and kept when the send ends without a verdict from Meta.
 */
export interface UnknownReplyRecord {
  outcome: "unknown";
  /** The business number the reply is sent from. */
  phoneNumberId: string;
  /** Sends that may have reached the user, the one in flight included; at least 1. */
  unknownSends: number;
}

/** Whether a reply record says Meta accepted the reply (records without `outcome` did). */
export function isReplySent(record: ReplyRecord): record is SentReplyRecord {
  return record.outcome !== "unknown";
}
