import assert from "node:assert/strict";
import { ADMIN_BEARER_REALM, authenticateAdmin, requireAdmin } from "../src/admin/auth.ts";
import { HttpError } from "../src/http/errors.ts";
import { silentLogger } from "../src/ops/log.ts";
import { TEST_ADMIN_TOKEN } from "./support.ts";

function requestWith(authorization?: string): Request {
  const headers = new Headers();
  if (authorization !== undefined) headers.set("Authorization", authorization);
  return new Request("http://localhost/admin/x", { headers });
}

function refusal(authorization?: string): HttpError {
  try {
    authenticateAdmin(requestWith(authorization), TEST_ADMIN_TOKEN);
  } catch (error) {
    assert.ok(error instanceof HttpError);
    return error;
  }
  throw new Error("the request was accepted");
}

Deno.test("authenticateAdmin() accepts the token as a bearer token, scheme in any case", () => {
  authenticateAdmin(requestWith(`Bearer ${TEST_ADMIN_TOKEN}`), TEST_ADMIN_TOKEN);
  authenticateAdmin(requestWith(`bearer ${TEST_ADMIN_TOKEN}`), TEST_ADMIN_TOKEN);
});

Deno.test("authenticateAdmin() refuses a missing header with 401 and the bearer challenge", () => {
  const error = refusal();
  assert.equal(error.status, 401);
  assert.equal(error.reason, `Cannot authenticate: header "Authorization" is missing`);
  assert.equal(error.headers["WWW-Authenticate"], ADMIN_BEARER_REALM);
});

for (
  const header of [
    "Bearer wrong-admin-token-9876543210",
    `Basic ${TEST_ADMIN_TOKEN}`,
    `Bearer ${TEST_ADMIN_TOKEN}x`,
    `Bearer ${TEST_ADMIN_TOKEN.slice(0, -1)}`,
    "Bearer",
    "",
  ]
) {
  Deno.test(`authenticateAdmin() refuses "${header}" as an invalid token`, () => {
    const error = refusal(header);
    assert.equal(error.status, 401);
    assert.equal(error.headers["WWW-Authenticate"], `${ADMIN_BEARER_REALM}, error="invalid_token"`);
  });
}

Deno.test("requireAdmin() runs the handler only after the check passed", async () => {
  let runs = 0;
  const handler = requireAdmin(TEST_ADMIN_TOKEN, () => {
    runs++;
    return new Response("ok");
  });
  const context = { params: {}, log: silentLogger, requestId: "t" };
  assert.throws(() => handler(requestWith(), context), HttpError);
  assert.equal(runs, 0);
  const response = await handler(requestWith(`Bearer ${TEST_ADMIN_TOKEN}`), context);
  assert.equal(await response.text(), "ok");
  assert.equal(runs, 1);
});
