/**
 * Reading many keys of Deno KV at once: `kv.getMany` takes at most ten keys a call, so longer
 * lists are read ten at a time.
 *
 * @module
 */

/** `kv.getMany` reads at most this many keys per call. */
export const GET_MANY_MAX_KEYS = 10;

/** The entries of `keys`, in their order, read {@linkcode GET_MANY_MAX_KEYS} at a time. */
export async function getManyInBatches<T>(
  kv: Deno.Kv,
  keys: readonly Deno.KvKey[],
): Promise<Deno.KvEntryMaybe<T>[]> {
  const entries: Deno.KvEntryMaybe<T>[] = [];
  for (let i = 0; i < keys.length; i += GET_MANY_MAX_KEYS) {
    entries.push(...await kv.getMany<T[]>(keys.slice(i, i + GET_MANY_MAX_KEYS)));
  }
  return entries;
}
