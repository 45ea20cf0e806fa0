/**
 * `serve.ts` with the counting handler of `counting_dispatcher.ts`, for `deno serve --parallel`
 * tests: every isolate runs this module, logs its own id once started, and records that id as
 * the effect of each event it handles.
 *
 * @module
 */
import { startServeEntry } from "../main.ts";
import { createLogger } from "../src/ops/log.ts";
import { countingDispatcher } from "./counting_dispatcher.ts";

const isolateId = crypto.randomUUID();
const entry = await startServeEntry({
  args: Deno.args,
  dispatcher: countingDispatcher({ handledBy: isolateId, kvPath: Deno.env.get("KV_PATH")! }),
});
createLogger({ level: "info" }).info("test isolate ready", { isolateId });

export default entry;
