/**
 * Waking the workers of every instance: statements that make work due (recording, replays) signal
 * {@linkcode DUE_CHANNEL} with `pg_notify` (delivered when they commit), and each store listens on
 * it through one connection of its own, calling back the worker and the deliverers, which then
 * look for due work at once rather than at their next poll. The poll stays the backstop: a
 * notification lost while the listening connection reconnects costs at most one poll interval.
 *
 * @module
 */
import type postgres from "postgres";
import type { Logger } from "../../ops/log.ts";

/** The channel due work is signalled on. */
export const DUE_CHANNEL = "wa_webhook_due";

/** Listens on {@linkcode DUE_CHANNEL} for one store. */
export interface DueListener {
  /** Adds a callback, run on each notification; returns its removal. */
  add(callback: () => void): () => void;
}

/**
 * Creates the listener over `sql`: the `LISTEN` starts with the first callback (postgres.js keeps
 * it on a connection of its own and listens again after a reconnection) and ends with the client.
 */
export function createDueListener(sql: postgres.Sql, logger: Logger): DueListener {
  const callbacks = new Set<() => void>();
  let listening: Promise<unknown> | undefined;
  const notify = (): void => {
    for (const callback of callbacks) callback();
  };
  return {
    add(callback) {
      callbacks.add(callback);
      listening ??= sql.listen(DUE_CHANNEL, notify).catch((error) => {
        // The poll still finds the work; the next callback added tries again.
        listening = undefined;
        logger.warn("cannot listen for due work; polling only", { error });
      });
      return () => void callbacks.delete(callback);
    },
  };
}

/** Signals due work to every instance's listener (the caller's own included). */
export async function notifyDue(sql: postgres.Sql): Promise<void> {
  await sql`SELECT pg_notify(${DUE_CHANNEL}, '')`;
}
