/**
 * The real service (`runService` from `main.ts`) with one extra handler for crash and
 * multi-process tests. Each run of the handler is counted under `["test_runs", id]`, and its
 * effect is recorded once under `["test_effects", id]` with an atomic check, the way a handler
 * makes its own writes idempotent. `--handler-ms=N` makes each run take N ms.
 *
 * @module
 */
import { runService } from "../main.ts";
import { Dispatcher } from "../src/dispatch/dispatcher.ts";
import { commitWithRetry } from "../src/store/commit.ts";

const handlerMs = Number(Deno.args.find((a) => a.startsWith("--handler-ms="))?.split("=")[1] ?? 0);

const dispatcher = new Dispatcher().on("message", async ({ event, kv, signal }) => {
  // Several processes share the KV file: commits retry SQLite's "database is locked".
  await commitWithRetry(() => kv.atomic().sum(["test_runs", event.id], 1n));
  if (handlerMs > 0) await new Promise((resolve) => setTimeout(resolve, handlerMs));
  signal.throwIfAborted();
  await commitWithRetry(() =>
    kv.atomic()
      .check({ key: ["test_effects", event.id], versionstamp: null })
      .set(["test_effects", event.id], Deno.pid)
  );
}, { name: "count" });

await runService({ args: Deno.args, dispatcher });
