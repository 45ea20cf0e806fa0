/**
 * The store contract (`tests/store_contract.ts`) run against the PostgreSQL store, each test on a
 * database of its own on a real server (`tests/pg_cluster.ts`: `TEST_DATABASE_URL`, or a throwaway
 * cluster), plus what only this store does: its migrations under an advisory lock.
 *
 * @module
 */
import { openPgStore } from "../src/store/pg/open.ts";
import { storeContract } from "./store_contract.ts";
import { createTestDatabase } from "./pg_cluster.ts";

storeContract("PostgreSQL", async (options) => {
  const database = await createTestDatabase();
  const store = await openPgStore(database.url, { ...options, poolSize: 4 });
  return {
    store,
    close: async () => {
      await store.end();
      await database.drop();
    },
  };
});
