/**
 * The media store the configuration names: the directory `MEDIA_DIR`, or Deno KV in parts
 * (`MEDIA_STORE=kv`) over the Deno KV the service opened.
 *
 * @module
 */
import { type Config, ConfigError } from "../config.ts";
import { createKvMediaStore } from "../store/kv/media.ts";
import { createDirMediaStore } from "./dir_store.ts";
import type { MediaStore } from "./media_store.ts";

/**
 * The media store of `config`; `kv` is needed for `MEDIA_STORE=kv`.
 *
 * @throws {ConfigError} when `MEDIA_STORE=kv` and no Deno KV is given
 */
export function selectMediaStore(
  config: Pick<Config, "mediaStore" | "mediaDir" | "eventRetentionMs">,
  kv?: Deno.Kv,
): MediaStore {
  if (config.mediaStore === "dir") return createDirMediaStore(config.mediaDir);
  if (kv === undefined) {
    throw new ConfigError(
      'Invalid configuration: MEDIA_STORE is "kv" but no Deno KV was given for it: pass a media store',
    );
  }
  return createKvMediaStore(kv, { retentionMs: config.eventRetentionMs });
}
