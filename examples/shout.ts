/**
 * An example entry: answers every text message with its own text in capitals, once, whatever
 * Meta's retries, the worker's retries or an operator's replay do. Run it with
 * `deno task run examples/shout.ts` (the start task's permissions, your environment).
 *
 * @module
 */
import { runService } from "../main.ts";
import { DEFAULTS } from "../src/config.ts";
import { Dispatcher, registerLoggingHandlers } from "../src/dispatch/dispatcher.ts";
import { PermanentError } from "../src/dispatch/handler_errors.ts";
import { GraphApiError } from "../src/graph/errors.ts";
import { replyKey, type ReplyRecord } from "../src/store/kv/keys.ts";

/** Reply records outlive Meta's 7-day retries, as the dedup mark does (`DEDUP_TTL_HOURS`). */
const REPLY_TTL_MS = DEFAULTS.dedupTtlMs;

const dispatcher = registerLoggingHandlers(new Dispatcher())
  .onMessage("text", async ({ event, graph, kv, log, signal }) => {
    if (!graph) throw new PermanentError("Cannot reply: set WHATSAPP_TOKEN");
    const { message, phoneNumberId, contact } = event;
    const key = replyKey(message.id, "shout");
    if ((await kv.get(key)).value !== null) return; // answered before: a retry or a replay
    try {
      const sent = await graph.sendText(phoneNumberId, {
        // A user known only by a business-scoped user id has no phone number: use what Meta sent.
        to: {
          phone: message.from ?? contact?.wa_id,
          userId: message.from_user_id ?? contact?.user_id,
        },
        text: message.text.body.toUpperCase(),
        replyTo: message.id,
        signal,
      });
      const record: ReplyRecord = { messageId: sent.messageId, phoneNumberId };
      await kv.set(key, record, { expireIn: REPLY_TTL_MS });
      log.info("shouted back", { replyId: sent.messageId });
    } catch (error) {
      // Meta refused for good (24-hour window, blocked user, bad token), or the send's outcome is
      // unknown (`unknown_outcome`: it may have arrived): do not send it again.
      if (error instanceof GraphApiError && !error.retryable) {
        throw new PermanentError(`Cannot reply (${error.category}): ${error.message}`);
      }
      throw error; // retried by the worker with backoff
    }
  }, { name: "shout" });

await runService({ args: Deno.args, dispatcher });
