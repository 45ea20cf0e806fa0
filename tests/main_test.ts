/**
 * The service as a real subprocess, started with the start task's exact flags: what
 * `deno task start` and the compiled binary run.
 */
import assert from "node:assert/strict";
import { TEST_SECRET, TEST_VERIFY_TOKEN } from "./support.ts";
import { ROOT, runToExit, serviceEnv, startService, withDataDir } from "./service_process.ts";
import { signBody } from "../src/webhook/signature.ts";
import { DEVELOPMENT_PLACEHOLDERS } from "../src/config.ts";

const DELIVERY = new TextEncoder().encode('{"object":"whatsapp_business_account","entry":[]}');

Deno.test("the service serves with the start task's exact permission flags", async () => {
  await withDataDir(async (kvPath) => {
    await using service = await startService(serviceEnv(kvPath));
    const handshake = await fetch(
      `${service.origin}/webhook/whatsapp?hub.mode=subscribe&hub.verify_token=${TEST_VERIFY_TOKEN}&hub.challenge=abc`,
    );
    assert.equal(handshake.status, 200);
    assert.equal(await handshake.text(), "abc");
    const delivery = await fetch(`${service.origin}/webhook/whatsapp`, {
      method: "POST",
      headers: { "X-Hub-Signature-256": await signBody(TEST_SECRET, DELIVERY) },
      body: DELIVERY,
    });
    assert.equal(delivery.status, 200);
    await delivery.body?.cancel();
    const unsigned = await fetch(`${service.origin}/webhook/whatsapp`, {
      method: "POST",
      body: DELIVERY,
    });
    assert.equal(unsigned.status, 401);
    await unsigned.body?.cancel();
    // The KV directory did not exist: the service created it and opened KV inside it.
    const stat = await Deno.stat(new URL(kvPath, ROOT));
    assert.ok(stat.isFile);
    const { code } = await service.stop("SIGTERM");
    assert.equal(code, 0);
    assert.ok(!service.output.some((line) => line.includes(TEST_SECRET)), "no secret logged");
  });
});

Deno.test("SIGTERM lets an in-flight request finish, then exits 0 within 5 s", async () => {
  await withDataDir(async (kvPath) => {
    await using service = await startService(serviceEnv(kvPath));
    const signature = await signBody(TEST_SECRET, DELIVERY);
    let sendRest: () => void = () => {};
    const restSent = new Promise<void>((resolve) => (sendRest = resolve));
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(DELIVERY.subarray(0, 10));
        await restSent;
        controller.enqueue(DELIVERY.subarray(10));
        controller.close();
      },
    });
    const inFlight = fetch(`${service.origin}/webhook/whatsapp`, {
      method: "POST",
      headers: { "X-Hub-Signature-256": signature },
      body,
    });
    // Wait until the service has the request, then ask it to stop.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const stopped = service.stop("SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 200));
    sendRest();
    const response = await inFlight;
    assert.equal(response.status, 200, service.output.join("\n"));
    await response.body?.cancel();
    const { code, ms } = await stopped;
    assert.equal(code, 0);
    assert.ok(ms < 5_000, `stopped in ${ms} ms`);
    assert.ok(service.output.some((line) => line.includes('"msg":"shutting down"')));
    assert.ok(service.output.some((line) => line.includes('"msg":"stopped"')));
  });
});

Deno.test("start fails closed without APP_SECRET, naming it in one line", async () => {
  await withDataDir(async (kvPath) => {
    const env = serviceEnv(kvPath);
    env.APP_SECRET = "";
    const { code, text } = await runToExit(env);
    assert.notEqual(code, 0);
    const lines = text.trim().split("\n");
    assert.equal(lines.length, 1, text);
    assert.match(lines[0] ?? "", /"reason":"Invalid configuration: APP_SECRET is required/);
  });
});

Deno.test("start refuses the placeholder secrets of .env.example", async () => {
  await withDataDir(async (kvPath) => {
    const env = { ...serviceEnv(kvPath), VERIFY_TOKEN: DEVELOPMENT_PLACEHOLDERS.VERIFY_TOKEN };
    const { code, text } = await runToExit(env);
    assert.notEqual(code, 0);
    assert.match(text, /VERIFY_TOKEN is the development placeholder/);
  });
});

Deno.test("start exits with the variable's name and reason for a bad value", async () => {
  await withDataDir(async (kvPath) => {
    const { code, text } = await runToExit({ ...serviceEnv(kvPath), PORT: "abc" });
    assert.notEqual(code, 0);
    assert.match(text, /PORT expected a whole number from 0 to 65535, got \\"abc\\"/);
  });
});
