/**
 * The example handler (`ECHO_REPLIES=true`): each inbound text message is marked read with the
 * typing indicator, then answered with its own text as a reply that quotes it, from the business
 * number it was sent to.
 *
 * Exactly once per inbound message across Meta's redeliveries (intake drops those), worker retries
 * and admin replays, with at most one send again after an unknown outcome: the handler context's
 * `reply` (`dispatch/reply.ts`) keeps the reply record that makes it so.
 *
 * @module
 */
import type { Dispatcher, HandlerContext, MessageEventOf } from "../dispatch/dispatcher.ts";
import { PermanentError } from "../dispatch/handler_errors.ts";
import { DEFAULT_MAX_UNKNOWN_SENDS, forWorker, senderOf } from "../dispatch/reply.ts";
import { GraphApiError } from "../graph/errors.ts";
import { isReplySent } from "../store/reply_record.ts";

/** The echo handler's name: in event records (`completedHandlers`) and in its reply records. */
export const ECHO_HANDLER_NAME = "echo";

/** Options for {@linkcode registerEchoHandler}. */
export interface EchoHandlerOptions {
  /**
   * How many sends of one reply may end with an unknown outcome before the handler stops sending
   * (see `dispatch/reply.ts`); at least 1. Defaults to `DEFAULT_MAX_UNKNOWN_SENDS`: the first send
   * and once more. 1 never sends again after an unknown outcome.
   */
  maxUnknownSends?: number;
}

/**
 * Registers the echo handler for text messages, named {@linkcode ECHO_HANDLER_NAME}. Other message
 * types are not echoed, nor are group messages. It needs the `graph` service; without it every
 * text message is dead-lettered with the reason.
 *
 * Failures: an error Meta says retrying cannot fix (recipient, policy, auth, invalid request)
 * dead-letters the event at once with its category; a throttled or transient error that outlasts
 * the client's own retries is retried by the worker, no earlier than a `Retry-After` asked. A send
 * whose outcome is unknown is retried by the worker until `maxUnknownSends` such sends were made,
 * then the event is dead-lettered without sending again.
 */
export function registerEchoHandler(
  dispatcher: Dispatcher,
  options: EchoHandlerOptions = {},
): Dispatcher {
  const maxUnknownSends = options.maxUnknownSends ?? DEFAULT_MAX_UNKNOWN_SENDS;
  return dispatcher.onMessage("text", (context) => _echo(context, maxUnknownSends), {
    name: ECHO_HANDLER_NAME,
  });
}

async function _echo(
  context: HandlerContext<MessageEventOf<"text">>,
  maxUnknownSends: number,
): Promise<void> {
  const { event, graph, log } = context;
  const { message } = event;
  if (message.group_id !== undefined) {
    log.debug("echo skipped: group message");
    return;
  }
  if (!graph) {
    throw new PermanentError(
      "Cannot echo: no Graph API client; set WHATSAPP_TOKEN or WHATSAPP_TOKENS",
    );
  }
  // A reply already sent, or given up on after unknown sends, sends nothing (`context.reply` says
  // which): a replay or retry then marks the message read no second time either.
  const previous = await context.store.getReply({
    handler: ECHO_HANDLER_NAME,
    inboundId: message.id,
  });
  const isReplyOver = previous !== null &&
    (isReplySent(previous) || previous.unknownSends >= Math.max(1, Math.floor(maxUnknownSends)));
  // A message nobody can be answered at is not marked read either: `reply` gives up on it.
  const sender = senderOf(event);
  const hasSender = sender.phone !== undefined || sender.userId !== undefined;
  if (!isReplyOver && hasSender) await _markAsRead(context);
  await context.reply(message.text.body, { maxUnknownSends, what: "echo reply" });
}

/** Marks the message read with the typing indicator; only a token problem fails the run. */
async function _markAsRead(context: HandlerContext<MessageEventOf<"text">>): Promise<void> {
  const { event, graph, log, signal } = context;
  try {
    await graph!.markAsRead(event.phoneNumberId, event.message.id, {
      typingIndicator: true,
      signal,
    });
  } catch (error) {
    // Read receipts are a courtesy: only a token problem, which the reply would meet too, stops it.
    if (!(error instanceof GraphApiError) || error.category === "auth") {
      throw forWorker(error, "mark the message as read");
    }
    log.warn("cannot mark message as read; replying anyway", {
      category: error.category,
      code: error.code,
    });
  }
}
