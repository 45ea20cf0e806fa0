/**
 * The store contract (`tests/store_contract.ts`) run against the Deno KV store, each test on a
 * Deno KV of its own in a temp directory: once with the checks per atomic a local file allows (as
 * the service opens one), once with KV Connect's (a self-hosted `denokv`, Deno Deploy).
 *
 * @module
 */
import { KV_CONNECT_CHECKS_PER_ATOMIC, LOCAL_CHECKS_PER_ATOMIC } from "../src/store/kv/location.ts";
import { createKvStore } from "../src/store/kv/store.ts";
import { storeContract } from "./store_contract.ts";

for (
  const [name, checksPerAtomic] of [
    ["Deno KV", LOCAL_CHECKS_PER_ATOMIC],
    ["Deno KV, KV Connect's checks per atomic", KV_CONNECT_CHECKS_PER_ATOMIC],
  ] as const
) {
  storeContract(name, async (options) => {
    const dir = await Deno.makeTempDir({ prefix: "wa-webhook-store-" });
    const kv = await Deno.openKv(`${dir}/store.kv`);
    const store = createKvStore(kv, { ...options, checksPerAtomic });
    return {
      store,
      close: async () => {
        store.close();
        await Deno.remove(dir, { recursive: true });
      },
    };
  });
}
