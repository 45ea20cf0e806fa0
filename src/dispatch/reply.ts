/**
 * Replying to an inbound message exactly once: `ctx.reply("hi")` in a handler. Once Meta accepts
 * the reply, its id is stored in the handler's reply record for that message, and a run that finds
 * the record sends nothing: across Meta's redeliveries, worker retries and admin replays.
 *
 * A send whose outcome is unknown (a timeout or a connection lost after the request was written,
 * where Meta may have accepted it, or a process that died during the send) is sent again at most
 * `maxUnknownSends - 1` times: the Cloud API has no idempotency key, so each send again is a
 * possible duplicate. Before each send the record is set to outcome `unknown` with the count of
 * such sends; Meta's acceptance replaces it with the reply's id, and a failure that certainly sent
 * nothing (Meta's error answer, a refused connection) takes the count back. A run that finds the
 * limit reached sends nothing and dead-letters the event with the reason.
 *
 * A reply outside the user's customer-service window (no message from them in 24 hours) is not
 * sent: `checkWindow` rejects with a `WindowClosedError` (a `PermanentError`) before any request,
 * since Meta would refuse it with 131047; a reply already sent is still reported as such.
 *
 * Errors reach the worker as it should treat them: a `PermanentError` when retrying cannot help
 * (recipient, policy, auth, invalid request: the event is dead-lettered with Meta's category), a
 * `RetryLaterError` when Meta said how long to wait, else the error itself (retried with backoff).
 * Error texts quote Meta's code, category and title, never the message text.
 *
 * @module
 */
import type { MessageEvent } from "../events/events.ts";
import type { GraphClient } from "../graph/client.ts";
import type { RecipientIdentity } from "../graph/outbound_message.ts";
import { GraphApiError } from "../graph/errors.ts";
import type { Logger } from "../ops/log.ts";
import {
  isReplySent,
  type SentReplyRecord,
  type UnknownReplyRecord,
} from "../store/reply_record.ts";
import type { ReplyOf, Store } from "../store/store.ts";
import { PermanentError, RetryLaterError } from "./handler_errors.ts";

/**
 * Sends of one reply that may end with an unknown outcome: the first, and once more. Each one may
 * have reached the user, so this is also the most copies a slow Graph API can cause.
 */
export const DEFAULT_MAX_UNKNOWN_SENDS = 2;

/** Options of one reply. */
export interface ReplyOptions {
  /** Quote the inbound message in the reply (default true). */
  quote?: boolean;
  /**
   * Sends that may end with an unknown outcome before the reply is given up on; at least 1.
   * Defaults to {@linkcode DEFAULT_MAX_UNKNOWN_SENDS}.
   */
  maxUnknownSends?: number;
  /** What the reply is called in errors and log lines (default `"reply"`). */
  what?: string;
}

/** What a reply came to: sent now, or sent by an earlier run (nothing was sent again). */
export interface ReplyResult {
  status: "sent" | "already_sent";
  /** The `wamid` Meta gave the reply. */
  messageId: string;
}

/** What {@linkcode replyOnce} needs: where the run stands. */
export interface ReplyDeps {
  store: Pick<Store, "getReply" | "swapReply">;
  graph: GraphClient | undefined;
  /** The handler replying: reply records are kept per handler. */
  handler: string;
  log: Logger;
  signal: AbortSignal;
  /** How long a reply record is kept: as long as the event can come back. */
  replyTtlMs: number;
  /**
   * Resolves when a free-form message may be sent to `to` from the event's business number;
   * rejects (with a `WindowClosedError`) when the customer-service window is closed. Called
   * before anything is sent or recorded (`conversation_window.ts`).
   */
  checkWindow: (to: RecipientIdentity) => Promise<void>;
}

/**
 * Sends `text` as the reply to `event`'s message, from the business number it was sent to, to its
 * sender (phone number and BSUID, from the message first, then its contact), exactly once (see the
 * module's notes).
 */
export async function replyOnce(
  event: MessageEvent,
  text: string,
  deps: ReplyDeps,
  options: ReplyOptions = {},
): Promise<ReplyResult> {
  const { store, graph, log, signal, replyTtlMs } = deps;
  const what = options.what ?? "reply";
  const maxUnknownSends = Math.max(
    1,
    Math.floor(options.maxUnknownSends ?? DEFAULT_MAX_UNKNOWN_SENDS),
  );
  const { message, phoneNumberId } = event;
  if (!("id" in message) || typeof message.id !== "string") {
    throw new PermanentError(`Cannot send the ${what}: the message has no id to answer`);
  }
  if (!graph) {
    throw new PermanentError(
      `Cannot send the ${what}: no Graph API client; set WHATSAPP_TOKEN or WHATSAPP_TOKENS`,
    );
  }
  const of: ReplyOf = { handler: deps.handler, inboundId: message.id };
  const previous = await store.getReply(of);
  if (previous !== null && isReplySent(previous)) {
    log.debug(`${what} already sent`, { replyId: previous.messageId });
    return { status: "already_sent", messageId: previous.messageId };
  }
  const unknownSends = previous?.unknownSends ?? 0;
  if (unknownSends >= maxUnknownSends) throw _unknownOutcomeLimit(what, unknownSends);
  const sender = senderOf(event);
  if (sender.phone === undefined && sender.userId === undefined) {
    throw new PermanentError(
      `Cannot send the ${what}: the message has no sender phone number or user id`,
    );
  }

  // Outside the window Meta would refuse the reply (131047): nothing is sent nor counted.
  await deps.checkWindow(sender);

  // Counted before sending, durably: a process that dies during the send leaves the count behind.
  const inFlight: UnknownReplyRecord = {
    outcome: "unknown",
    phoneNumberId,
    unknownSends: unknownSends + 1,
  };
  if (!(await store.swapReply(of, previous, inFlight, replyTtlMs))) {
    throw new Error(`Cannot send the ${what}: another run changed its reply record meanwhile`);
  }

  let replyId: string;
  try {
    const sent = await graph.sendText(phoneNumberId, {
      to: sender,
      text,
      ...(options.quote === false ? {} : { replyTo: message.id }),
      signal,
    });
    replyId = sent.messageId;
  } catch (error) {
    if (error instanceof GraphApiError && error.category !== "unknown_outcome") {
      // Meta said no, or no connection was made: nothing reached the user, so the count goes back.
      // If that fails, the send stays counted: the safe side, one send again fewer.
      await store.swapReply(of, inFlight, previous, replyTtlMs).catch((cause) =>
        log.warn("cannot take back the count of a send that failed", { error: cause })
      );
      throw forWorker(error, `send the ${what}`);
    }
    // Meta may have the reply (or the run was aborted during the send): the count stays.
    if (!(error instanceof GraphApiError)) throw error;
    log.warn(`${what} outcome unknown`, {
      unknownSends: inFlight.unknownSends,
      maxUnknownSends,
    });
    if (inFlight.unknownSends >= maxUnknownSends) {
      throw _unknownOutcomeLimit(what, inFlight.unknownSends, error);
    }
    throw new Error(
      `Cannot send the ${what} (unknown_outcome, sent again ${
        maxUnknownSends - inFlight.unknownSends
      } more time(s) at most): ${error.message}`,
      { cause: error },
    );
  }

  // From here on the reply is out: the record must not be lost to an abort, so no signal.
  const record: SentReplyRecord = {
    messageId: replyId,
    phoneNumberId,
    ...(unknownSends > 0 ? { unknownSends } : {}),
  };
  if (!(await store.swapReply(of, inFlight, record, replyTtlMs))) {
    log.warn(`${what} sent twice: another run recorded its reply first`, { replyId });
  } else {
    log.info(`${what} sent`, { replyId, ...(unknownSends > 0 ? { unknownSends } : {}) });
  }
  return { status: "sent", messageId: replyId };
}

/** Who sent the message: phone number and BSUID, from the message first, then its contact. */
export function senderOf(event: MessageEvent): RecipientIdentity {
  const message = event.message as { from?: unknown; from_user_id?: unknown };
  const phone = _nonEmpty(message.from) ?? _nonEmpty(event.contact?.wa_id);
  const userId = _nonEmpty(message.from_user_id) ?? _nonEmpty(event.contact?.user_id);
  return { phone: phone?.replace(/^\+/, ""), userId };
}

/**
 * What the worker should see for a failed Graph API call: a {@linkcode PermanentError} when
 * retrying cannot help, a {@linkcode RetryLaterError} when Meta said how long to wait, else the
 * error itself (retried with the worker's backoff; an abort's reason is passed on untouched).
 */
export function forWorker(error: unknown, what: string): unknown {
  if (!(error instanceof GraphApiError)) return error;
  if (!error.retryable) {
    return new PermanentError(
      `Cannot ${what} (${error.category}, not retried): ${error.message}`,
      { cause: error },
    );
  }
  if (error.retryAfterMs !== undefined) {
    return new RetryLaterError(
      `Cannot ${what} (${error.category}): ${error.message}`,
      error.retryAfterMs,
      { cause: error },
    );
  }
  return error;
}

/** The end of sending: `unknownSends` sends may each have reached the user. */
function _unknownOutcomeLimit(
  what: string,
  unknownSends: number,
  cause?: GraphApiError,
): PermanentError {
  return new PermanentError(
    `Cannot send the ${what}: ${unknownSends} send(s) ended with an unknown outcome ` +
      "(no answer from the Graph API) and Meta may have accepted any of them; not sent again, " +
      'to avoid duplicates (the reply record says outcome "unknown")' +
      (cause === undefined ? "" : `; last: ${cause.message}`),
    cause === undefined ? undefined : { cause },
  );
}

function _nonEmpty(value: unknown): string | undefined {
  return typeof value !== "string" || value.trim() === "" ? undefined : value.trim();
}
