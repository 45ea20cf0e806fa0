/**
 * `readBoundedBody()` and `discardBody()` on plain `Request` objects: the size bound, the deadline,
 * the shutdown cut-off, and a client that goes away; `closingConnection()`'s body.
 */
import assert from "node:assert/strict";
import { closingConnection, ConnectionCloseRequest } from "../src/http/connection.ts";
import { IncompleteBodyError } from "../src/http/errors.ts";
import { discardBody, hasHiddenBody, readBoundedBody } from "../src/webhook/body.ts";

const URL_ = "http://service/webhook/whatsapp";

/** A POST whose body sends `first` and then nothing more, or fails with `failWith`. */
function stalledRequest(first: string, failWith?: Error): Request {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(first));
      if (failWith) controller.error(failWith);
    },
  });
  return new Request(URL_, { method: "POST", body });
}

async function rejection(promise: Promise<unknown>): Promise<IncompleteBodyError> {
  const error = await promise.then(() => undefined, (error) => error);
  assert.ok(error instanceof IncompleteBodyError, `expected an IncompleteBodyError, got ${error}`);
  return error;
}

Deno.test("readBoundedBody() reads a whole body within its bounds", async () => {
  const request = new Request(URL_, { method: "POST", body: '{"object":"x"}' });
  const body = await readBoundedBody(request, { maxBytes: 1024, timeoutMs: 1_000 });
  assert.equal(new TextDecoder().decode(body), '{"object":"x"}');
});

Deno.test("readBoundedBody() answers 408 when the body has not arrived within timeoutMs", async () => {
  const started = performance.now();
  const error = await rejection(
    readBoundedBody(stalledRequest('{"obj'), { maxBytes: 1024, timeoutMs: 50 }),
  );
  assert.equal(error.status, 408);
  assert.equal(error.reason, "Body not received within 50 ms");
  assert.ok(performance.now() - started >= 45);
});

Deno.test("readBoundedBody() answers 503 when its signal cuts the read off", async () => {
  const cutOff = new AbortController();
  const reading = readBoundedBody(stalledRequest('{"obj'), {
    maxBytes: 1024,
    timeoutMs: 60_000,
    signal: cutOff.signal,
  });
  cutOff.abort();
  const error = await rejection(reading);
  assert.equal(error.status, 503);
});

Deno.test("readBoundedBody() answers 499 when the client closes mid-body", async () => {
  const request = stalledRequest('{"obj', new Error("connection reset"));
  const error = await rejection(readBoundedBody(request, { maxBytes: 1024, timeoutMs: 1_000 }));
  assert.equal(error.status, 499);
  assert.match(error.reason, /closed the connection/);
});

Deno.test("readBoundedBody() refuses a streamed body over maxBytes with 413, closing the connection", async () => {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new Uint8Array(2048));
    },
  });
  const request = new Request(URL_, { method: "POST", body });
  const error = await rejection(readBoundedBody(request, { maxBytes: 1024, timeoutMs: 1_000 }));
  assert.equal(error.status, 413);
});

Deno.test("discardBody() drops an unread body, and answers 408 for one that stalls", async () => {
  const complete = new Request(URL_, { method: "POST", body: "ignored" });
  await discardBody(complete, { maxBytes: 1024, timeoutMs: 1_000 });
  assert.ok(complete.bodyUsed);
  const error = await rejection(
    discardBody(stalledRequest("x"), { maxBytes: 1024, timeoutMs: 50 }),
  );
  assert.equal(error.status, 408);
});

Deno.test("hasHiddenBody() is true for a GET that announces a body", () => {
  const headers = (extra: Record<string, string>) => new Headers(extra);
  assert.equal(hasHiddenBody(new Request(URL_)), false);
  const announced = new Request(URL_, { headers: headers({ "Content-Length": "10" }) });
  assert.equal(hasHiddenBody(announced), true);
  const chunked = new Request(URL_, { headers: headers({ "Transfer-Encoding": "chunked" }) });
  assert.equal(hasHiddenBody(chunked), true);
});

Deno.test("closingConnection() sends status, headers and body, then fails the body", async () => {
  const response = closingConnection(Response.json({ error: "slow" }, { status: 408 }));
  assert.equal(response.status, 408);
  assert.equal(response.headers.get("Connection"), "close");
  assert.equal(response.headers.get("Content-Type"), "application/json");
  const reader = response.body!.getReader();
  const first = await reader.read();
  assert.equal(new TextDecoder().decode(first.value), '{"error":"slow"}');
  await assert.rejects(reader.read(), ConnectionCloseRequest);
});
