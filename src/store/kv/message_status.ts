/**
 * Message statuses in Deno KV: each change is one atomic that checks the versionstamp it read,
 * retried on conflict, so two workers (or processes) applying statuses of one message at once
 * keep the furthest.
 *
 * @module
 */
import { isFurther, type MessageStatusRecord } from "../message_status.ts";
import { commitWithRetry } from "./commit.ts";
import { messageStatusKey } from "./keys.ts";

/**
 * Message ids longer than this are not kept: a KV key holds at most 2 KiB, and real `wamid`s are
 * under a hundred characters.
 */
export const MAX_WAMID_CHARS = 512;

/** Conflicting commits retried before giving up (each conflict means another status landed). */
const MAX_CONFLICT_RETRIES = 20;

/**
 * Stores `next` if it moves its message further than the stored status; returns whether it did.
 *
 * @throws when Deno KV fails, or keeps conflicting past the retry bound
 */
export async function advanceMessageStatus(
  kv: Deno.Kv,
  next: MessageStatusRecord,
  retentionMs: number,
): Promise<boolean> {
  if (next.id.length > MAX_WAMID_CHARS) return false;
  const key = messageStatusKey(next.id);
  for (let attempt = 1; attempt <= MAX_CONFLICT_RETRIES; attempt++) {
    const current = await kv.get<MessageStatusRecord>(key);
    if (current.value && !isFurther(current.value.status, next.status)) return false;
    const result = await commitWithRetry(() =>
      kv.atomic().check(current).set(key, next, { expireIn: retentionMs })
    );
    if (result.ok) return true;
  }
  throw new Error(
    `Cannot apply status "${next.status}" to message "${next.id}": ` +
      `it kept changing for ${MAX_CONFLICT_RETRIES} attempts`,
  );
}

/** The stored status of message `wamid`, or `null`. */
export async function getMessageStatus(
  kv: Deno.Kv,
  wamid: string,
): Promise<MessageStatusRecord | null> {
  if (wamid.length > MAX_WAMID_CHARS) return null;
  return (await kv.get<MessageStatusRecord>(messageStatusKey(wamid))).value;
}
