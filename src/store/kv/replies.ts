/**
 * Reply records in Deno KV, one key per handler and inbound message, replaced only when they still
 * hold what the caller read.
 *
 * @module
 */
import type { ReplyRecord } from "../reply_record.ts";
import type { ReplyOf } from "../store.ts";
import { commitWithRetry } from "./commit.ts";
import { replyKey } from "./keys.ts";

/** The reply record of `of`, or `null`. */
export async function getReply(kv: Deno.Kv, of: ReplyOf): Promise<ReplyRecord | null> {
  return (await kv.get<ReplyRecord>(replyKey(of.inboundId, of.handler))).value;
}

/**
 * Replaces the reply record of `of` with `next` (removes it for `null`) if it still equals
 * `expected`: one atomic checks the versionstamp read with it.
 */
export async function swapReply(
  kv: Deno.Kv,
  of: ReplyOf,
  expected: ReplyRecord | null,
  next: ReplyRecord | null,
  ttlMs: number,
): Promise<boolean> {
  const key = replyKey(of.inboundId, of.handler);
  const current = await kv.get<ReplyRecord>(key);
  if (!_isSame(current.value, expected)) return false;
  const result = await commitWithRetry(() => {
    const atomic = kv.atomic().check(current);
    return next === null ? atomic.delete(key) : atomic.set(key, next, { expireIn: ttlMs });
  });
  return result.ok;
}

/** Whether two reply records hold the same fields and values (field order aside). */
function _isSame(a: ReplyRecord | null, b: ReplyRecord | null): boolean {
  if (a === null || b === null) return a === b;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].every((key) =>
    (a as unknown as Record<string, unknown>)[key] ===
      (b as unknown as Record<string, unknown>)[key]
  );
}
