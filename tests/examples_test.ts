/**
 * Every example in `examples/` runs against a real instance: started with `deno task run`, as its
 * doc says, it handles a signed delivery through the fake Graph API. (`deno task check` type-checks
 * them.)
 *
 * @module
 */
import assert from "node:assert/strict";
import { FAKE_TOKEN, startFakeGraphApi } from "./fake_graph_api.ts";
import { postSigned, textDelivery } from "./signed_deliveries.ts";
import { serviceEnv, startService, withDataDir } from "./service_process.ts";
import { waitFor } from "./support.ts";

Deno.test("examples/shout.ts answers a text in capitals once, Meta's redelivery included", async () => {
  await using fake = startFakeGraphApi();
  await withDataDir(async (kvPath) => {
    const env = serviceEnv(kvPath, { WHATSAPP_TOKEN: FAKE_TOKEN, GRAPH_API_BASE_URL: fake.url });
    // Not `await using`: its SIGKILL would end `deno task` and orphan the entry it started.
    const service = await startService(env, ["task", "run", "examples/shout.ts"]);
    try {
      const delivery = await textDelivery(7, "SHOUT");
      assert.equal(await postSigned(service.origin, delivery), 200);
      await waitFor(
        () => service.output.some((line) => line.includes('"msg":"shouted back"')),
        "the example's handler to reply",
        10_000,
      );
      assert.equal(await postSigned(service.origin, delivery), 200, "Meta's redelivery");
      const { code } = await service.stop("SIGTERM");
      assert.equal(code, 0, service.output.join("\n"));

      const sends = fake.requests.filter((request) => request.path.endsWith("/messages"));
      assert.equal(sends.length, 1, "one reply, the redelivery dropped at intake");
      assert.deepEqual(sends[0]?.body, {
        messaging_product: "whatsapp",
        recipient_type: "individual",
        to: "5511999990000",
        type: "text",
        text: { body: "N7" },
        context: { message_id: delivery.id.slice("message:".length) },
      });
    } finally {
      await service.stop("SIGTERM");
    }
  });
});

Deno.test("the README's handler example is examples/shout.ts, line for line", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const example = await Deno.readTextFile(new URL("../examples/shout.ts", import.meta.url));
  const code = example.slice(example.indexOf("import { runService }"));
  assert.ok(
    readme.includes(
      `// examples/shout.ts: run it with \`deno task run examples/shout.ts\`\n${code}\`\`\``,
    ),
  );
});
