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
import { TEST_ADMIN_TOKEN, waitFor } from "./support.ts";

/** The replies the fake Graph API was asked to send. */
function _sends(fake: { requests: { path: string; body: unknown }[] }): unknown[] {
  return fake.requests.filter((request) => request.path.endsWith("/messages")).map((r) => r.body);
}

/** The reply Meta would get for a text delivery of `examples_test`'s sender. */
function _reply(delivery: { id: string }, text: string): Record<string, unknown> {
  return {
    messaging_product: "whatsapp",
    recipient_type: "individual",
    to: "5511999990000",
    type: "text",
    text: { body: text },
    context: { message_id: delivery.id.slice("message:".length) },
  };
}

Deno.test("examples/reply_hi.ts answers hi once, through Meta's redelivery and an operator's replay", async () => {
  await using fake = startFakeGraphApi();
  await withDataDir(async (kvPath) => {
    const env = serviceEnv(kvPath, {
      WHATSAPP_TOKEN: FAKE_TOKEN,
      GRAPH_API_BASE_URL: fake.url,
      ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      LOG_LEVEL: "debug", // "reply already sent" is a debug line
    });
    // Not `await using`: its SIGKILL would end `deno task` and orphan the entry it started.
    const service = await startService(env, ["task", "run", "examples/reply_hi.ts"]);
    try {
      const delivery = await textDelivery(3, "HI");
      assert.equal(await postSigned(service.origin, delivery), 200);
      await waitFor(() => _sends(fake).length === 1, "the reply", 10_000);
      assert.equal(await postSigned(service.origin, delivery), 200, "Meta's redelivery");
      const replay = await fetch(
        `${service.origin}/admin/events/${encodeURIComponent(delivery.id)}/replay`,
        { method: "POST", headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` } },
      );
      assert.equal(replay.status, 202, await replay.text());
      await waitFor(
        () => service.output.some((line) => line.includes('"msg":"reply already sent"')),
        "the replayed run to find its reply sent",
        10_000,
      );
      const { code } = await service.stop("SIGTERM");
      assert.equal(code, 0, service.output.join("\n"));
      assert.deepEqual(_sends(fake), [_reply(delivery, "hi")], "one reply in all");
    } finally {
      await service.stop("SIGTERM");
    }
  });
});

Deno.test("examples/shout.ts answers a text in capitals once, Meta's redelivery included", async () => {
  await using fake = startFakeGraphApi();
  await withDataDir(async (kvPath) => {
    const env = serviceEnv(kvPath, { WHATSAPP_TOKEN: FAKE_TOKEN, GRAPH_API_BASE_URL: fake.url });
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
      assert.deepEqual(_sends(fake), [_reply(delivery, "N7")], "the redelivery dropped at intake");
    } finally {
      await service.stop("SIGTERM");
    }
  });
});

Deno.test("examples/embed.ts serves createService with its own settings and stops on SIGTERM", async () => {
  await using fake = startFakeGraphApi();
  await withDataDir(async (kvPath) => {
    const env = serviceEnv(kvPath, { WHATSAPP_TOKEN: FAKE_TOKEN, GRAPH_API_BASE_URL: fake.url });
    const service = await startService(env, ["task", "run", "examples/embed.ts"]);
    try {
      const delivery = await textDelivery(5, "EMBED");
      assert.equal(await postSigned(service.origin, delivery), 200);
      await waitFor(() => _sends(fake).length === 1, "the reply", 10_000);
      const { code } = await service.stop("SIGTERM");
      assert.equal(code, 0, service.output.join("\n"));
      assert.deepEqual(_sends(fake), [_reply(delivery, "hi")]);
    } finally {
      await service.stop("SIGTERM");
    }
  });
});

Deno.test("the README's handler example is examples/reply_hi.ts, line for line, in eight lines", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const example = await Deno.readTextFile(new URL("../examples/reply_hi.ts", import.meta.url));
  const code = example.slice(example.indexOf("import { Dispatcher }"));
  assert.ok(code.trimEnd().split("\n").length <= 8, code);
  assert.ok(
    readme.includes(
      `// examples/reply_hi.ts: run it with \`deno task run examples/reply_hi.ts\`\n${code}\`\`\``,
    ),
  );
});
