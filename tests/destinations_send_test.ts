/** `sendOnce()`: one delivery attempt against real loopback servers, classified. */

import assert from "node:assert/strict";
import {
  type AttemptOutcome,
  MAX_REASON_EXCERPT_CHARS,
  sendOnce,
  type SendOnceOptions,
} from "../src/destinations/send.ts";
import { createHttp1Client } from "../src/destinations/http1/client.ts";
import { fetchPost, type Post } from "../src/destinations/transport.ts";
import { ManualClock } from "../src/ops/clock.ts";
import { createDeadlines, type Deadlines } from "../src/ops/deadlines.ts";
import { within } from "../src/ops/timeout.ts";

const BODY = JSON.stringify({ type: "message.received", timestamp: "2026-01-01T00:00:00Z" });
const HEADERS = { "content-type": "application/json", "webhook-id": "msg_1" };
/** Long enough that a loopback answer always beats it, short enough that a stall ends fast. */
const TIMEOUT_MS = 2_000;
/** A short timeout for the servers that never finish: the attempt must end close to it. */
const SHORT_TIMEOUT_MS = 300;
/** How long the stalling servers keep stalling: a client without a timeout outlives it. */
const STALL_MS = 4_000;
/** How long a server may wait to see the client close a body it stopped reading. */
const CLOSE_SEEN_MS = 2_000;

/** Whether the server saw the client close the body within `CLOSE_SEEN_MS`. */
function isClosedSoon(cancelled: Promise<void>): Promise<boolean> {
  return within(cancelled.then(() => true), CLOSE_SEEN_MS, { otherwise: false });
}

interface TestServer {
  url: string;
  /** Requests seen, in order. */
  requests: { method: string; path: string; body: string }[];
  close(): Promise<void>;
}

/** A real `Deno.serve` on 127.0.0.1 port 0 that records each request, then answers. */
function startServer(answer: (request: Request) => Response | Promise<Response>): TestServer {
  const requests: TestServer["requests"] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const path = new URL(request.url).pathname;
      requests.push({ method: request.method, path, body: await request.text() });
      return await answer(request);
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/hooks/wa?token=secret-in-query`,
    requests,
    close: () => server.shutdown(),
  };
}

/** One attempt of this file's request to `url`, over the transport of the test running. */
type Send = (url: string, overrides?: Partial<SendOnceOptions>) => Promise<AttemptOutcome>;

/** The ways a request travels (`transport.ts`): every test runs over each. */
const TRANSPORTS: { label: string; create(): { post: Post; close(): void } }[] = [
  { label: "fetch", create: () => ({ post: fetchPost(), close: () => {} }) },
  { label: "the HTTP/1.1 client", create: () => createHttp1Client() },
];

/** Registers `fn` as a test once per transport, given a `send` over it. */
function sendTest(name: string, fn: (send: Send) => Promise<void>): void {
  for (const transport of TRANSPORTS) {
    Deno.test(`${name}, over ${transport.label}`, async () => {
      const client = transport.create();
      try {
        await fn((url, overrides = {}) =>
          sendOnce({
            url,
            headers: HEADERS,
            body: BODY,
            timeoutMs: TIMEOUT_MS,
            post: client.post,
            ...overrides,
          })
        );
      } finally {
        client.close();
      }
    });
  }
}

/** A handler's stall: it lasts until `release()`, or `STALL_MS` for a client without a bound. */
function createStall(): { wait(): Promise<void>; release(): void } {
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const waiting = new Set<() => void>();
  return {
    wait: () =>
      new Promise((resolve) => {
        const timer = setTimeout(resolve, STALL_MS);
        timers.add(timer);
        waiting.add(resolve);
      }),
    release() {
      for (const timer of timers) clearTimeout(timer);
      for (const resolve of waiting) resolve();
    },
  };
}

sendTest(
  "sendOnce() reports a 2xx as delivered after one POST of the body and headers",
  async (send) => {
    let seenHeaders: Headers | undefined;
    const server = startServer((request) => {
      seenHeaders = request.headers;
      return new Response("ok");
    });
    try {
      const outcome = await send(server.url);
      assert.equal(outcome.kind, "delivered");
      assert.equal(outcome.kind === "delivered" && outcome.status, 200);
      assert.ok(outcome.durationMs >= 0 && outcome.durationMs < TIMEOUT_MS);
      assert.deepEqual(server.requests, [{ method: "POST", path: "/hooks/wa", body: BODY }]);
      assert.equal(seenHeaders?.get("webhook-id"), "msg_1");
    } finally {
      await server.close();
    }
  },
);

sendTest("sendOnce() retries a 503 after the seconds its Retry-After asks for", async (send) => {
  const server = startServer(() =>
    new Response("Down for maintenance", { status: 503, headers: { "Retry-After": "2" } })
  );
  try {
    const outcome = await send(server.url);
    assert.equal(outcome.kind, "retry");
    assert.ok(outcome.kind === "retry");
    assert.equal(outcome.cause, "status");
    assert.equal(outcome.status, 503);
    assert.equal(outcome.retryAfterMs, 2000);
    assert.equal(
      outcome.reason,
      'Destination answered HTTP 503: the destination is unavailable (body: "Down for maintenance")',
    );
  } finally {
    await server.close();
  }
});

sendTest("sendOnce() reads a 429's Retry-After HTTP date against the clock", async (send) => {
  const clock = new ManualClock();
  const server = startServer(() =>
    new Response(null, {
      status: 429,
      headers: { "Retry-After": new Date(clock.now() + 5_000).toUTCString() },
    })
  );
  try {
    const outcome = await send(server.url, { clock });
    assert.ok(outcome.kind === "retry", `got ${outcome.kind}`);
    assert.equal(outcome.status, 429);
    assert.equal(outcome.retryAfterMs, 5_000);
    assert.equal(
      outcome.reason,
      "Destination answered HTTP 429: the destination asks to slow down",
    );
  } finally {
    await server.close();
  }
});

sendTest(
  "sendOnce() caps a long Retry-After at maxRetryAfterMs and ignores an invalid one",
  async (send) => {
    const retryAfterByPath: Record<string, string> = { "/long": "86400", "/invalid": "soon" };
    const server = startServer((request) =>
      new Response(null, {
        status: 503,
        headers: { "Retry-After": retryAfterByPath[new URL(request.url).pathname] ?? "" },
      })
    );
    try {
      const base = new URL(server.url).origin;
      const long = await send(`${base}/long`, { maxRetryAfterMs: 60_000 });
      assert.ok(long.kind === "retry");
      assert.equal(long.retryAfterMs, 60_000);
      const invalid = await send(`${base}/invalid`);
      assert.ok(invalid.kind === "retry");
      assert.equal("retryAfterMs" in invalid, false);
    } finally {
      await server.close();
    }
  },
);

sendTest(
  "sendOnce() retries 408, 429 and 5xx, rejects other 4xx, and reports 410 as gone",
  async (send) => {
    const statuses = [400, 401, 403, 404, 408, 409, 410, 413, 422, 429, 500, 502, 503, 504, 599];
    const server = startServer((request) =>
      new Response(null, { status: Number(new URL(request.url).pathname.slice(1)) })
    );
    try {
      const base = new URL(server.url).origin;
      const kinds: Record<number, string> = {};
      for (const status of statuses) {
        const outcome = await send(`${base}/${status}`);
        assert.equal("status" in outcome && outcome.status, status);
        assert.equal("retryAfterMs" in outcome, false, `${status}: no Retry-After, no wait`);
        kinds[status] = outcome.kind;
      }
      assert.deepEqual(kinds, {
        400: "rejected",
        401: "rejected",
        403: "rejected",
        404: "rejected",
        408: "retry",
        409: "rejected",
        410: "gone",
        413: "rejected",
        422: "rejected",
        429: "retry",
        500: "retry",
        502: "retry",
        503: "retry",
        504: "retry",
        599: "retry",
      });
    } finally {
      await server.close();
    }
  },
);

sendTest(
  "sendOnce() reports 410 as gone with a reason saying the destination is paused",
  async (send) => {
    const server = startServer(() => new Response("endpoint removed", { status: 410 }));
    try {
      const outcome = await send(server.url);
      assert.deepEqual({ ...outcome, durationMs: 0 }, {
        kind: "gone",
        status: 410,
        reason:
          'Destination answered HTTP 410: the endpoint is gone: the destination is paused until it is resumed (body: "endpoint removed")',
        durationMs: 0,
      });
    } finally {
      await server.close();
    }
  },
);

sendTest(
  "sendOnce() retries when no answer comes within the timeout, on its own timer or a shared one",
  async (send) => {
    const timers: [string, Deadlines | undefined][] = [
      ["its own timer", undefined],
      ["deadlines sharing a timer", createDeadlines()],
    ];
    for (const [label, deadlines] of timers) {
      const stall = createStall();
      const server = startServer(async () => {
        await stall.wait();
        return new Response("too late");
      });
      try {
        const outcome = await send(server.url, {
          timeoutMs: SHORT_TIMEOUT_MS,
          ...(deadlines ? { deadlines } : {}),
        });
        stall.release();
        assert.ok(outcome.kind === "retry", `${label}: got ${outcome.kind}`);
        assert.equal(outcome.cause, "timeout");
        assert.equal(outcome.reason, `Destination did not answer within ${SHORT_TIMEOUT_MS} ms`);
        assert.equal("status" in outcome, false);
        assert.ok(outcome.durationMs >= SHORT_TIMEOUT_MS - 5, `${label}: ${outcome.durationMs} ms`);
        assert.ok(
          outcome.durationMs < SHORT_TIMEOUT_MS + 1_000,
          `${label}: ${outcome.durationMs} ms`,
        );
      } finally {
        await server.close();
      }
    }
  },
);

/**
 * A server that answers the status at once, then trickles `chunk` every `everyMs` until the
 * client leaves or `STALL_MS` pass. `cancelled` resolves when the client has closed the body.
 */
function startTricklingServer(
  status: number,
  chunk: Uint8Array,
  everyMs: number,
  headers: Record<string, string> = {},
) {
  let markCancelled: () => void = () => {};
  const cancelled = new Promise<void>((resolve) => (markCancelled = resolve));
  let sentBytes = 0;
  const server = startServer(() => {
    const startedAt = Date.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const body = new ReadableStream<Uint8Array>({
      pull: (controller) =>
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            if (Date.now() - startedAt > STALL_MS) controller.close();
            else {
              controller.enqueue(chunk);
              sentBytes += chunk.byteLength;
            }
            resolve();
          }, everyMs);
        }),
      cancel: () => {
        clearTimeout(timer);
        markCancelled();
      },
    });
    return new Response(body, { status, headers });
  });
  return { ...server, cancelled, sentBytes: () => sentBytes };
}

/** `outcome` is a 503 to retry whose body the timeout cut off, ending close to the timeout. */
function assertCutAtTimeout(
  outcome: AttemptOutcome,
): asserts outcome is Extract<AttemptOutcome, { kind: "retry" }> {
  assert.ok(outcome.kind === "retry", `got ${outcome.kind}`);
  assert.equal(outcome.status, 503);
  assert.ok(outcome.durationMs < SHORT_TIMEOUT_MS + 1_000, `${outcome.durationMs} ms`);
  assert.match(outcome.reason, new RegExp(`its body was not read within ${SHORT_TIMEOUT_MS} ms$`));
}

sendTest(
  "sendOnce() ends an endless trickling body at the timeout and keeps the status",
  async (send) => {
    const server = startTricklingServer(503, new TextEncoder().encode("x"), 20);
    try {
      const outcome = await send(server.url, { timeoutMs: SHORT_TIMEOUT_MS });
      assertCutAtTimeout(outcome);
      assert.match(
        outcome.reason,
        /^Destination answered HTTP 503: the destination is unavailable/,
      );
      assert.ok(await isClosedSoon(server.cancelled), "the body was closed, not left hanging");
    } finally {
      await server.close();
    }
  },
);

sendTest(
  "sendOnce() ends at the timeout a short declared body that never arrives whole",
  async (send) => {
    // Content-Length promises 4,000 bytes; one comes every 20 ms: the whole-body read
    // of a short answer is cut off by the timeout like the reader's.
    const server = startTricklingServer(503, new TextEncoder().encode("x"), 20, {
      "Content-Length": "4000",
    });
    try {
      assertCutAtTimeout(await send(server.url, { timeoutMs: SHORT_TIMEOUT_MS }));
    } finally {
      await server.close();
    }
  },
);

sendTest("sendOnce() counts a 2xx as delivered even when its body never ends", async (send) => {
  const server = startTricklingServer(200, new TextEncoder().encode("."), 20);
  try {
    const outcome = await send(server.url, { timeoutMs: SHORT_TIMEOUT_MS });
    assert.equal(outcome.kind, "delivered", "the status line said so; the body is not the event's");
    assert.ok(outcome.durationMs < SHORT_TIMEOUT_MS + 1_000, `${outcome.durationMs} ms`);
    assert.ok(await isClosedSoon(server.cancelled), "the body was closed, not left hanging");
  } finally {
    await server.close();
  }
});

sendTest(
  "sendOnce() stops reading a trickling body at the byte cap, well before the timeout",
  async (send) => {
    const server = startTricklingServer(400, new TextEncoder().encode("e".repeat(512)), 5);
    try {
      const outcome = await send(server.url, { timeoutMs: TIMEOUT_MS });
      assert.ok(outcome.kind === "rejected", `got ${outcome.kind}`);
      assert.ok(outcome.durationMs < TIMEOUT_MS / 2, `${outcome.durationMs} ms`);
      assert.doesNotMatch(outcome.reason, /not read within/);
      assert.ok(server.sentBytes() < 64 * 1024, `${server.sentBytes()} bytes sent`);
      assert.ok(await isClosedSoon(server.cancelled), "the body was closed, not left hanging");
    } finally {
      await server.close();
    }
  },
);

sendTest(
  "sendOnce() rejects a 400 with 10 MB of garbage quickly, with a clipped one-line reason",
  async (send) => {
    const TOTAL_BYTES = 10 * 1024 * 1024;
    const CHUNK_BYTES = 64 * 1024;
    let markCancelled: () => void = () => {};
    const cancelled = new Promise<void>((resolve) => (markCancelled = resolve));
    let sentBytes = 0;
    const garbage = new Uint8Array(CHUNK_BYTES);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919) % 256; // control bytes too
    const server = startServer(() =>
      new Response(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            if (sentBytes >= TOTAL_BYTES) return controller.close();
            controller.enqueue(garbage.slice());
            sentBytes += CHUNK_BYTES;
          },
          cancel: () => markCancelled(),
        }),
        { status: 400 },
      )
    );
    try {
      const outcome = await send(server.url);
      assert.ok(outcome.kind === "rejected", `got ${outcome.kind}`);
      assert.equal(outcome.status, 400);
      assert.ok(outcome.durationMs < TIMEOUT_MS, `${outcome.durationMs} ms`);
      assert.match(outcome.reason, /^Destination answered HTTP 400: the destination refused/);
      const excerpt = /\(body: "(.*)"\)$/s.exec(outcome.reason)?.[1] ?? "";
      assert.equal(excerpt.length, MAX_REASON_EXCERPT_CHARS + 1, "clipped, with an ellipsis");
      assert.ok(excerpt.endsWith("…"));
      // One printable line: no control characters, no line breaks.
      assert.doesNotMatch(outcome.reason, /[\p{Cc}\u2028\u2029]/u);
      // The client closed the body instead of reading all of it.
      assert.ok(sentBytes < TOTAL_BYTES, `${sentBytes} of ${TOTAL_BYTES} bytes were pulled`);
      assert.ok(await isClosedSoon(cancelled), "the body was closed, not read to its end");
    } finally {
      await server.close();
    }
  },
);

sendTest("sendOnce() retries a refused connection as a network failure", async (send) => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const outcome = await send(`http://127.0.0.1:${port}/hooks?token=secret-in-query`);
  assert.ok(outcome.kind === "retry", `got ${outcome.kind}`);
  assert.equal(outcome.cause, "network");
  assert.match(outcome.reason, new RegExp(`^Cannot connect to "http://127.0.0.1:${port}": `));
  assert.match(outcome.reason, /refused/i);
  assert.doesNotMatch(outcome.reason, /secret-in-query|\n/, "only the origin, on one line");
});

sendTest(
  "sendOnce() retries a connection reset after the request as a network failure",
  async (send) => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const dropping = (async () => {
      const conn = await listener.accept();
      const buffer = new Uint8Array(64 * 1024);
      let received = "";
      // Reads the whole request (it is small and has a Content-Length), then hangs up unanswered.
      while (!received.includes("\r\n\r\n") || !received.endsWith(BODY)) {
        const n = await conn.read(buffer);
        if (n === null) break;
        received += new TextDecoder().decode(buffer.subarray(0, n));
      }
      conn.close();
      return received;
    })();
    try {
      const outcome = await send(`http://127.0.0.1:${listener.addr.port}/hooks`);
      assert.ok((await dropping).startsWith("POST /hooks HTTP/1.1"));
      assert.ok(outcome.kind === "retry", `got ${outcome.kind}`);
      assert.equal(outcome.cause, "network");
      assert.match(
        outcome.reason,
        new RegExp(
          `^Lost the connection to "http://127.0.0.1:${listener.addr.port}" before its answer: `,
        ),
      );
    } finally {
      listener.close();
    }
  },
);

sendTest("sendOnce() rejects a 301 naming its Location, without following it", async (send) => {
  const target = startServer(() => new Response("followed"));
  const targetPath = "/moved/here";
  const redirecting = startServer(() =>
    new Response("Moved", {
      status: 301,
      headers: { Location: `${new URL(target.url).origin}${targetPath}?token=abc` },
    })
  );
  try {
    const outcome = await send(redirecting.url);
    assert.ok(outcome.kind === "rejected", `got ${outcome.kind}`);
    assert.equal(outcome.status, 301);
    assert.equal(
      outcome.reason,
      `Destination answered HTTP 301, a redirect to "${
        new URL(target.url).origin
      }${targetPath}" that is not followed: update the destination's URL`,
    );
    assert.equal(redirecting.requests.length, 1);
    assert.deepEqual(target.requests, [], "the redirect's target saw no request");
  } finally {
    await redirecting.close();
    await target.close();
  }
});

sendTest("sendOnce() rejects with the caller's reason when the caller aborts", async (send) => {
  const controller = new AbortController();
  const reason = new Error("Shutting down");
  const stall = createStall();
  const server = startServer(async () => {
    controller.abort(reason); // the request has arrived: the caller stops waiting now
    await stall.wait();
    return new Response("late");
  });
  try {
    await assert.rejects(send(server.url, { signal: controller.signal }), (e) => e === reason);
    stall.release();
  } finally {
    await server.close();
  }
});
