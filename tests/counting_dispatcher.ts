/**
 * The counting handler of the crash and multi-process tests. Each run is counted under
 * `["test_runs", id]`, and its effect is recorded once under `["test_effects", id]` with an atomic
 * check, the way a handler makes its own writes idempotent; the effect's value says who ran it.
 *
 * @module
 */
import { Dispatcher } from "../src/dispatch/dispatcher.ts";
import { commitWithRetry, isDatabaseLocked, retryWhileLocked } from "../src/store/kv/commit.ts";
import type { KvEventRecord } from "../src/store/kv/keys.ts";

/** Options for {@linkcode countingDispatcher}. */
export interface CountingOptions {
  /** Stored as the effect's value: who handled the event (a process id, an isolate id). */
  handledBy: string | number;
  /** How long each run takes. */
  handlerMs?: number;
  /** The KV file the service uses (`KV_PATH`): the handler opens its own connection to it. */
  kvPath: string;
}

/** A dispatcher whose one message handler counts its runs and records its effect once. */
export function countingDispatcher(options: CountingOptions): Dispatcher {
  const handlerMs = options.handlerMs ?? 0;
  let opened: Promise<Deno.Kv> | undefined;
  return new Dispatcher().on("message", async ({ event, signal }) => {
    // Several processes or isolates open the file at once: retry SQLite's "database is locked".
    const kv = await (opened ??= retryWhileLocked(() => Deno.openKv(options.kvPath)));
    // Several processes share the KV file: commits retry SQLite's "database is locked", and go on
    // retrying past the store's short bound, so that the count never fails a run (a failed run is
    // retried, which the tests would count as a second run of the handler).
    await _patiently(() => commitWithRetry(() => kv.atomic().sum(["test_runs", event.id], 1n)));
    if (handlerMs > 0) await new Promise((resolve) => setTimeout(resolve, handlerMs));
    signal.throwIfAborted();
    await _patiently(() =>
      commitWithRetry(() =>
        kv.atomic()
          .check({ key: ["test_effects", event.id], versionstamp: null })
          .set(["test_effects", event.id], options.handledBy)
      )
    );
  }, { name: "count" });
}

/** How long the counting handler keeps retrying a locked KV file before its run fails. */
const PATIENCE_MS = 20_000;

/** Runs `commit` again while it fails with `database is locked`, for up to {@linkcode PATIENCE_MS}. */
async function _patiently<T>(commit: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + PATIENCE_MS;
  for (;;) {
    try {
      return await commit();
    } catch (error) {
      if (!isDatabaseLocked(error) || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 30));
    }
  }
}

/** What the counting handler left in a KV file, and every event's state. */
export interface Counts {
  /** Handler runs per event id. */
  runs: Map<string, bigint>;
  /** Who recorded each event's effect, per event id. */
  effects: Map<string, string | number>;
  /** Each event's record state, per event id. */
  states: Map<string, string>;
}

/** Opens the KV file at `path` (alongside the service using it) and reads the counts. */
export async function readCounts(path: string): Promise<Counts> {
  const kv = await Deno.openKv(path);
  try {
    const runs = new Map<string, bigint>();
    for await (const e of kv.list<Deno.KvU64>({ prefix: ["test_runs"] })) {
      runs.set(String(e.key[1]), e.value.value);
    }
    const effects = new Map<string, string | number>();
    for await (const e of kv.list<string | number>({ prefix: ["test_effects"] })) {
      effects.set(String(e.key[1]), e.value);
    }
    const states = new Map<string, string>();
    for await (const e of kv.list<KvEventRecord>({ prefix: ["events"] })) {
      states.set(e.value.id, e.value.state);
    }
    return { runs, effects, states };
  } finally {
    kv.close();
  }
}
