/**
 * Conversation windows in Deno KV: one key per business number and user holding when the window
 * closes. Each opening is one atomic that checks the versionstamp it read, retried on conflict, so
 * two workers extending one window at once keep the later close.
 *
 * @module
 */
import {
  isKeyableWindow,
  type OpenWindowOptions,
  WINDOW_KEPT_AFTER_CLOSE_MS,
  type WindowOf,
  type WindowRecord,
} from "../conversation_window.ts";
import { commitWithRetry } from "./commit.ts";
import { windowKey } from "./keys.ts";

/** Conflicting commits retried before giving up (each conflict means another opening landed). */
const MAX_CONFLICT_RETRIES = 20;

/**
 * Stores `options.closesAt` as the close of `of`'s window if it is later than the stored one;
 * returns whether it did. A window that would be gone already (closed longer ago than the margin
 * it is kept for) is not written.
 *
 * @throws when Deno KV fails, or keeps conflicting past the retry bound
 */
export async function openWindow(
  kv: Deno.Kv,
  of: WindowOf,
  options: OpenWindowOptions,
): Promise<boolean> {
  const { closesAt, now } = options;
  if (!isKeyableWindow(of) || !Number.isFinite(closesAt)) return false;
  const lifeMs = closesAt + WINDOW_KEPT_AFTER_CLOSE_MS - now;
  if (lifeMs <= 0) return false;
  const key = windowKey(of.business, of.user);
  for (let attempt = 1; attempt <= MAX_CONFLICT_RETRIES; attempt++) {
    const current = await kv.get<WindowRecord>(key);
    if (current.value && current.value.closesAt >= closesAt) return false;
    const record: WindowRecord = { closesAt };
    const result = await commitWithRetry(() =>
      kv.atomic().check(current).set(key, record, { expireIn: lifeMs })
    );
    if (result.ok) return true;
  }
  throw new Error(
    `Cannot open the window of user "${of.user}" on business "${of.business}": ` +
      `it kept changing for ${MAX_CONFLICT_RETRIES} attempts`,
  );
}

/** The stored window of `of`, or `null`. */
export async function getWindow(kv: Deno.Kv, of: WindowOf): Promise<WindowRecord | null> {
  if (!isKeyableWindow(of)) return null;
  return (await kv.get<WindowRecord>(windowKey(of.business, of.user))).value;
}
