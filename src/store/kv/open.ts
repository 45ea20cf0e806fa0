/**
 * Opening Deno KV where `location.ts` chose, creating a file's directory first (`Deno.openKv`
 * does not) and riding out the `database is locked` that several processes opening one new file
 * at once meet.
 *
 * @module
 */
import { dirname } from "node:path";
import { DEFAULTS } from "../../config.ts";
import { retryWhileLocked } from "./commit.ts";
import type { Store } from "../store.ts";
import { checksPerAtomicAt, type KvLocation, selectKvLocation } from "./location.ts";
import { createKvStore, type KvStoreOptions } from "./store.ts";

/** Opens Deno KV at `location`; throws the runtime's error when it cannot. */
export async function openKv(location: KvLocation): Promise<Deno.Kv> {
  if (location.kind === "file" && location.path !== undefined) {
    await Deno.mkdir(dirname(location.path), { recursive: true });
  }
  return await retryWhileLocked(() => Deno.openKv(location.path));
}

/** Whether a file location is a directory (or names one, ending in a separator). */
export async function isDirectoryLocation(location: KvLocation): Promise<boolean> {
  if (location.kind !== "file" || location.path === undefined) return false;
  if (/[\\/]$/.test(location.path)) return true;
  try {
    return (await Deno.stat(location.path)).isDirectory;
  } catch {
    return false; // absent, or not readable: the open error says the rest
  }
}

/**
 * Opens Deno KV at `path` (a file, its directory created; `:memory:`; or a KV Connect URL) as a
 * {@linkcode Store}; closing the store closes it. Options left out take the service's defaults
 * (`DEFAULTS`: dedup TTL, event retention, lease).
 */
export async function openKvStore(
  path: string,
  options: Partial<KvStoreOptions> = {},
): Promise<Store> {
  const location = selectKvLocation(path, { isKvPathSet: true, isDeploy: false });
  return createKvStore(await openKv(location), {
    dedupTtlMs: DEFAULTS.dedupTtlMs,
    retentionMs: DEFAULTS.eventRetentionMs,
    leaseMs: DEFAULTS.leaseMs,
    checksPerAtomic: checksPerAtomicAt(location),
    ...options,
  });
}
