/**
 * The store contract (`tests/store_contract.ts`) run against the Deno KV store, each test on a
 * Deno KV of its own in a temp directory.
 *
 * @module
 */
import { createKvStore } from "../src/store/kv/store.ts";
import { storeContract } from "./store_contract.ts";

storeContract("Deno KV", async (options) => {
  const dir = await Deno.makeTempDir({ prefix: "wa-webhook-store-" });
  const kv = await Deno.openKv(`${dir}/store.kv`);
  const store = createKvStore(kv, options);
  return {
    store,
    close: async () => {
      store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
});
