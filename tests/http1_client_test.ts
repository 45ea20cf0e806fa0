/**
 * `createHttp1Client()`: the built-in HTTP/1.1 client against real loopback servers, most of them
 * raw TCP servers scripted byte by byte, so that what the client writes and how it reads framing,
 * keep-alive, malformed answers, stale connections, idle expiry and aborts can all be seen.
 */

import assert from "node:assert/strict";
import {
  createHttp1Client,
  type Http1Client,
  type Http1ClientOptions,
  MAX_IDLE_CONNECTIONS,
} from "../src/destinations/http1/client.ts";
import { READ_BUFFER_BYTES } from "../src/destinations/http1/reader.ts";
import {
  type Answer,
  deliveryHttpFor,
  MAX_BODY_READ_BYTES,
  PROXY_VARIABLES,
  TransportError,
} from "../src/destinations/transport.ts";
import { within } from "../src/ops/timeout.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How long a server waits to see the client close a connection it should close. */
const CLOSE_SEEN_MS = 2_000;

/** A short answer that keeps the connection open (HTTP/1.1's default). */
const OK = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/** One request as a raw server read it off the wire. */
interface RawRequest {
  /** The request line and headers, without the empty line that ends them. */
  head: string;
  /** As many bytes as its `Content-Length` said. */
  body: Uint8Array;
  /** The request's bytes exactly as they arrived. */
  bytes: Uint8Array;
}

/** Whether `error` means the peer (or this side) ended the connection. */
function isGone(error: unknown): boolean {
  return error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted;
}

/** The server's side of one accepted connection, for a script to read requests and write answers. */
class ScriptedConnection {
  /** Its place among the server's accepted connections, from 0. */
  readonly index: number;
  /** The whole requests read off it so far. */
  readonly requests: RawRequest[] = [];
  readonly #conn: Deno.Conn;
  #pending: Uint8Array = new Uint8Array(0);
  #isClosed = false;
  readonly #ended = Promise.withResolvers<void>();

  /** `conn`, the `index`th accepted. */
  constructor(conn: Deno.Conn, index: number) {
    this.#conn = conn;
    this.index = index;
  }

  /** Resolves once a read saw the client close (or reset) the connection. */
  get ended(): Promise<void> {
    return this.#ended.promise;
  }

  /** Reads the next whole request (head and `Content-Length` body); `null` once the client closed. */
  async readRequest(): Promise<RawRequest | null> {
    for (;;) {
      const headEnd = _indexOfEmptyLine(this.#pending);
      if (headEnd >= 0) {
        const head = String.fromCharCode(...this.#pending.subarray(0, headEnd));
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? "0");
        const total = headEnd + 4 + length;
        if (this.#pending.length >= total) {
          const bytes = this.#pending.slice(0, total);
          this.#pending = this.#pending.slice(total);
          const request = { head, body: bytes.subarray(headEnd + 4), bytes };
          this.requests.push(request);
          return request;
        }
      }
      const chunk = await this.#read();
      if (chunk === null) return null;
      const joined = new Uint8Array(this.#pending.length + chunk.length);
      joined.set(this.#pending);
      joined.set(chunk, this.#pending.length);
      this.#pending = joined;
    }
  }

  /** Reads (and records) requests until the client closes the connection. */
  async untilClosed(): Promise<void> {
    while ((await this.readRequest()) !== null);
  }

  /** Writes `data` in one go; nothing when the client has gone. */
  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    try {
      for (let written = 0; written < bytes.length;) {
        written += await this.#conn.write(bytes.subarray(written));
      }
    } catch (error) {
      if (!isGone(error)) throw error;
    }
  }

  /** Writes `data` one byte per write, so that the client meets every split a read can make. */
  async writeBytewise(data: string): Promise<void> {
    for (const byte of encoder.encode(data)) await this.write(new Uint8Array([byte]));
  }

  /** Closes the server's side. */
  close(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    try {
      this.#conn.close();
    } catch {
      // closed already
    }
  }

  async #read(): Promise<Uint8Array | null> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      const read = await this.#conn.read(buffer);
      if (read !== null) return buffer.subarray(0, read);
    } catch (error) {
      if (!isGone(error)) throw error;
    }
    this.#ended.resolve();
    return null;
  }
}

/** Where `\r\n\r\n` starts in `bytes`, or -1. */
function _indexOfEmptyLine(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}

/** What a raw server does with each connection it accepts; the server closes it afterwards. */
type Script = (conn: ScriptedConnection) => Promise<void>;

/** A raw TCP server on 127.0.0.1 that runs a script per accepted connection. */
interface RawServer {
  port: number;
  /** `http://127.0.0.1:<port>` and `path`. */
  url(path?: string): string;
  /** Every connection accepted, in order. */
  connections: ScriptedConnection[];
  /** Every request read, on any connection. */
  requests(): RawRequest[];
  /** Stops accepting, closes every connection, waits for the scripts; throws a script's failure. */
  close(): Promise<void>;
}

/** Starts a {@linkcode RawServer} running `script` on every connection it accepts. */
function startRawServer(script: Script): RawServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connections: ScriptedConnection[] = [];
  const scripts: Promise<void>[] = [];
  const failures: unknown[] = [];
  const accepting = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // the listener closed
      }
      const scripted = new ScriptedConnection(conn, connections.length);
      connections.push(scripted);
      scripts.push(
        script(scripted)
          .catch((error) => {
            if (!isGone(error)) failures.push(error);
          })
          .finally(() => scripted.close()),
      );
    }
  })();
  const port = listener.addr.port;
  return {
    port,
    url: (path = "/") => `http://127.0.0.1:${port}${path}`,
    connections,
    requests: () => connections.flatMap((conn) => conn.requests),
    async close() {
      listener.close();
      await accepting;
      connections.forEach((conn) => conn.close());
      await Promise.all(scripts);
      if (failures.length > 0) throw failures[0];
    },
  };
}

/** A script that answers every request on its connection with `answer`, until the client closes. */
function answerEach(answer: string | ((conn: ScriptedConnection) => string)): Script {
  return async (conn) => {
    while ((await conn.readRequest()) !== null) {
      await conn.write(typeof answer === "string" ? answer : answer(conn));
    }
  };
}

/** Runs `fn` with a raw server running `script` and a client, and closes both afterwards. */
async function withRawServer(
  script: Script,
  fn: (server: RawServer, client: Http1Client) => Promise<void>,
  options: Http1ClientOptions = {},
): Promise<void> {
  const server = startRawServer(script);
  const client = createHttp1Client(options);
  try {
    await fn(server, client);
  } finally {
    client.close();
    await server.close();
  }
}

/** Posts `body` to `url` with a never-aborted signal unless one is given. */
function post(
  client: Http1Client,
  url: string,
  request: {
    body?: string | Uint8Array<ArrayBuffer>;
    headers?: Record<string, string>;
    signal?: AbortSignal;
  } = {},
): Promise<Answer> {
  return client.post({
    url,
    headers: request.headers ?? {},
    body: request.body ?? "{}",
    signal: request.signal ?? new AbortController().signal,
  });
}

/** Whether `event` happens within {@linkcode CLOSE_SEEN_MS}. */
function isSoon(event: Promise<unknown>): Promise<boolean> {
  return within(event.then(() => true), CLOSE_SEEN_MS, { otherwise: false });
}

/** The text of an answer's body. */
function bodyText(answer: Answer): string {
  return decoder.decode(answer.body.bytes);
}

/** Awaits `promise`'s rejection: a {@linkcode TransportError} as `expected` says. */
async function rejectsWithTransportError(
  promise: Promise<unknown>,
  expected: { isConnectFailure: boolean; message: RegExp },
): Promise<TransportError> {
  let settled: { error: unknown } | undefined;
  try {
    await promise;
  } catch (error) {
    settled = { error };
  }
  assert.ok(settled, "the post rejects");
  const { error } = settled;
  assert.ok(error instanceof TransportError, `a TransportError, not ${error}`);
  assert.equal(error.isConnectFailure, expected.isConnectFailure, error.message);
  assert.match(error.message, expected.message);
  return error;
}

// Requests and keep-alive.

Deno.test(
  "createHttp1Client() sends each POST as one exact HTTP/1.1 request and reuses its connection",
  async () => {
    const BODY = "héllo ✓";
    assert.equal(encoder.encode(BODY).length, 10, "é takes two bytes, ✓ three");
    await withRawServer(answerEach(OK), async (server, client) => {
      const url = server.url("/hooks/wa?token=abc&n=1");
      for (let i = 1; i <= 3; i++) {
        // The last body goes as bytes, the others as text.
        const body = i === 3 ? encoder.encode(BODY) : BODY;
        const answer = await post(client, url, {
          body,
          headers: { "content-type": "text/plain; charset=utf-8", "webhook-id": `msg_${i}` },
        });
        assert.equal(answer.status, 200);
        assert.equal(bodyText(answer), "ok");
        assert.deepEqual(answer.body, { bytes: encoder.encode("ok"), isComplete: true });
      }
      assert.equal(server.connections.length, 1, "three posts, one connection");
      const requests = server.connections[0]!.requests;
      assert.equal(requests.length, 3);
      requests.forEach((request, i) => {
        const expected = `POST /hooks/wa?token=abc&n=1 HTTP/1.1\r\n` +
          `Host: 127.0.0.1:${server.port}\r\n` +
          `User-Agent: wa-webhook\r\n` +
          `Content-Length: 10\r\n` +
          `content-type: text/plain; charset=utf-8\r\n` +
          `webhook-id: msg_${i + 1}\r\n` +
          `\r\n` +
          BODY;
        assert.equal(decoder.decode(request.bytes), expected);
        assert.equal(request.bytes.length, encoder.encode(expected).length);
      });
    });
  },
);

Deno.test("createHttp1Client() reads answer headers by any case", async () => {
  const answer = "HTTP/1.1 202 Accepted\r\nX-Request-Id: abc\r\nSet-Thing: a\r\n" +
    "Set-Thing: b\r\nContent-Length: 0\r\n\r\n";
  await withRawServer(answerEach(answer), async (server, client) => {
    const got = await post(client, server.url());
    assert.equal(got.status, 202);
    assert.equal(got.header("x-request-id"), "abc");
    assert.equal(got.header("X-REQUEST-ID"), "abc");
    assert.equal(got.header("set-thing"), "a, b", "repeats joined");
    assert.equal(got.header("retry-after"), null);
    assert.deepEqual(got.body, { bytes: new Uint8Array(0), isComplete: true });
    await post(client, server.url());
    assert.equal(server.connections.length, 1, "an empty body of length 0 keeps the connection");
  });
});

Deno.test(
  "createHttp1Client() reassembles a chunked answer, skipping extensions and trailers, and keeps the connection",
  async () => {
    const chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Answer: yes\r\n\r\n" +
      "5;x=y\r\nhello\r\n" +
      "1\r\n \r\n" +
      "A\r\nworld, and\r\n" +
      '2;name="quoted"\r\n!!\r\n' +
      "0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n";
    const script: Script = async (conn) => {
      while ((await conn.readRequest()) !== null) await conn.writeBytewise(chunked);
    };
    await withRawServer(script, async (server, client) => {
      for (let i = 0; i < 2; i++) {
        const answer = await post(client, server.url());
        assert.equal(answer.status, 200);
        assert.equal(answer.header("x-answer"), "yes");
        assert.equal(bodyText(answer), "hello world, and!!");
        assert.equal(answer.body.isComplete, true);
        assert.equal(answer.body.failure, undefined);
      }
      assert.equal(server.connections.length, 1, "the trailers were read: the connection is kept");
      assert.equal(server.requests().length, 2);
    });
  },
);

Deno.test("createHttp1Client() reads a body of exactly 4096 bytes whole, either framing", async () => {
  const data = "d".repeat(MAX_BODY_READ_BYTES);
  const answers = [
    `HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\n\r\n${data}`,
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n` +
    `${data.length.toString(16)}\r\n${data}\r\n0\r\n\r\n`,
  ];
  await withRawServer(
    answerEach((conn) => answers[conn.requests.length - 1] ?? OK),
    async (server, client) => {
      for (const _ of answers) {
        const answer = await post(client, server.url());
        assert.equal(answer.body.bytes.length, MAX_BODY_READ_BYTES);
        assert.equal(bodyText(answer), data);
        assert.equal(answer.body.isComplete, true);
      }
      assert.equal(server.connections.length, 1);
    },
  );
});

Deno.test(
  "createHttp1Client() stops a longer chunked body at 4096 bytes and does not reuse its connection",
  async () => {
    const chunk = (char: string) => `3e8\r\n${char.repeat(1000)}\r\n`;
    const long = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
      ["a", "b", "c", "d", "e"].map(chunk).join("") + "0\r\n\r\n";
    await withRawServer(answerEach(long), async (server, client) => {
      const answer = await post(client, server.url());
      assert.equal(answer.status, 200);
      assert.equal(answer.body.bytes.length, MAX_BODY_READ_BYTES);
      assert.equal(
        bodyText(answer),
        "a".repeat(1000) + "b".repeat(1000) + "c".repeat(1000) + "d".repeat(1000) + "e".repeat(96),
      );
      assert.equal(answer.body.isComplete, false);
      assert.equal(answer.body.failure, undefined, "the cap is not a failure");
      assert.ok(await isSoon(server.connections[0]!.ended), "the client closed the connection");
      await post(client, server.url());
      assert.equal(server.connections.length, 2, "the next post opened a new connection");
      assert.equal(server.connections[1]!.requests.length, 1);
    });
  },
);

Deno.test(
  "createHttp1Client() says a chunked body ended early when its connection closes after a chunk",
  async () => {
    const script: Script = async (conn) => {
      await conn.readRequest();
      await conn.write("HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello");
      conn.close();
    };
    await withRawServer(script, async (server, client) => {
      const answer = await post(client, server.url());
      assert.equal(answer.status, 500);
      assert.equal(bodyText(answer), "hello");
      assert.equal(answer.body.isComplete, false);
      assert.equal(answer.body.failure, "The connection closed before the chunked body's end");
    });
  },
);

Deno.test("createHttp1Client() keeps what a body brought before it broke the protocol", async () => {
  const broken = "HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\n\r\n" +
    "7\r\nupstrea\r\n2\r\nm!\r\nzz\r\n";
  await withRawServer(answerEach(broken), async (server, client) => {
    const answer = await post(client, server.url());
    assert.equal(answer.status, 502);
    assert.equal(bodyText(answer), "upstream!");
    assert.equal(answer.body.isComplete, false);
    assert.match(answer.body.failure ?? "", /malformed chunk size/);
    await post(client, server.url());
    assert.equal(server.connections.length, 2, "its connection was not reused");
  });
});

Deno.test(
  "createHttp1Client() stops a longer Content-Length body at 4096 bytes and does not reuse its connection",
  async () => {
    const long = `HTTP/1.1 400 Bad Request\r\nContent-Length: 5000\r\n\r\n${"x".repeat(5000)}`;
    await withRawServer(answerEach(long), async (server, client) => {
      const answer = await post(client, server.url());
      assert.equal(answer.status, 400);
      assert.equal(bodyText(answer), "x".repeat(MAX_BODY_READ_BYTES));
      assert.equal(answer.body.isComplete, false);
      await post(client, server.url());
      assert.equal(server.connections.length, 2);
    });
  },
);

Deno.test(
  "createHttp1Client() does not reuse a connection after an answer with Connection: close",
  async () => {
    const closing = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
    // The server keeps its side open: only the client's close ends the connection.
    await withRawServer(answerEach(closing), async (server, client) => {
      const answer = await post(client, server.url());
      assert.equal(answer.status, 200);
      assert.equal(bodyText(answer), "ok");
      assert.ok(await isSoon(server.connections[0]!.ended), "the client closed the connection");
      await post(client, server.url());
      assert.equal(server.connections.length, 2);
      assert.equal(server.connections[0]!.requests.length, 1);
    });
  },
);

Deno.test(
  "createHttp1Client() does not reuse a connection after an HTTP/1.0 answer unless it asks for keep-alive",
  async () => {
    const plain = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
    const keptAlive = "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok";
    await withRawServer(answerEach(plain), async (server, client) => {
      assert.equal((await post(client, server.url())).status, 200);
      assert.ok(await isSoon(server.connections[0]!.ended), "the client closed the connection");
      await post(client, server.url());
      assert.equal(server.connections.length, 2);
    });
    await withRawServer(answerEach(keptAlive), async (server, client) => {
      await post(client, server.url());
      await post(client, server.url());
      assert.equal(server.connections.length, 1, "HTTP/1.0 with keep-alive: reused");
    });
  },
);

Deno.test(
  "createHttp1Client() reads a body without length or chunking until the server closes",
  async () => {
    const script: Script = async (conn) => {
      await conn.readRequest();
      await conn.write("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\n");
      await conn.write("down for ");
      await conn.write("maintenance");
      // the script's end closes the connection: the body's end
    };
    await withRawServer(script, async (server, client) => {
      const answer = await post(client, server.url());
      assert.equal(answer.status, 503);
      assert.equal(bodyText(answer), "down for maintenance");
      assert.equal(answer.body.isComplete, true);
      assert.equal(answer.body.failure, undefined);
      await post(client, server.url());
      assert.equal(server.connections.length, 2, "a body ended by closing ends the connection");
    });
  },
);

Deno.test("createHttp1Client() skips an interim 100 Continue and returns the final answer", async () => {
  const answer = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX-Interim: 1\r\n\r\n" +
    "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone";
  await withRawServer(answerEach(answer), async (server, client) => {
    const got = await post(client, server.url());
    assert.equal(got.status, 200);
    assert.equal(
      got.header("x-interim"),
      null,
      "the interim answer's headers are not the answer's",
    );
    assert.equal(bodyText(got), "done");
    await post(client, server.url());
    assert.equal(server.connections.length, 1);
  });
});

Deno.test("createHttp1Client() rejects a 101 answer: it does not switch protocols", async () => {
  const switching = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
    "Connection: Upgrade\r\n\r\n";
  await withRawServer(answerEach(switching), async (server, client) => {
    await rejectsWithTransportError(post(client, server.url()), {
      isConnectFailure: false,
      message: /^its answer is not HTTP\/1\.1: .*switched protocols \(101\)/i,
    });
    assert.ok(await isSoon(server.connections[0]!.ended), "the client closed the connection");
  });
});

/** Answers that are not HTTP/1.1, and what the client's rejection says about each. */
const MALFORMED_ANSWERS: { what: string; answer: string; message: RegExp }[] = [
  {
    what: "garbage instead of a status line",
    answer: "hello\r\n\r\n",
    message: /does not start with an HTTP\/1\.x status line/,
  },
  {
    what: "a header line without a colon",
    answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nNo colon here\r\n\r\nok",
    message: /malformed header line/,
  },
  {
    what: "two different Content-Length values",
    answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk",
    message: /Content-Length is not one number/,
  },
  {
    what: "a Content-Length that is not a number",
    answer: "HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok",
    message: /Content-Length is not one number/,
  },
  {
    what: "an answer head longer than the read buffer",
    answer: `HTTP/1.1 200 OK\r\nX-Long: ${
      "a".repeat(READ_BUFFER_BYTES)
    }\r\nContent-Length: 0\r\n\r\n`,
    message: new RegExp(`head is longer than ${READ_BUFFER_BYTES} bytes`),
  },
];

for (const { what, answer, message } of MALFORMED_ANSWERS) {
  Deno.test(`createHttp1Client() rejects ${what} as not HTTP/1.1`, async () => {
    await withRawServer(answerEach(answer), async (server, client) => {
      const error = await rejectsWithTransportError(post(client, server.url()), {
        isConnectFailure: false,
        message: /^its answer is not HTTP\/1\.1: /,
      });
      assert.match(error.message, message);
      assert.equal(server.requests().length, 1, "not sent again");
      assert.ok(await isSoon(server.connections[0]!.ended), "the client closed the connection");
    });
  });
}

Deno.test("createHttp1Client() accepts a Content-Length repeated with the same value", async () => {
  const answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok";
  await withRawServer(answerEach(answer), async (server, client) => {
    assert.equal(bodyText(await post(client, server.url())), "ok");
  });
});

// Stale and lost connections.

Deno.test(
  "createHttp1Client() resends on a new connection when a kept connection closes without answering",
  async () => {
    const script: Script = async (conn) => {
      await conn.readRequest();
      await conn.write(OK);
      if (conn.index === 0) {
        await conn.readRequest(); // the second request arrives, and the server hangs up on it
        return;
      }
      await conn.untilClosed();
    };
    await withRawServer(script, async (server, client) => {
      await post(client, server.url(), { body: "first" });
      const answer = await post(client, server.url(), { body: "second" });
      assert.equal(answer.status, 200);
      assert.equal(server.connections.length, 2);
      const bodies = server.connections.map((conn) =>
        conn.requests.map((request) => decoder.decode(request.body))
      );
      assert.deepEqual(bodies, [["first", "second"], ["second"]]);
    });
  },
);

Deno.test(
  "createHttp1Client() resends on a new connection when the server closed a kept one while idle",
  async () => {
    const closedAfterAnswering = Promise.withResolvers<void>();
    const script: Script = async (conn) => {
      await conn.readRequest();
      await conn.write(OK); // keep-alive by default, then closed all the same
      if (conn.index === 0) {
        conn.close();
        closedAfterAnswering.resolve();
        return;
      }
      await conn.untilClosed();
    };
    await withRawServer(script, async (server, client) => {
      await post(client, server.url(), { body: "first" });
      await closedAfterAnswering.promise;
      const answer = await post(client, server.url(), { body: "second" });
      assert.equal(answer.status, 200);
      assert.equal(server.connections.length, 2);
      assert.deepEqual(
        server.requests().map((request) => decoder.decode(request.body)),
        ["first", "second"],
        "the second request was handled once, on the new connection",
      );
      assert.equal(server.connections[1]!.requests.length, 1);
    });
  },
);

Deno.test(
  "createHttp1Client() resends on a new connection even when every kept connection has gone stale",
  async () => {
    // Two connections kept idle, then both closed by the server (a restart, its idle timeout): the
    // request is sent once more on a NEW connection, not on the other stale one.
    const bothClosed = Promise.withResolvers<void>();
    let closedCount = 0;
    const script: Script = async (conn) => {
      await conn.readRequest();
      await conn.write(OK);
      if (conn.index < 2) {
        conn.close();
        if (++closedCount === 2) bothClosed.resolve();
        return;
      }
      await conn.untilClosed();
    };
    await withRawServer(script, async (server, client) => {
      await Promise.all([post(client, server.url()), post(client, server.url())]);
      assert.equal(server.connections.length, 2, "two concurrent posts, two connections");
      await bothClosed.promise;
      const outcome = await post(client, server.url(), { body: "third" }).then(
        (answer) => answer.status,
        (error: Error) => error.message,
      );
      assert.equal(server.connections.length, 3, "the resend went on a new connection");
      assert.equal(outcome, 200);
      assert.deepEqual(
        server.connections[2]!.requests.map((request) => decoder.decode(request.body)),
        ["third"],
      );
    });
  },
);

Deno.test(
  "createHttp1Client() does not resend when a new connection closes before any answer",
  async () => {
    const script: Script = async (conn) => {
      await conn.readRequest(); // read whole, then hung up on
    };
    await withRawServer(script, async (server, client) => {
      await rejectsWithTransportError(post(client, server.url()), {
        isConnectFailure: false,
        message: /^The connection closed before an answer arrived$/,
      });
      assert.equal(server.connections.length, 1, "no second connection");
      assert.equal(server.requests().length, 1, "the request was sent exactly once");
    });
  },
);

Deno.test(
  "createHttp1Client() does not resend when a kept connection closes partway through an answer",
  async () => {
    const script: Script = async (conn) => {
      await conn.readRequest();
      await conn.write(OK);
      await conn.readRequest();
      await conn.write("HTTP/1.1 200 O"); // something of an answer came: the request was seen
    };
    await withRawServer(script, async (server, client) => {
      await post(client, server.url());
      await rejectsWithTransportError(post(client, server.url()), {
        isConnectFailure: false,
        message: /closed before an answer arrived/,
      });
      assert.equal(server.connections.length, 1, "not resent on a new connection");
      assert.equal(server.requests().length, 2);
    });
  },
);

// The pool of idle connections.

Deno.test("createHttp1Client() reuses the most recently released connection first", async () => {
  const arrived = [Promise.withResolvers<void>(), Promise.withResolvers<void>()];
  const answerNow = [Promise.withResolvers<void>(), Promise.withResolvers<void>()];
  const script: Script = async (conn) => {
    while ((await conn.readRequest()) !== null) {
      if (conn.requests.length === 1 && conn.index < 2) {
        arrived[conn.index]!.resolve();
        await answerNow[conn.index]!.promise;
      }
      await conn.write(OK);
    }
  };
  await withRawServer(script, async (server, client) => {
    const posts = [post(client, server.url()), post(client, server.url())];
    await Promise.all(arrived.map((event) => event.promise));
    // Connection 0 answers (and is released) first, connection 1 last.
    answerNow[0]!.resolve();
    await Promise.race(posts);
    answerNow[1]!.resolve();
    await Promise.all(posts);
    await post(client, server.url());
    assert.deepEqual(server.connections.map((conn) => conn.requests.length), [1, 2]);
    // Two posts at once take both idle connections: no new one.
    await Promise.all([post(client, server.url()), post(client, server.url())]);
    assert.deepEqual(server.connections.map((conn) => conn.requests.length), [2, 3]);
  });
});

Deno.test(
  "createHttp1Client() keeps at most MAX_IDLE_CONNECTIONS idle connections per origin",
  async () => {
    const COUNT = MAX_IDLE_CONNECTIONS + 1;
    const burst = (client: Http1Client, server: RawServer) =>
      Promise.all(Array.from({ length: COUNT }, () => post(client, server.url())));
    await withRawServer(answerEach(OK), async (server, client) => {
      await burst(client, server);
      assert.equal(server.connections.length, COUNT, "one connection per concurrent post");
      const closedOne = Promise.race(server.connections.map((conn) => conn.ended));
      assert.ok(await isSoon(closedOne), "the one released beyond the limit was closed");
      await burst(client, server);
      assert.equal(server.connections.length, COUNT + 1, "the kept ones reused, one new");
    });
  },
);

Deno.test("createHttp1Client() keeps idle connections apart per origin", async () => {
  const one = startRawServer(answerEach(OK));
  const two = startRawServer(answerEach(OK));
  const client = createHttp1Client();
  try {
    for (let i = 0; i < 3; i++) {
      await post(client, one.url("/a"));
      await post(client, two.url("/b"));
    }
    assert.equal(one.connections.length, 1);
    assert.equal(two.connections.length, 1);
    assert.ok(one.requests().every((request) => request.head.startsWith("POST /a ")));
    assert.ok(two.requests().every((request) => request.head.startsWith("POST /b ")));
  } finally {
    client.close();
    await one.close();
    await two.close();
  }
});

Deno.test(
  "createHttp1Client() reuses a connection idle within idleMs and replaces one idle longer",
  async () => {
    let clock = 1_000;
    await withRawServer(answerEach(OK), async (server, client) => {
      await post(client, server.url()); // idle since 1000
      clock += 30;
      await post(client, server.url()); // idle 30 ms: reused; idle since 1030
      assert.equal(server.connections.length, 1);
      clock += 51;
      await post(client, server.url()); // idle 51 ms: closed, replaced
      assert.equal(server.connections.length, 2);
      assert.deepEqual(server.connections.map((conn) => conn.requests.length), [2, 1]);
      assert.ok(await isSoon(server.connections[0]!.ended), "the expired one was closed");
    }, { idleMs: 50, now: () => clock });
  },
);

Deno.test("createHttp1Client() closes every expired idle connection it meets", async () => {
  let clock = 0;
  await withRawServer(answerEach(OK), async (server, client) => {
    await Promise.all([post(client, server.url()), post(client, server.url())]);
    assert.equal(server.connections.length, 2);
    clock = 100;
    await post(client, server.url());
    assert.equal(server.connections.length, 3);
    assert.ok(await isSoon(server.connections[0]!.ended), "the older expired one was closed");
    assert.ok(await isSoon(server.connections[1]!.ended), "the newer expired one was closed");
  }, { idleMs: 50, now: () => clock });
});

Deno.test("createHttp1Client() closes an expired idle connection kept under a fresher one", async () => {
  let clock = 0;
  await withRawServer(answerEach(OK), async (server, client) => {
    await Promise.all([post(client, server.url()), post(client, server.url())]);
    clock = 40;
    await post(client, server.url()); // one of the two is fresh again, the other idle since 0
    clock = 60;
    await post(client, server.url());
    assert.equal(server.connections.length, 2, "the fresh one was reused");
    const [first, second] = server.connections;
    assert.ok(
      await isSoon(Promise.race([first!.ended, second!.ended])),
      "the one idle for 60 ms was closed",
    );
  }, { idleMs: 50, now: () => clock });
});

Deno.test("createHttp1Client() close() closes its idle connections; a later post opens one", async () => {
  await withRawServer(answerEach(OK), async (server, client) => {
    await post(client, server.url());
    client.close();
    assert.ok(await isSoon(server.connections[0]!.ended), "the idle connection was closed");
    assert.equal((await post(client, server.url())).status, 200);
    assert.equal(server.connections.length, 2);
  });
});

// Aborts.

Deno.test(
  "createHttp1Client() rejects with the abort's reason and closes the connection when aborted before the answer",
  async () => {
    const arrived = Promise.withResolvers<void>();
    const script: Script = async (conn) => {
      await conn.readRequest();
      arrived.resolve();
      await conn.untilClosed(); // holds the answer
    };
    await withRawServer(script, async (server, client) => {
      const controller = new AbortController();
      const reason = new Error("Attempt timed out");
      const answer = post(client, server.url(), { signal: controller.signal });
      await arrived.promise;
      controller.abort(reason);
      await assert.rejects(answer, (error) => error === reason);
      assert.ok(await isSoon(server.connections[0]!.ended), "the client closed the connection");
    });
  },
);

Deno.test(
  "createHttp1Client() returns an unfinished answer when aborted while reading the body",
  async () => {
    const headSent = Promise.withResolvers<void>();
    const script: Script = async (conn) => {
      await conn.readRequest();
      await conn.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
      headSent.resolve();
      await conn.untilClosed(); // the other 97 bytes never come
    };
    await withRawServer(script, async (server, client) => {
      const controller = new AbortController();
      const answer = post(client, server.url(), { signal: controller.signal });
      await headSent.promise;
      await new Promise((resolve) => setTimeout(resolve, 50)); // the client reads the head
      controller.abort(new Error("Attempt timed out"));
      const got = await answer;
      assert.equal(got.status, 200);
      assert.equal(got.body.isComplete, false);
      assert.equal(got.body.failure, undefined, "an abort is not a failure of the body");
      assert.ok(await isSoon(server.connections[0]!.ended), "the client closed the connection");
    });
  },
);

Deno.test("createHttp1Client() rejects an aborted signal's post without connecting", async () => {
  await withRawServer(answerEach(OK), async (server, client) => {
    const reason = new Error("Shutting down");
    await assert.rejects(
      post(client, server.url(), { body: "never", signal: AbortSignal.abort(reason) }),
      (error) => error === reason,
    );
    await post(client, server.url(), { body: "sent" });
    assert.equal(server.connections.length, 1);
    assert.deepEqual(server.requests().map((request) => decoder.decode(request.body)), ["sent"]);
  });
});

// Failures before anything is sent.

Deno.test("createHttp1Client() rejects a refused connection as a connect failure", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const client = createHttp1Client();
  try {
    await rejectsWithTransportError(post(client, `http://127.0.0.1:${port}/hooks`), {
      isConnectFailure: true,
      message: /refused/i,
    });
  } finally {
    client.close();
  }
});

Deno.test(
  "createHttp1Client() rejects a header holding a line break, and a URL not http(s), sending nothing",
  async () => {
    await withRawServer(answerEach(OK), async (server, client) => {
      await assert.rejects(
        post(client, server.url(), { headers: { "x-a": "1\r\nx-injected: yes" } }),
        (error) => error instanceof TypeError && /holds a line break/.test(error.message),
      );
      await assert.rejects(
        post(client, server.url(), { headers: { "x-a\nx-injected": "yes" } }),
        TypeError,
      );
      await assert.rejects(
        post(client, `ftp://127.0.0.1:${server.port}/x`),
        (error) => error instanceof TypeError && /Not an http\(s\) URL/.test(error.message),
      );
      await post(client, server.url(), { headers: { "x-a": "1" } });
      assert.equal(server.requests().length, 1);
      assert.doesNotMatch(server.requests()[0]!.head, /x-injected/);
    });
  },
);

// HTTPS.

/** A test authority's certificate, and a certificate it signed for localhost and its key (PEM). */
interface TlsFixture {
  caPem: string;
  cert: string;
  key: string;
}

let _tlsFixture: Promise<TlsFixture> | undefined;

/** The {@linkcode TlsFixture}, made once per run with `openssl` in a directory removed afterwards. */
function tlsFixture(): Promise<TlsFixture> {
  return _tlsFixture ??= _makeTlsFixture();
}

/** Runs `openssl` with `args` in `cwd`; throws with its error output when it fails. */
async function openssl(cwd: string, args: string[]): Promise<void> {
  const { success, stderr } = await new Deno.Command("/usr/bin/openssl", {
    args,
    cwd,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!success) throw new Error(`openssl ${args[0]} failed: ${decoder.decode(stderr)}`);
}

async function _makeTlsFixture(): Promise<TlsFixture> {
  const dir = await Deno.makeTempDir({ prefix: "http1_client_tls_" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  try {
    // deno-fmt-ignore
    await openssl(dir, [
      "req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "36500",
      "-subj", "/CN=wa-webhook test authority",
      "-addext", "basicConstraints=critical,CA:TRUE",
      "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    // deno-fmt-ignore
    await openssl(dir, [
      "req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
    ]);
    await Deno.writeTextFile(
      `${dir}/server.ext`,
      "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n" +
        "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    );
    // deno-fmt-ignore
    await openssl(dir, [
      "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
      "-set_serial", "2", "-days", "36500", "-out", "server.pem", "-extfile", "server.ext",
    ]);
    return {
      caPem: await Deno.readTextFile(`${dir}/ca.pem`),
      cert: await Deno.readTextFile(`${dir}/server.pem`),
      key: await Deno.readTextFile(`${dir}/server.key`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A `Deno.serve` over TLS on 127.0.0.1 that records each request's body and client port. */
async function startTlsServer() {
  const { cert, key } = await tlsFixture();
  const seen: { body: string; clientPort: number }[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert, key, onListen: () => {} },
    async (request, info) => {
      seen.push({ body: await request.text(), clientPort: info.remoteAddr.port });
      return new Response("secure");
    },
  );
  return { port: server.addr.port, seen, close: () => server.shutdown() };
}

Deno.test(
  "createHttp1Client() posts over HTTPS to a server its caCerts trust, reusing the TLS connection",
  async () => {
    const { caPem } = await tlsFixture();
    const server = await startTlsServer();
    const client = createHttp1Client({ caCerts: [caPem] });
    try {
      for (const body of ["one", "two"]) {
        const answer = await post(client, `https://localhost:${server.port}/x`, { body });
        assert.equal(answer.status, 200);
        assert.equal(bodyText(answer), "secure");
      }
      assert.deepEqual(server.seen.map((request) => request.body), ["one", "two"]);
      assert.equal(server.seen[0]!.clientPort, server.seen[1]!.clientPort, "one TLS connection");
    } finally {
      client.close();
      await server.close();
    }
  },
);

Deno.test(
  "createHttp1Client() rejects an HTTPS server of an unknown authority as a connect failure",
  async () => {
    const server = await startTlsServer();
    const client = createHttp1Client();
    try {
      await rejectsWithTransportError(post(client, `https://localhost:${server.port}/x`), {
        isConnectFailure: true,
        message: /invalid peer certificate: UnknownIssuer/,
      });
      assert.deepEqual(server.seen, [], "nothing was sent");
    } finally {
      client.close();
      await server.close();
    }
  },
);

// deliveryHttpFor().

Deno.test("deliveryHttpFor() is direct when every proxy variable is unset or blank", () => {
  const asked: string[] = [];
  assert.equal(
    deliveryHttpFor((name) => {
      asked.push(name);
      return undefined;
    }),
    "direct",
  );
  assert.deepEqual(asked, [...PROXY_VARIABLES]);
  assert.equal(deliveryHttpFor(() => ""), "direct");
  assert.equal(deliveryHttpFor(() => "  \t"), "direct");
});

Deno.test("deliveryHttpFor() is fetch when any one proxy variable is set", () => {
  assert.equal(PROXY_VARIABLES.length, 6);
  for (const variable of PROXY_VARIABLES) {
    const env: Record<string, string> = { [variable]: "http://proxy.internal:3128" };
    assert.equal(deliveryHttpFor((name) => env[name]), "fetch", variable);
  }
  assert.equal(deliveryHttpFor((name) => name === "NO_PROXY" ? "*" : undefined), "direct");
});

Deno.test("deliveryHttpFor() is fetch when the variables cannot be read", () => {
  assert.equal(
    deliveryHttpFor(() => {
      throw new Deno.errors.NotCapable("Requires env access");
    }),
    "fetch",
  );
  assert.equal(
    deliveryHttpFor((name) => {
      if (name === "ALL_PROXY") throw new Deno.errors.NotCapable("Requires env access");
      return undefined;
    }),
    "fetch",
  );
});
