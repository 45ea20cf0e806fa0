/**
 * What unauthenticated clients can do to the serving process, in a real subprocess started with
 * the start task's flags: run it out of file descriptors, trickle or stall a body, close mid-body,
 * and hold connections through a shutdown.
 */
import assert from "node:assert/strict";
import { serviceEnv, startService, withDataDir } from "./service_process.ts";
import { postSigned, textDelivery } from "./signed_deliveries.ts";
import { waitFor } from "./support.ts";
import { parseExposition, valueOf } from "./prometheus_text.ts";

/** The service's file limit in the descriptor test, and more connections than it allows. */
const FILE_LIMIT = 256;
const CONNECTIONS = 300;

const _encoder = new TextEncoder();

/** A raw TCP client, for requests `fetch` cannot send: stalled, half-sent, closed mid-body. */
interface RawClient {
  conn: Deno.Conn;
  /** Everything the service sent until it closed the connection, or `undefined` by `timeoutMs`. */
  readUntilClosed(timeoutMs: number): Promise<string | undefined>;
  /** Reads until `text` has arrived; fails after `timeoutMs`. */
  readUntil(text: string, timeoutMs?: number): Promise<void>;
}

async function connect(origin: string, prelude = ""): Promise<RawClient> {
  const { hostname, port } = new URL(origin);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  if (prelude) await conn.write(_encoder.encode(prelude));
  let received = "";
  let closed: Promise<void> | undefined;
  const decoder = new TextDecoder();
  const readAll = async (): Promise<void> => {
    const buffer = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) return;
      received += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
  };
  return {
    conn,
    async readUntilClosed(timeoutMs) {
      closed ??= readAll();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const isClosed = await Promise.race([
        closed.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
      ]);
      clearTimeout(timer);
      return isClosed ? received : undefined;
    },
    async readUntil(text, timeoutMs = 5_000) {
      const buffer = new Uint8Array(4096);
      let isLate = false;
      const timer = setTimeout(() => {
        isLate = true;
        conn.close(); // ends the pending read
      }, timeoutMs);
      try {
        while (!received.includes(text)) {
          const n = await conn.read(buffer).catch(() => null);
          if (isLate) throw new Error(`"${text}" did not arrive within ${timeoutMs} ms`);
          if (n === null) throw new Error(`Connection closed before "${text}" arrived`);
          received += decoder.decode(buffer.subarray(0, n), { stream: true });
        }
      } finally {
        clearTimeout(timer);
      }
      received = "";
    },
  };
}

/**
 * A signed-looking delivery whose headers announce `length` bytes but that sends only the first
 * 10; it waits for `100 Continue`, which the server sends as it hands the request to the app.
 */
async function stalledDelivery(origin: string, path = "/webhook/whatsapp"): Promise<RawClient> {
  const client = await connect(
    origin,
    `POST ${path} HTTP/1.1\r\nHost: service\r\nContent-Type: application/json\r\n` +
      `X-Hub-Signature-256: sha256=${"0".repeat(64)}\r\nContent-Length: 1000\r\n` +
      "Expect: 100-continue\r\n\r\n",
  );
  await client.readUntil("100 Continue");
  await client.conn.write(_encoder.encode('{"object":'));
  return client;
}

function closeQuietly(client: RawClient): void {
  try {
    client.conn.close();
  } catch { /* closed by the service */ }
}

function logLines(output: string[]): Record<string, unknown>[] {
  return output.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line));
}

async function deliveries(origin: string, outcome: string): Promise<number | undefined> {
  const exposition = parseExposition(await (await fetch(`${origin}/metrics`)).text());
  return valueOf(exposition, "wa_webhook_deliveries_total", { outcome });
}

Deno.test(
  `the service survives ${CONNECTIONS} idle connections at a file limit of ${FILE_LIMIT}, then serves again`,
  async () => {
    await withDataDir(async (kvPath) => {
      await using service = await startService(serviceEnv(kvPath), undefined, {
        wrapper: ["prlimit", `--nofile=${FILE_LIMIT}:${FILE_LIMIT}`],
      });
      const held: Deno.Conn[] = [];
      const { hostname, port } = new URL(service.origin);
      for (let i = 0; i < CONNECTIONS; i++) {
        // Refused while the service listens again: the flood goes on regardless.
        const conn = await Deno.connect({ hostname, port: Number(port) }).catch(() => undefined);
        if (conn) held.push(conn);
      }
      await waitFor(
        () => service.output.some((line) => line.includes("Too many open files")),
        "the service to run out of file descriptors",
      );
      for (const conn of held) {
        try {
          conn.close();
        } catch { /* closed by the service */ }
      }
      await waitFor(
        async () => await postSigned(service.origin, await textDelivery(1, "EMFILE")) === 200,
        "a signed delivery to be accepted again",
        10_000,
      );
      const { code } = await service.stop("SIGTERM");
      assert.equal(code, 0, service.output.join("\n"));
      assert.ok(
        !service.output.some((line) => line.includes("Uncaught")),
        service.output.join("\n"),
      );
    });
  },
);

Deno.test("a body that stalls is answered 408 after BODY_TIMEOUT_MS, on any route", async () => {
  await withDataDir(async (kvPath) => {
    await using service = await startService(serviceEnv(kvPath, { BODY_TIMEOUT_MS: "300" }));
    const started = performance.now();
    const delivery = await stalledDelivery(service.origin);
    // A route that never reads the body, and a GET whose body Deno.serve keeps from the app.
    const other = await stalledDelivery(service.origin, "/no-such-route");
    const get = await connect(
      service.origin,
      "GET /healthz HTTP/1.1\r\nHost: service\r\nContent-Length: 1000\r\n\r\n{",
    );
    for (const client of [delivery, other]) {
      await client.readUntil('{"error":"Body not received within 300 ms"}');
    }
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 300 && elapsed < 5_000, `answered after ${elapsed} ms`);
    // The GET's body is never read: its answer closes the connection.
    const answer = await get.readUntilClosed(5_000);
    assert.ok(answer !== undefined, "the GET's connection was not closed within 5 s");
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.equal(await deliveries(service.origin, "timed_out"), 1);
    assert.equal(await deliveries(service.origin, "unavailable"), 0);
    // After all that, a delivery is accepted.
    assert.equal(await postSigned(service.origin, await textDelivery(1, "SLOW")), 200);
    assert.equal((await service.stop("SIGTERM")).code, 0);
    for (const client of [delivery, other]) closeQuietly(client);
  });
});

Deno.test("a stalled body's connection is closed soon after its 408, not when the client lets go", async () => {
  await withDataDir(async (kvPath) => {
    await using service = await startService(serviceEnv(kvPath, { BODY_TIMEOUT_MS: "300" }));
    const client = await stalledDelivery(service.origin);
    await client.readUntil('{"error":"Body not received within 300 ms"}');
    const answered = performance.now();
    // The server goes on reading the stalled body: only retiring that server closes the socket.
    const rest = await client.readUntilClosed(5_000);
    const closedAfterMs = performance.now() - answered;
    assert.ok(rest !== undefined, "the connection was still open 5 s after its 408");
    assert.ok(closedAfterMs < 3_000, `closed ${closedAfterMs} ms after the 408`);
    assert.equal(await postSigned(service.origin, await textDelivery(1, "AFTER-408")), 200);
    assert.equal((await service.stop("SIGTERM")).code, 0);
    closeQuietly(client);
  });
});

Deno.test("idle and half-sent connections are closed after IDLE_CONNECTION_MS, and deliveries still get 200", async () => {
  await withDataDir(async (kvPath) => {
    await using service = await startService(
      serviceEnv(kvPath, { IDLE_CONNECTION_MS: "1000", LOG_LEVEL: "debug" }),
    );
    const opened = performance.now();
    const idle = await connect(service.origin);
    const halfHeaders = await connect(service.origin, "POST /webhook/whatsapp HTTP/1.1\r\nHost: s");
    // A keep-alive connection after one answered request.
    const keptAlive = await connect(
      service.origin,
      "GET /healthz HTTP/1.1\r\nHost: service\r\n\r\n",
    );
    await keptAlive.readUntil("200 OK");
    for (const [name, client] of Object.entries({ idle, halfHeaders, keptAlive })) {
      const closed = await client.readUntilClosed(5_000);
      assert.ok(closed !== undefined, `the ${name} connection was still open after 5 s`);
    }
    const lifeMs = performance.now() - opened;
    assert.ok(lifeMs < 3_000, `connections lived ${lifeMs} ms`);
    await waitFor(
      () => service.output.filter((line) => line.includes('"msg":"server rotated"')).length >= 3,
      "three rotations",
    );
    assert.equal(await postSigned(service.origin, await textDelivery(1, "ROTATED")), 200);
    const { code } = await service.stop("SIGTERM");
    assert.equal(code, 0, service.output.join("\n"));
    assert.deepEqual(logLines(service.output).filter((line) => line.level === "error"), []);
    for (const client of [idle, halfHeaders, keptAlive]) closeQuietly(client);
  });
});

Deno.test("a client that closes mid-body is counted as aborted and logged as a warning, not a 500", async () => {
  await withDataDir(async (kvPath) => {
    await using service = await startService(serviceEnv(kvPath));
    const client = await stalledDelivery(service.origin);
    client.conn.close();
    await waitFor(
      () => logLines(service.output).some((line) => line.msg === "request"),
      "the request's log line",
    );
    const [line] = logLines(service.output).filter((line) => line.msg === "request");
    assert.equal(line?.status, 499, service.output.join("\n"));
    assert.equal(line?.level, "warn");
    assert.match(String(line?.reason), /closed the connection/);
    assert.deepEqual(logLines(service.output).filter((line) => line.level === "error"), []);
    assert.equal(await deliveries(service.origin, "aborted"), 1);
    assert.equal(await deliveries(service.origin, "unavailable"), 0);
    assert.equal((await service.stop("SIGTERM")).code, 0);
  });
});

Deno.test("SIGTERM exits 0 with KV closed while clients hold stalled bodies and idle connections", async () => {
  await withDataDir(async (kvPath) => {
    // The default BODY_TIMEOUT_MS (10 s) is longer than the shutdown: the drain cuts bodies off.
    await using service = await startService(serviceEnv(kvPath));
    const stalled = await stalledDelivery(service.origin);
    const idle = await connect(service.origin);
    const halfHeaders = await connect(service.origin, "POST /webhook/whatsapp HTTP/1.1\r\nHost: s");
    const hiddenBody = await connect(
      service.origin,
      "GET /healthz HTTP/1.1\r\nHost: service\r\nContent-Length: 1000\r\n\r\n{",
    );
    await hiddenBody.readUntil("200 OK");
    const { code, ms } = await service.stop("SIGTERM");
    assert.equal(code, 0, service.output.join("\n"));
    assert.ok(ms < 5_000, `stopped in ${ms} ms`);
    assert.ok(service.output.some((line) => line.includes('"msg":"stopped"')), "KV closed");
    assert.ok(!service.output.some((line) => line.includes("took too long")));
    const cutOff = await stalled.readUntilClosed(1_000);
    assert.match(cutOff ?? "", /^HTTP\/1\.1 503 /);
    for (const client of [stalled, idle, halfHeaders, hiddenBody]) closeQuietly(client);
  });
});
