/**
 * Choosing and opening the store from the configuration: `STORE_URL` (a `postgres://` URL) opens
 * the PostgreSQL store, shared by every instance; without it, Deno KV where `KV_PATH` says (or,
 * on Deno Deploy, the app's database), exactly as before PostgreSQL existed.
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { Logger } from "../ops/log.ts";
import { checksPerAtomicAt, kvOpenFailureReason, selectKvLocation } from "./kv/location.ts";
import { isDirectoryLocation, openKv } from "./kv/open.ts";
import { createKvStore } from "./kv/store.ts";
import { openPgStore } from "./pg/open.ts";
import type { Store, StoreOptions } from "./store.ts";

/** Options for {@linkcode openStore}. */
export interface OpenStoreOptions {
  /** What the store keeps and for how long (`storeOptions(config)` of `app.ts`). */
  storeOptions: StoreOptions;
  logger: Logger;
  /** Whether `KV_PATH` was set rather than defaulted (Deno Deploy then uses the app's database). */
  isKvPathSet: boolean;
  /** Whether the service runs on Deno Deploy. */
  isDeploy: boolean;
}

/** An open store, what kind it is (for the "started" line), and how to let go of it. */
export interface OpenedStore {
  store: Store;
  /**
   * What the "started" line says about it: `{ store: "postgres" }`, or Deno KV's location kind
   * as it always has (`{ kv: "file" }`, `memory`, `kv-connect`, `deploy`).
   */
  logFields: Record<string, string>;
  /** Something an operator should fix, for one warning line at start. */
  warning?: string;
  /** The Deno KV behind the store, when it is Deno KV (the KV media store shares it). */
  kv?: Deno.Kv;
  /** Closes the store and waits until it has let go (PostgreSQL's pool ends its connections). */
  close(): Promise<void>;
}

/** Raised when the store cannot be opened; the message is one line a person can act on. */
export class StoreOpenError extends Error {
  override name = "StoreOpenError";
}

/**
 * Opens the store the configuration selects.
 *
 * @throws {StoreOpenError} saying why it cannot be opened and what to change (never the URL's
 *   password)
 */
export async function openStore(config: Config, options: OpenStoreOptions): Promise<OpenedStore> {
  const { logger } = options;
  if (config.storeUrl !== undefined) {
    try {
      const store = await openPgStore(config.storeUrl, {
        ...options.storeOptions,
        logger,
        poolSize: config.storePoolSize,
      });
      return { store, logFields: { store: "postgres" }, close: () => store.end() };
    } catch (error) {
      throw new StoreOpenError(pgOpenFailureReason(config.storeUrl, error));
    }
  }
  const location = selectKvLocation(config.kvPath, options);
  let kv: Deno.Kv;
  try {
    kv = await openKv(location);
  } catch (error) {
    const isDirectory = await isDirectoryLocation(location);
    throw new StoreOpenError(kvOpenFailureReason(location, { error, isDirectory }));
  }
  const store = createKvStore(kv, {
    ...options.storeOptions,
    logger,
    checksPerAtomic: checksPerAtomicAt(location),
  });
  return {
    store,
    kv,
    logFields: { kv: location.kind },
    ...(location.warning ? { warning: location.warning } : {}),
    close: () => Promise.resolve(store.close()),
  };
}

/**
 * Why PostgreSQL at `url` could not be opened: the server, the database and the driver's reason,
 * never the URL's user password.
 */
export function pgOpenFailureReason(url: string, error: unknown): string {
  let where = "STORE_URL";
  try {
    const parsed = new URL(url);
    where = `"${parsed.host}" database "${decodeURIComponent(parsed.pathname.slice(1))}"`;
  } catch { /* the configuration checked it: unreachable */ }
  const reason = error instanceof Error ? error.message : String(error);
  return `Cannot open PostgreSQL at ${where} (STORE_URL): ${reason}`;
}
