/**
 * The real service (`runService` from `main.ts`) with the counting handler of
 * `counting_dispatcher.ts`, for crash and multi-process tests; each effect records the process id.
 * `--handler-ms=N` makes each run take N ms.
 *
 * @module
 */
import { runService } from "../main.ts";
import { countingDispatcher } from "./counting_dispatcher.ts";

const handlerMs = Number(Deno.args.find((a) => a.startsWith("--handler-ms="))?.split("=")[1] ?? 0);

await runService({
  args: Deno.args,
  dispatcher: countingDispatcher({
    handledBy: Deno.pid,
    handlerMs,
    kvPath: Deno.env.get("KV_PATH")!,
  }),
});
