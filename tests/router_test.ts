import assert from "node:assert/strict";
import { HttpError } from "../src/http/errors.ts";
import { createRouter } from "../src/http/router.ts";
import { silentLogger } from "../src/ops/log.ts";

const router = createRouter([
  { method: "GET", path: "/items/:id", handler: (_req, { params }) => Response.json(params) },
  { method: "POST", path: "/items/:id", handler: () => new Response("posted") },
  { method: "POST", path: "/only-post", handler: () => new Response("posted") },
]);
const context = { log: silentLogger, requestId: "test" };

async function rejection(request: Request): Promise<HttpError> {
  try {
    await router(request, context);
  } catch (error) {
    assert.ok(error instanceof HttpError);
    return error;
  }
  throw new Error("expected the router to reject the request");
}

Deno.test("route() passes the pattern's named groups to the handler", async () => {
  const response = await router(new Request("http://x/items/42"), context);
  assert.deepEqual(await response.json(), { id: "42" });
});

Deno.test("route() answers HEAD with the GET handler's status and headers, without a body", async () => {
  const response = await router(new Request("http://x/items/42", { method: "HEAD" }), context);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/json");
  assert.equal(response.body, null);
});

Deno.test("route() returns 405 with Allow for a known path with another method", async () => {
  const error = await rejection(new Request("http://x/items/42", { method: "DELETE" }));
  assert.equal(error.status, 405);
  assert.equal(error.headers.Allow, "GET, HEAD, POST");
  const postOnly = await rejection(new Request("http://x/only-post"));
  assert.equal(postOnly.status, 405);
  assert.equal(postOnly.headers.Allow, "POST");
});

Deno.test("route() returns 404 for an unknown path", async () => {
  const error = await rejection(new Request("http://x/nothing"));
  assert.equal(error.status, 404);
  assert.match(error.reason, /No route for "\/nothing"/);
});

Deno.test("route() hands handlers path parameters percent-decoded once", async () => {
  const response = await router(new Request("http://x/items/wamid.AB%3D%3D%2Fx%2541"), context);
  assert.deepEqual(await response.json(), { id: "wamid.AB==/x%41" });
});

Deno.test("route() returns 400 for a path parameter with broken percent-encoding", async () => {
  const error = await rejection(new Request("http://x/items/%E0%A4%A"));
  assert.equal(error.status, 400);
  assert.match(error.reason, /Cannot read "id" in the path: .* has broken percent-encoding/);
});
