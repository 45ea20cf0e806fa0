/**
 * The smallest bot: answers every text message with "hi", exactly once whatever Meta's retries,
 * the worker's retries or an operator's replay do. Run it with `deno task run examples/reply_hi.ts`
 * (the start task's permissions, your environment).
 *
 * @module
 */
import { Dispatcher } from "../mod.ts";
import { runService } from "../main.ts";

const bot = new Dispatcher().onMessage("text", (ctx) => ctx.reply("hi"), { name: "hi" });
await runService({ args: Deno.args, dispatcher: bot });
