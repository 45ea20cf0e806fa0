/**
 * The service as a real subprocess, started with the start task's exact flags: what
 * `deno task start` and the compiled binary run.
 */
import assert from "node:assert/strict";
import { TEST_ADMIN_TOKEN, TEST_SECRET, TEST_VERIFY_TOKEN, waitFor } from "./support.ts";
import { ROOT, runToExit, serviceEnv, startService, withDataDir } from "./service_process.ts";
import { type SignedDelivery, textDelivery } from "./signed_deliveries.ts";
import { signBody } from "../src/webhook/signature.ts";
import { DEVELOPMENT_PLACEHOLDERS } from "../src/config.ts";

const DELIVERY = new TextEncoder().encode('{"object":"whatsapp_business_account","entry":[]}');

/** Posts `delivery` with its body held back after 10 bytes until `release()`: a request in flight. */
function holdDelivery(
  origin: string,
  delivery: SignedDelivery,
): { response: Promise<Response>; release: () => void } {
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      controller.enqueue(delivery.body.subarray(0, 10));
      await released;
      controller.enqueue(delivery.body.subarray(10));
      controller.close();
    },
  });
  const response = fetch(`${origin}/webhook/whatsapp`, {
    method: "POST",
    headers: { "X-Hub-Signature-256": delivery.signature },
    body,
  });
  return { response, release };
}

Deno.test("the service serves with the start task's exact permission flags", async () => {
  await withDataDir(async (kvPath) => {
    await using service = await startService(
      serviceEnv(kvPath, { ADMIN_TOKEN: TEST_ADMIN_TOKEN }),
    );
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

    // The admin API: the event of a signed delivery is listed, then read by its id.
    const admin = { headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` } };
    const text = await textDelivery(1, "BINARY");
    const posted = await fetch(`${service.origin}/webhook/whatsapp`, {
      method: "POST",
      headers: { "X-Hub-Signature-256": text.signature },
      body: text.body,
    });
    assert.equal(posted.status, 200);
    await posted.body?.cancel();
    const eventUrl = `${service.origin}/admin/events/${encodeURIComponent(text.id)}`;
    await waitFor(
      async () => (await (await fetch(eventUrl, admin)).json()).state === "done",
      "the event handled",
    );
    const listed = await (await fetch(`${service.origin}/admin/events?kind=message`, admin)).json();
    assert.deepEqual(listed.events.map((e: { id: string }) => e.id), [text.id]);
    const event = await (await fetch(eventUrl, admin)).json();
    assert.equal(event.id, text.id);
    assert.equal(event.event.message.text.body, "n1");
    const anonymous = await fetch(`${service.origin}/admin/events`);
    assert.equal(anonymous.status, 401);
    await anonymous.body?.cancel();

    // Metrics, behind the admin token.
    const metrics = await fetch(`${service.origin}/metrics`, admin);
    assert.equal(metrics.status, 200);
    const exposition = await metrics.text();
    assert.match(exposition, /^wa_webhook_deliveries_total\{outcome="accepted"\} 2$/m);
    assert.match(exposition, /^wa_webhook_events_total\{[^}]*kind="message"[^}]*\} 1$/m);
    const unauthorized = await fetch(`${service.origin}/metrics`);
    assert.equal(unauthorized.status, 401);
    await unauthorized.body?.cancel();

    // Ready while serving; 503 from the moment SIGTERM starts the drain, which an in-flight
    // request holds open; that request still gets its 200, then the process exits 0.
    const ready = await fetch(`${service.origin}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal((await ready.json()).status, "ready");
    const inFlight = holdDelivery(service.origin, await textDelivery(2, "BINARY"));
    await new Promise((resolve) => setTimeout(resolve, 200)); // the service has the request
    const stopped = service.stop("SIGTERM");
    await waitFor(
      () => service.output.some((line) => line.includes('"msg":"shutting down"')),
      "the drain to start",
    );
    const draining = await fetch(`${service.origin}/readyz`);
    assert.equal(draining.status, 503);
    await draining.body?.cancel();
    inFlight.release();
    const held = await inFlight.response;
    assert.equal(held.status, 200, service.output.join("\n"));
    await held.body?.cancel();
    const { code, ms } = await stopped;
    assert.equal(code, 0);
    assert.ok(ms < 5_000, `stopped in ${ms} ms`);
    assert.ok(!service.output.some((line) => line.includes(TEST_SECRET)), "no secret logged");
    assert.ok(!service.output.some((line) => line.includes(TEST_ADMIN_TOKEN)), "no token logged");
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
