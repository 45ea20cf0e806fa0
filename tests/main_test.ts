/**
 * The service as a real subprocess, started with the start task's exact flags: what
 * `deno task start` and the compiled binary run.
 *
 * @module
 */
import assert from "node:assert/strict";
import { kvStore, TEST_ADMIN_TOKEN, TEST_SECRET, TEST_VERIFY_TOKEN, waitFor } from "./support.ts";
import { ROOT, runToExit, serviceEnv, startService, withDataDir } from "./service_process.ts";
import { type SignedDelivery, textDelivery } from "./signed_deliveries.ts";
import { signBody } from "../src/webhook/signature.ts";
import { DEVELOPMENT_PLACEHOLDERS } from "../src/config_rules.ts";
import type { EventRecord } from "../src/store/event_record.ts";

const DELIVERY = new TextEncoder().encode('{"object":"whatsapp_business_account","entry":[]}');

/**
 * Bound on a clean stop, in real time: well above the service's forced exit (`SHUTDOWN_GRACE_MS`,
 * 4.5 s, which exits 1) so a busy machine does not fail the test; the exit code tells the clean
 * stop from the forced one.
 */
const STOP_BOUND_MS = 10_000;

/** A request the service has begun to handle, whose body the test holds back. */
interface HeldRequest {
  /** Sends the rest of the request and reads the answer; the connection is closed after it. */
  finish(): Promise<{ status: number; text: string }>;
}

/**
 * Sends the head of a signed POST of `delivery` with `Expect: 100-continue` over a raw connection,
 * and resolves once the service has the request: the server sends "100 Continue" only when the
 * handler asks for the body. The body is sent by `finish()`.
 */
async function holdDelivery(origin: string, delivery: SignedDelivery): Promise<HeldRequest> {
  const { hostname, port } = new URL(origin);
  const connection = await Deno.connect({ hostname, port: Number(port) });
  try {
    const head = [
      "POST /webhook/whatsapp HTTP/1.1",
      `Host: ${hostname}:${port}`,
      "Content-Type: application/json",
      `X-Hub-Signature-256: ${delivery.signature}`,
      `Content-Length: ${delivery.body.byteLength}`,
      "Expect: 100-continue",
      "Connection: close",
      "",
      "",
    ].join("\r\n");
    await _writeAll(connection, new TextEncoder().encode(head));
    const interim = await _readUntil(connection, (text) => text.includes("\r\n\r\n"));
    assert.match(interim, /^HTTP\/1\.1 100 Continue\r\n\r\n$/);
  } catch (error) {
    connection.close();
    throw error;
  }
  return {
    async finish() {
      try {
        await _writeAll(connection, delivery.body);
        const answer = await _readUntil(connection, () => false);
        const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1] ?? 0);
        return { status, text: answer };
      } finally {
        connection.close();
      }
    },
  };
}

async function _writeAll(connection: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.byteLength;) {
    written += await connection.write(bytes.subarray(written));
  }
}

/** Reads until `isComplete` holds for what was read, or the peer closes the connection. */
async function _readUntil(
  connection: Deno.Conn,
  isComplete: (text: string) => boolean,
): Promise<string> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(16 * 1024);
  let text = "";
  while (!isComplete(text)) {
    const read = await connection.read(buffer);
    if (read === null) break;
    text += decoder.decode(buffer.subarray(0, read), { stream: true });
  }
  return text;
}

/**
 * Asserts that the service closed Deno KV before exiting: SQLite removes a database's write-ahead
 * log when its last connection closes, and leaves it behind when the process dies holding it.
 */
async function assertKvClosed(kvPath: string): Promise<void> {
  const file = new URL(kvPath, ROOT);
  assert.ok((await Deno.stat(file)).isFile);
  for (const suffix of ["-wal", "-shm"]) {
    await assert.rejects(
      Deno.stat(new URL(`${kvPath}${suffix}`, ROOT)),
      Deno.errors.NotFound,
      `"${kvPath}${suffix}" is left: the service did not close Deno KV`,
    );
  }
}

/** The stored record of event `id` in the KV file at `kvPath`, once the service has exited. */
async function storedRecord(kvPath: string, id: string): Promise<EventRecord | null> {
  const kv = await Deno.openKv(new URL(kvPath, ROOT).pathname);
  try {
    return (await kvStore(kv).getEvent(id))?.record ?? null;
  } finally {
    kv.close();
  }
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
    const inFlightDelivery = await textDelivery(2, "BINARY");
    const inFlight = await holdDelivery(service.origin, inFlightDelivery);
    const stopped = service.stop("SIGTERM");
    await waitFor(
      () => service.output.some((line) => line.includes('"msg":"shutting down"')),
      "the drain to start",
    );
    const draining = await fetch(`${service.origin}/readyz`);
    assert.equal(draining.status, 503);
    await draining.body?.cancel();
    const held = await inFlight.finish();
    assert.equal(held.status, 200, `${held.text}\n${service.output.join("\n")}`);
    const { code, ms } = await stopped;
    assert.equal(code, 0, `a clean stop, not the forced exit (1):\n${service.output.join("\n")}`);
    assert.ok(ms < STOP_BOUND_MS, `stopped in ${ms} ms`);
    assert.ok(service.output.some((line) => line.includes('"msg":"stopped"')));
    await assertKvClosed(kvPath);
    assert.ok(await storedRecord(kvPath, inFlightDelivery.id), "the in-flight event is stored");
    assert.ok(!service.output.some((line) => line.includes(TEST_SECRET)), "no secret logged");
    assert.ok(!service.output.some((line) => line.includes(TEST_ADMIN_TOKEN)), "no token logged");
  });
});

Deno.test("SIGTERM lets an in-flight request finish, then closes Deno KV and exits 0", async () => {
  await withDataDir(async (kvPath) => {
    await using service = await startService(serviceEnv(kvPath));
    const delivery = await textDelivery(1, "DRAIN");
    const inFlight = await holdDelivery(service.origin, delivery);
    const stopped = service.stop("SIGTERM");
    await waitFor(
      () => service.output.some((line) => line.includes('"msg":"shutting down"')),
      "the drain to start",
    );
    // The rest of the body comes after the signal: the drain waits for it and answers.
    const response = await inFlight.finish();
    assert.equal(response.status, 200, `${response.text}\n${service.output.join("\n")}`);
    const { code, ms } = await stopped;
    assert.equal(code, 0, `a clean stop, not the forced exit (1):\n${service.output.join("\n")}`);
    assert.ok(ms < STOP_BOUND_MS, `stopped in ${ms} ms`);
    assert.ok(service.output.some((line) => line.includes('"msg":"stopped"')));
    assert.ok(!service.output.some((line) => line.includes("shutdown took too long")));
    await assertKvClosed(kvPath);
    // What the answer acknowledged is in the file the service closed.
    const record = await storedRecord(kvPath, delivery.id);
    assert.equal(record?.id, delivery.id);
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
