/**
 * The example handler (`ECHO_REPLIES=true`): each inbound text message is marked read with the
 * typing indicator, then answered with its own text as a reply that quotes it, from the business
 * number it was sent to.
 *
 * Exactly once per inbound message across Meta's redeliveries (intake drops those), worker retries
 * and admin replays: once Meta accepts the reply, its id is stored in a reply record keyed by the
 * inbound message id, and a run that finds the record sends nothing. The one window for a second
 * reply is a send whose outcome is unknown: the process dies (or the run is aborted) between
 * Meta's answer and the record, or a request times out after Meta accepted it (the client retries
 * it). The Cloud API has no idempotency key to close that window.
 *
 * @module
 */
import type { Dispatcher, HandlerContext, MessageEventOf } from "../dispatch/dispatcher.ts";
import { PermanentError, RetryLaterError } from "../dispatch/handler_errors.ts";
import type { RecipientIdentity } from "../graph/client.ts";
import { GraphApiError } from "../graph/errors.ts";
import { commitWithRetry } from "../store/commit.ts";
import { replyKey, type ReplyRecord } from "../store/keys.ts";

/** The echo handler's name: in event records (`completedHandlers`) and in its reply keys. */
export const ECHO_HANDLER_NAME = "echo";

/** Reply records live as long as the default dedup mark (8 days), past Meta's 7-day retries. */
export const DEFAULT_REPLY_TTL_MS = 8 * 24 * 3_600_000;

/** Options for {@linkcode registerEchoHandler}. */
export interface EchoHandlerOptions {
  /**
   * How long a reply record is kept, in milliseconds: at least as long as the event can come
   * back (the dedup mark's life for redeliveries, the event's retention for replays). Defaults to
   * {@linkcode DEFAULT_REPLY_TTL_MS}.
   */
  replyTtlMs?: number;
}

type _TextContext = HandlerContext<MessageEventOf<"text">>;

/**
 * Registers the echo handler for text messages, named {@linkcode ECHO_HANDLER_NAME}. Other message
 * types are not echoed, nor are group messages. It needs the `graph` service; without it every
 * text message is dead-lettered with the reason.
 *
 * Failures: an error Meta says retrying cannot fix (recipient, policy, auth, invalid request)
 * dead-letters the event at once with its category; a throttled or transient error that outlasts
 * the client's own retries is retried by the worker, no earlier than a `Retry-After` asked.
 */
export function registerEchoHandler(
  dispatcher: Dispatcher,
  options: EchoHandlerOptions = {},
): Dispatcher {
  const replyTtlMs = options.replyTtlMs ?? DEFAULT_REPLY_TTL_MS;
  return dispatcher.onMessage("text", (context) => _echo(context, replyTtlMs), {
    name: ECHO_HANDLER_NAME,
  });
}

async function _echo(context: _TextContext, replyTtlMs: number): Promise<void> {
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
  if (existing.value !== null) {
    log.debug("echo already sent", { replyId: existing.value.messageId });
    return;
  }
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
    throw _forWorker(error, "send the echo reply");
  }

  // From here on the reply is out: the record must not be lost to an abort, so no signal.
  const record: ReplyRecord = { messageId: replyId, phoneNumberId };
  const stored = await commitWithRetry(() =>
    kv.atomic().check(existing).set(key, record, { expireIn: replyTtlMs })
  );
  if (!stored.ok) {
    log.warn("echo reply sent twice: another run recorded its reply first", { replyId });
    return;
  }
  log.info("echo reply sent", { replyId });
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
