/**
 * The counting handler of the crash and multi-process tests. Each run is counted under
 * `["test_runs", id]`, and its effect is recorded once under `["test_effects", id]` with an atomic
 * check, the way a handler makes its own writes idempotent; the effect's value says who ran it.
 *
 * @module
 */
import { Dispatcher } from "../src/dispatch/dispatcher.ts";
import { commitWithRetry } from "../src/store/commit.ts";

/** Options for {@linkcode countingDispatcher}. */
export interface CountingOptions {
  /** Stored as the effect's value: who handled the event (a process id, an isolate id). */
  handledBy: string | number;
  /** How long each run takes. */
  handlerMs?: number;
}

/** A dispatcher whose one message handler counts its runs and records its effect once. */
export function countingDispatcher(options: CountingOptions): Dispatcher {
  const handlerMs = options.handlerMs ?? 0;
  return new Dispatcher().on("message", async ({ event, kv, signal }) => {
    // Several processes share the KV file: commits retry SQLite's "database is locked".
    await commitWithRetry(() => kv.atomic().sum(["test_runs", event.id], 1n));
    if (handlerMs > 0) await new Promise((resolve) => setTimeout(resolve, handlerMs));
    signal.throwIfAborted();
    await commitWithRetry(() =>
      kv.atomic()
        .check({ key: ["test_effects", event.id], versionstamp: null })
        .set(["test_effects", event.id], options.handledBy)
    );
  }, { name: "count" });
}
