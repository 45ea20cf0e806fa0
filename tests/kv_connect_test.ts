/**
 * `KV_PATH` as a KV Connect URL (a self-hosted `denokv` server or a Deno Deploy database), with
 * the service as a real subprocess under the start task's permission flags and a fake KV Connect
 * server on 127.0.0.1 (`fake_kv_connect.ts`) in place of `denokv`.
 */
import assert from "node:assert/strict";
import { RUNTIME_ENV_NAMES } from "../src/config_env.ts";
import { messageEventId } from "../src/events/event_ids.ts";
import { signBody } from "../src/webhook/signature.ts";
import { textsDelivery } from "./deliveries.ts";
import { startFakeKvConnect } from "./fake_kv_connect.ts";
import {
  runToExit,
  serviceEnv,
  startService,
  startTaskArgs,
  withEnvAllowed,
} from "./service_process.ts";
import { postSigned, textDelivery } from "./signed_deliveries.ts";
import { TEST_ADMIN_TOKEN, TEST_SECRET, waitFor } from "./support.ts";

const ACCESS_TOKEN = "ddo_test-kv-access-token-0123456789";

Deno.test("the service runs on a KV Connect URL, authenticated by DENO_KV_ACCESS_TOKEN", async () => {
  await using fake = startFakeKvConnect(ACCESS_TOKEN);
  const args = withEnvAllowed(await startTaskArgs(), RUNTIME_ENV_NAMES);
  const env = serviceEnv(fake.url, {
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    DENO_KV_ACCESS_TOKEN: ACCESS_TOKEN,
  });
  await using service = await startService(env, args);
  assert.ok(
    service.output.some((line) => line.includes('"msg":"started"') && line.includes("kv-connect")),
    service.output.join("\n"),
  );
  const delivery = await textDelivery(1, "KVCONNECT");
  assert.equal(await postSigned(service.origin, delivery), 200);
  assert.equal(await postSigned(service.origin, delivery), 200, "Meta's retry is acknowledged");

  const admin = { headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` } };
  const eventUrl = `${service.origin}/admin/events/${encodeURIComponent(delivery.id)}`;
  let record: { id?: string; state?: string; attempts?: number } = {};
  await waitFor(async () => {
    record = await (await fetch(eventUrl, admin)).json();
    return record.state === "done";
  }, "the event handled through KV Connect");
  assert.equal(record.id, delivery.id);
  assert.equal(record.attempts, 1, "recorded once, handled once");
  // A delivery of 25 events: KV Connect takes 10 checks per atomic, so its events are recorded in
  // commits of ten (a local file's hundred would be refused by the server).
  const wamids = Array.from({ length: 25 }, (_, i) => `wamid.KVCMANY${i}`);
  const body = new TextEncoder().encode(textsDelivery(wamids));
  const many = { id: "", body, signature: await signBody(TEST_SECRET, body) };
  assert.equal(await postSigned(service.origin, many), 200);
  await waitFor(async () => {
    const states = await Promise.all(wamids.map(async (wamid) => {
      const url = `${service.origin}/admin/events/${encodeURIComponent(messageEventId(wamid))}`;
      return ((await (await fetch(url, admin)).json()) as { state?: string }).state;
    }));
    return states.every((state) => state === "done");
  }, "the 25 events handled through KV Connect");
  const ready = await fetch(`${service.origin}/readyz`);
  assert.equal(ready.status, 200, "the readiness probe writes and reads through KV Connect");
  await ready.body?.cancel();

  // The data went to the KV Connect server, authenticated with the token from the environment.
  assert.ok(fake.size() > 0);
  assert.ok((fake.requests.get("/v2/atomic_write") ?? 0) > 0);
  assert.deepEqual([...new Set(fake.metadataTokens)], [ACCESS_TOKEN]);
  const { code } = await service.stop("SIGTERM");
  assert.equal(code, 0);
  assert.ok(!service.output.some((line) => line.includes(ACCESS_TOKEN)), "the token is not logged");
});

Deno.test("a KV Connect URL without DENO_KV_ACCESS_TOKEN stops the start with one line", async () => {
  await using fake = startFakeKvConnect(ACCESS_TOKEN);
  // The start task's own flags, whether or not they allow the variable yet: either way the
  // service names it and exits.
  const { code, text } = await runToExit(serviceEnv(fake.url));
  assert.notEqual(code, 0);
  const lines = text.trim().split("\n");
  assert.equal(lines.length, 1, text);
  assert.match(lines[0] ?? "", /"msg":"cannot start"/);
  assert.match(
    lines[0] ?? "",
    /Cannot open Deno KV at http:\/\/127\.0\.0\.1:\d+\/: .*DENO_KV_ACCESS_TOKEN/,
  );
  assert.deepEqual(fake.metadataTokens, [], "nothing was sent without a token");
});

Deno.test("a KV Connect server that refuses the token stops the start with one line", async () => {
  await using fake = startFakeKvConnect(ACCESS_TOKEN);
  const wrong = "ddo_wrong-token-9876543210";
  const args = withEnvAllowed(await startTaskArgs(), RUNTIME_ENV_NAMES);
  const { code, text } = await runToExit(
    serviceEnv(fake.url, { DENO_KV_ACCESS_TOKEN: wrong }),
    args,
  );
  assert.notEqual(code, 0);
  const lines = text.trim().split("\n");
  assert.equal(lines.length, 1, text);
  assert.match(lines[0] ?? "", /"msg":"cannot start".*Invalid access token/);
  assert.ok(!text.includes(wrong), "the token is not logged");
  assert.deepEqual(fake.metadataTokens, [wrong]);
});
