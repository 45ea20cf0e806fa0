/**
 * Opening the PostgreSQL store at `STORE_URL`: a pool of `poolSize` connections, the schema
 * brought up to date (`migrations.ts`, under an advisory lock), then the store.
 *
 * @module
 */
import { DEFAULTS } from "../../config.ts";
import { connectPg } from "./client.ts";
import { migrate } from "./migrations.ts";
import { createPgStore, type PgStore, type PgStoreOptions } from "./store.ts";

/** Options for {@linkcode openPgStore}. */
export interface OpenPgStoreOptions extends Partial<PgStoreOptions> {
  /** Connections in the pool at most. */
  poolSize?: number;
}

/**
 * Opens the store at `url`: connects, migrates, and returns it. Options left out take the
 * service's defaults (`DEFAULTS`).
 *
 * @throws `PgUrlError` for a URL it cannot use, or the database's error when it cannot connect or
 *   migrate (the pool is closed first)
 */
export async function openPgStore(url: string, options: OpenPgStoreOptions = {}): Promise<PgStore> {
  const { poolSize = DEFAULTS.storePoolSize, ...storeOptions } = options;
  const sql = connectPg(url, { poolSize });
  try {
    await migrate(sql);
  } catch (error) {
    await sql.end({ timeout: 0 });
    throw error;
  }
  return createPgStore(sql, {
    dedupTtlMs: DEFAULTS.dedupTtlMs,
    retentionMs: DEFAULTS.eventRetentionMs,
    leaseMs: DEFAULTS.leaseMs,
    maxInFlight: Math.max(1, Math.floor(poolSize / 2)),
    ...storeOptions,
  });
}
