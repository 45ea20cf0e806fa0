/**
 * The example handler (`ECHO_REPLIES=true`): each inbound text message is marked read with the
 * typing indicator, then answered with its own text as a reply that quotes it, from the business
 * number it was sent to.
 *
 * Exactly once per inbound message across Meta's redeliveries (intake drops those), worker retries
 * and admin replays: once Meta accepts the reply, its id is stored in a reply record keyed by the
 * inbound message id, and a run that finds the record sends nothing.
 *
 * A send whose outcome is unknown (a timeout or a connection lost after the request was written,
 * where Meta may have accepted it, or a process that died during the send) is sent again once at
 * most, across the client's and the worker's retries together: the Cloud API has no idempotency
 * key, so each send again is a possible duplicate. Before each send the record is set to outcome
 * `unknown` with the count of such sends, durably; Meta's acceptance replaces it with the reply's
 * id, and a failure that certainly sent nothing (Meta's error answer, a refused connection) takes
 * the count back. A run that finds the limit reached sends nothing and dead-letters the event with
 * the reason: the reply may or may not have arrived, which an operator should know; a replay
 * finds the same record and sends nothing either.
 *
 * @module
 */
import { DEFAULTS } from "../config.ts";
import type { Dispatcher, HandlerContext, MessageEventOf } from "../dispatch/dispatcher.ts";
import { PermanentError, RetryLaterError } from "../dispatch/handler_errors.ts";
import type { RecipientIdentity } from "../graph/client.ts";
import { GraphApiError } from "../graph/errors.ts";
import { commitWithRetry } from "../store/commit.ts";
import {
  isReplySent,
  replyKey,
  type ReplyRecord,
  type SentReplyRecord,
  type UnknownReplyRecord,
} from "../store/keys.ts";

/** The echo handler's name: in event records (`completedHandlers`) and in its reply keys. */
export const ECHO_HANDLER_NAME = "echo";

/**
 * Sends of one reply that may end with an unknown outcome: the first, and once more. Each one may
 * have reached the user, so this is also the most copies a slow Graph API can cause.
 */
export const DEFAULT_MAX_UNKNOWN_SENDS = 2;

/** Options for {@linkcode registerEchoHandler}. */
export interface EchoHandlerOptions {
  /**
   * How long a reply record is kept, in milliseconds: at least as long as the event can come
   * back (the dedup mark's life for redeliveries, the event's retention for replays). Defaults to
   * the default dedup mark's life (`DEFAULTS.dedupTtlMs`, 8 days), past Meta's 7-day retries.
   */
  replyTtlMs?: number;
  /**
   * How many sends of one reply may end with an unknown outcome before the handler stops sending
   * (see the module's notes); at least 1. Defaults to {@linkcode DEFAULT_MAX_UNKNOWN_SENDS}: the
   * first send and once more. 1 never sends again after an unknown outcome.
   */
  maxUnknownSends?: number;
}

interface _EchoSettings {
  replyTtlMs: number;
  maxUnknownSends: number;
}

type _TextContext = HandlerContext<MessageEventOf<"text">>;

/**
 * Registers the echo handler for text messages, named {@linkcode ECHO_HANDLER_NAME}. Other message
 * types are not echoed, nor are group messages. It needs the `graph` service; without it every
 * text message is dead-lettered with the reason.
 *
 * Failures: an error Meta says retrying cannot fix (recipient, policy, auth, invalid request)
 * dead-letters the event at once with its category; a throttled or transient error that outlasts
 * the client's own retries is retried by the worker, no earlier than a `Retry-After` asked. A send
 * whose outcome is unknown is retried by the worker until `maxUnknownSends` such sends were made,
 * then the event is dead-lettered without sending again. Error texts quote Meta's code, category
 * and title, never the message text.
 */
export function registerEchoHandler(
  dispatcher: Dispatcher,
  options: EchoHandlerOptions = {},
): Dispatcher {
  const settings: _EchoSettings = {
    replyTtlMs: options.replyTtlMs ?? DEFAULTS.dedupTtlMs,
    maxUnknownSends: Math.max(1, Math.floor(options.maxUnknownSends ?? DEFAULT_MAX_UNKNOWN_SENDS)),
  };
  return dispatcher.onMessage("text", (context) => _echo(context, settings), {
    name: ECHO_HANDLER_NAME,
  });
}

async function _echo(context: _TextContext, settings: _EchoSettings): Promise<void> {
  const { event, graph, kv, log, signal } = context;
  const { message, phoneNumberId } = event;
  if (message.group_id !== undefined) {
    log.debug("echo skipped: group message");
    return;
  }
  if (!graph) {
    throw new PermanentError(
      "Cannot echo: no Graph API client; set WHATSAPP_TOKEN or WHATSAPP_TOKENS",
    );
  }
  const key = replyKey(message.id, ECHO_HANDLER_NAME);
  const existing = await kv.get<ReplyRecord>(key);
  const previous = existing.value;
  if (previous !== null && isReplySent(previous)) {
    log.debug("echo already sent", { replyId: previous.messageId });
    return;
  }
  const unknownSends = previous?.unknownSends ?? 0;
  if (unknownSends >= settings.maxUnknownSends) throw _unknownOutcomeLimit(unknownSends);
  const sender = _senderOf(event);
  if (sender.phone === undefined && sender.userId === undefined) {
    throw new PermanentError("Cannot echo: the message has no sender phone number or user id");
  }

  try {
    await graph.markAsRead(phoneNumberId, message.id, { typingIndicator: true, signal });
  } catch (error) {
    // Read receipts are a courtesy: only a token problem, which the reply would meet too, stops it.
    if (!(error instanceof GraphApiError) || error.category === "auth") {
      throw _forWorker(error, "mark the message as read");
    }
    log.warn("cannot mark message as read; replying anyway", {
      category: error.category,
      code: error.code,
    });
  }

  // Counted before sending, durably: a process that dies during the send leaves the count behind.
  const inFlight: UnknownReplyRecord = {
    outcome: "unknown",
    phoneNumberId,
    unknownSends: unknownSends + 1,
  };
  const counted = await commitWithRetry(() =>
    kv.atomic().check(existing).set(key, inFlight, { expireIn: settings.replyTtlMs })
  );
  if (!counted.ok) {
    throw new Error("Cannot send the echo reply: another run changed its reply record meanwhile");
  }
  const countedEntry = { key, versionstamp: counted.versionstamp };

  let replyId: string;
  try {
    const sent = await graph.sendText(phoneNumberId, {
      to: sender,
      text: message.text.body,
      replyTo: message.id,
      signal,
    });
    replyId = sent.messageId;
  } catch (error) {
    if (error instanceof GraphApiError && error.category !== "unknown_outcome") {
      // Meta said no, or no connection was made: nothing reached the user, so the count goes back.
      await _takeCountBack(context, { counted: countedEntry, previous, ...settings });
      throw _forWorker(error, "send the echo reply");
    }
    // Meta may have the reply (or the run was aborted during the send): the count stays.
    if (!(error instanceof GraphApiError)) throw error;
    log.warn("echo reply outcome unknown", {
      unknownSends: inFlight.unknownSends,
      maxUnknownSends: settings.maxUnknownSends,
    });
    if (inFlight.unknownSends >= settings.maxUnknownSends) {
      throw _unknownOutcomeLimit(inFlight.unknownSends, error);
    }
    throw new Error(
      `Cannot send the echo reply (unknown_outcome, sent again ${
        settings.maxUnknownSends - inFlight.unknownSends
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
  const stored = await commitWithRetry(() =>
    kv.atomic().check(countedEntry).set(key, record, { expireIn: settings.replyTtlMs })
  );
  if (!stored.ok) {
    log.warn("echo reply sent twice: another run recorded its reply first", { replyId });
    return;
  }
  log.info("echo reply sent", { replyId, ...(unknownSends > 0 ? { unknownSends } : {}) });
}

/**
 * Puts the reply record back as it was before a send that certainly sent nothing. If that fails,
 * the send stays counted: the safe side, one send again fewer.
 */
async function _takeCountBack(
  context: _TextContext,
  options: {
    counted: { key: Deno.KvKey; versionstamp: string };
    previous: ReplyRecord | null;
    replyTtlMs: number;
  },
): Promise<void> {
  const { kv, log } = context;
  const { counted, previous, replyTtlMs } = options;
  try {
    await commitWithRetry(() => {
      const atomic = kv.atomic().check(counted);
      return previous === null
        ? atomic.delete(counted.key)
        : atomic.set(counted.key, previous, { expireIn: replyTtlMs });
    });
  } catch (error) {
    log.warn("cannot take back the count of a send that failed", { error });
  }
}

/** The end of sending: `unknownSends` sends may each have reached the user. */
function _unknownOutcomeLimit(unknownSends: number, cause?: GraphApiError): PermanentError {
  return new PermanentError(
    `Cannot send the echo reply: ${unknownSends} send(s) ended with an unknown outcome ` +
      "(no answer from the Graph API) and Meta may have accepted any of them; not sent again, " +
      'to avoid duplicates (the reply record says outcome "unknown")' +
      (cause === undefined ? "" : `; last: ${cause.message}`),
    cause === undefined ? undefined : { cause },
  );
}

/** Who sent the message: phone number and BSUID, from the message first, then its contact. */
function _senderOf(event: MessageEventOf<"text">): RecipientIdentity {
  const phone = _nonEmpty(event.message.from) ?? _nonEmpty(event.contact?.wa_id);
  const userId = _nonEmpty(event.message.from_user_id) ?? _nonEmpty(event.contact?.user_id);
  return { phone: phone?.replace(/^\+/, ""), userId };
}

/**
 * What the worker should see for a failed call: a {@linkcode PermanentError} when retrying cannot
 * help, a {@linkcode RetryLaterError} when Meta said how long to wait, else the error itself
 * (retried with the worker's backoff; an abort's reason is passed on untouched).
 */
function _forWorker(error: unknown, what: string): unknown {
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

function _nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}
