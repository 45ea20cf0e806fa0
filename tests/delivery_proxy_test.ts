/**
 * How the service's deliveries travel, end to end: directly over the built-in HTTP/1.1 client when
 * no proxy variable is set, and through the proxy `HTTP_PROXY` names (by `fetch`, which applies
 * it) when one is: the built-in client would go around a proxy a team relies on.
 *
 * @module
 */
import assert from "node:assert/strict";
import { PROXY_VARIABLES } from "../src/destinations/transport.ts";
import { serviceEnv, startService, withDataDir } from "./service_process.ts";
import { postSigned, textDelivery } from "./signed_deliveries.ts";
import { waitFor } from "./support.ts";

/** A request a loopback server received: its target as written and its `User-Agent`. */
interface Seen {
  url: string;
  userAgent: string | null;
}

/** A loopback server answering 204 to everything, recording what it received. */
function startRecorder(): { origin: string; seen: Seen[]; close(): Promise<void> } {
  const seen: Seen[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      await request.body?.cancel();
      seen.push({ url: request.url, userAgent: request.headers.get("user-agent") });
      return new Response(null, { status: 204 });
    },
  );
  return {
    origin: `http://127.0.0.1:${server.addr.port}`,
    seen,
    close: () => server.shutdown(),
  };
}

/** Runs the service with one destination at `consumer` and `extraEnv`, posts one event. */
async function deliverOne(
  consumerUrl: string,
  extraEnv: Record<string, string>,
  delivered: () => boolean,
): Promise<string[]> {
  return await withDataDir(async (kvPath) => {
    const env = serviceEnv(kvPath, {
      ...extraEnv,
      DESTINATIONS: JSON.stringify([{
        name: "crm",
        url: consumerUrl,
        secrets: [`whsec_${new Uint8Array(32).fill(9).toBase64()}`],
      }]),
    });
    await using service = await startService(env);
    assert.equal(await postSigned(service.origin, await textDelivery(1, "PROXY")), 200);
    await waitFor(delivered, "the delivery to arrive");
    return service.output;
  });
}

/** Every proxy variable blank: none applies, whatever the environment running the tests holds. */
const NO_PROXY_SET = Object.fromEntries(PROXY_VARIABLES.map((name) => [name, ""]));

Deno.test("the service delivers directly over its HTTP/1.1 client when no proxy variable is set", async () => {
  const consumer = startRecorder();
  try {
    const output = await deliverOne(
      `${consumer.origin}/hooks`,
      NO_PROXY_SET,
      () => consumer.seen.length > 0,
    );
    assert.deepEqual(consumer.seen, [{ url: `${consumer.origin}/hooks`, userAgent: "wa-webhook" }]);
    assert.ok(!output.some((line) => line.includes("deliveries go through fetch")));
  } finally {
    await consumer.close();
  }
});

Deno.test("the service delivers through the proxy HTTP_PROXY names, by fetch", async () => {
  const consumer = startRecorder();
  const proxy = startRecorder();
  try {
    const output = await deliverOne(
      `${consumer.origin}/hooks`,
      { ...NO_PROXY_SET, HTTP_PROXY: proxy.origin },
      () => proxy.seen.length > 0,
    );
    // A proxy is asked for the absolute URL; the consumer itself is never reached directly.
    assert.equal(proxy.seen.length, 1);
    assert.equal(proxy.seen[0]!.url, `${consumer.origin}/hooks`);
    assert.notEqual(proxy.seen[0]!.userAgent, "wa-webhook", "sent by fetch");
    assert.deepEqual(consumer.seen, []);
    assert.ok(output.some((line) =>
      line.includes('"msg":"deliveries go through fetch"') &&
      line.includes("a proxy variable is set")
    ));
  } finally {
    await proxy.close();
    await consumer.close();
  }
});
