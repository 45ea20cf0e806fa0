/**
 * The library's `createService` in process: built from settings in code (no environment), it
 * opens its default store, runs the caller's handlers beside the built-in ones, and `stop()` lets
 * go of what it opened; bad settings are refused with every reason.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ConfigError, createService, Dispatcher, openKvStore } from "../mod.ts";
import { textsDelivery } from "./deliveries.ts";
import { captureLogs, TEST_SECRET, TEST_VERIFY_TOKEN, waitFor } from "./support.ts";
import { signBody } from "../src/webhook/signature.ts";

async function _signedPost(body: string): Promise<Request> {
  const bytes = new TextEncoder().encode(body);
  return new Request("http://127.0.0.1/webhook/whatsapp", {
    method: "POST",
    body: bytes,
    headers: {
      "content-type": "application/json",
      "x-hub-signature-256": await signBody(TEST_SECRET, bytes),
    },
  });
}

Deno.test("createService runs the caller's handlers over the Deno KV file it opens, where the event is done after stop()", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wa-webhook-service-" });
  try {
    const kvPath = `${dir}/nested/service.kv`; // its directory does not exist yet
    const seen: string[] = [];
    const service = await createService({
      config: { appSecrets: [TEST_SECRET], verifyToken: TEST_VERIFY_TOKEN, kvPath },
      dispatcher: new Dispatcher().onMessage("text", ({ event }) => {
        seen.push(event.id);
      }, { name: "seen" }),
      logger: captureLogs().logger,
    });
    service.start();
    const response = await service.fetch(await _signedPost(textsDelivery(["wamid.LIB1"])));
    assert.equal(response.status, 200);
    await waitFor(() => seen.length === 1, "the caller's handler");
    assert.deepEqual(seen, ["message:wamid.LIB1"]);
    await service.stop();
    // The file, its directory created by the service, holds the event, done.
    const store = await openKvStore(kvPath);
    try {
      const stored = await store.getEvent("message:wamid.LIB1");
      assert.equal(stored?.record.state, "done");
    } finally {
      store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createService leaves a store it was given open for its owner", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wa-webhook-service-" });
  const store = await openKvStore(`${dir}/given.kv`);
  try {
    const service = await createService({
      config: { appSecrets: [TEST_SECRET], verifyToken: TEST_VERIFY_TOKEN },
      store,
      logger: captureLogs().logger,
    });
    service.start();
    await service.stop();
    assert.equal(await store.getEvent("message:wamid.NONE"), null, "still usable");
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createService refuses bad settings with every reason, naming the fields", async () => {
  const error = await createService({
    config: { appSecrets: [], verifyToken: "", leaseMs: 5 },
    logger: captureLogs().logger,
  }).then(() => undefined, (caught: unknown) => caught);
  assert.ok(error instanceof ConfigError, String(error));
  assert.match(error.message, /appSecrets/);
  assert.match(error.message, /verifyToken/);
  assert.match(error.message, /leaseMs/);
});

Deno.test("createService delivers to destinations by fetch unless told deliveryHttp: direct", async () => {
  const seen: (string | null)[] = [];
  const consumer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      await request.body?.cancel();
      seen.push(request.headers.get("user-agent"));
      return new Response(null, { status: 204 });
    },
  );
  const dir = await Deno.makeTempDir({ prefix: "wa-webhook-service-" });
  try {
    for (
      const [deliveryHttp, wamid] of [[undefined, "wamid.FETCH"], [
        "direct",
        "wamid.DIRECT",
      ]] as const
    ) {
      const service = await createService({
        config: {
          appSecrets: [TEST_SECRET],
          verifyToken: TEST_VERIFY_TOKEN,
          kvPath: `${dir}/${wamid}.kv`,
          destinations: [{
            name: "crm",
            url: `http://127.0.0.1:${consumer.addr.port}/hooks`,
            secrets: [`whsec_${new Uint8Array(32).fill(3).toBase64()}`],
          }],
        },
        logger: captureLogs().logger,
        ...(deliveryHttp ? { deliveryHttp } : {}),
      });
      service.start();
      const response = await service.fetch(await _signedPost(textsDelivery([wamid])));
      assert.equal(response.status, 200);
      await waitFor(() => seen.length === (deliveryHttp ? 2 : 1), `the delivery of ${wamid}`);
      await service.stop();
    }
    // Deno's fetch names itself; the built-in client says what it is.
    assert.match(seen[0]!, /^Deno\//);
    assert.equal(seen[1], "wa-webhook");
  } finally {
    await consumer.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
