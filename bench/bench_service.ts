/**
 * The real service (`runService` from `main.ts`) for the intake benchmark, with a no-op handler
 * that counts the events it completed and prints the count every 200 ms, so the benchmark can
 * measure the worker's drain rate from outside.
 *
 * @module
 */
import { runService } from "../main.ts";
import { Dispatcher } from "../src/dispatch/dispatcher.ts";

/** How often the handled count is printed. */
const PROGRESS_INTERVAL_MS = 200;

let handled = 0;
const dispatcher = new Dispatcher().onUnhandled(() => {
  handled++;
}, { name: "bench-noop" });
dispatcher.on("message", () => {
  handled++;
}, { name: "bench-count" });

setInterval(() => {
  // deno-lint-ignore no-console
  console.log(JSON.stringify({ msg: "bench progress", handled, at: Date.now() }));
}, PROGRESS_INTERVAL_MS);

await runService({ args: Deno.args, dispatcher });
