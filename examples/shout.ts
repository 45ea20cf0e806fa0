/**
 * An example entry: answers every text message with its own text in capitals, once, and says so
 * in the log; a reply Meta refuses for good (the 24-hour window, a blocked user) dead-letters the
 * event with Meta's reason. Run it with `deno task run examples/shout.ts`.
 *
 * @module
 */
import { Dispatcher } from "../mod.ts";
import { runService } from "../main.ts";

const bot = new Dispatcher().onMessage("text", async ({ event, reply, log }) => {
  const { status, messageId } = await reply(event.message.text.body.toUpperCase());
  log.info("shouted back", { replyId: messageId, isNew: status === "sent" });
}, { name: "shout" });

await runService({ args: Deno.args, dispatcher: bot });
