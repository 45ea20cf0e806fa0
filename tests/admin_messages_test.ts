import assert from "node:assert/strict";
import type { StatusEvent } from "../src/events/events.ts";
import { createMessageStatusHandler } from "../src/admin/messages.ts";
import { applyStatus } from "../src/handlers/status_tracker.ts";
import { get, serveService } from "./route_server.ts";
import { kvStore, openTempKv, TEST_ADMIN_TOKEN } from "./support.ts";

const T0 = Date.UTC(2026, 0, 1);
const AUTH = { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
/** Real wamids end in `=` and may hold `/` and `+`: the path must take them percent-encoded. */
const WAMID = "wamid.HBgNNTUx+Tk5/OTk5MDAwMBEGABIYOUT001AA==";

function failedStatus(wamid: string): StatusEvent {
  return {
    kind: "status",
    id: `status:${wamid}:failed:1767225600`,
    wabaId: "102290000000001",
    phoneNumberId: "106540000000002",
    timestampMs: 1767225600_000,
    status: {
      id: wamid,
      status: "failed",
      timestamp: "1767225600",
      errors: [{ code: 131026, title: "Message undeliverable" }],
    },
  };
}

async function startStatusServer(adminToken: string | undefined) {
  const temp = await openTempKv();
  const store = kvStore(temp.kv);
  const server = serveService({ messageStatus: createMessageStatusHandler({ store, adminToken }) });
  return {
    ...server,
    store,
    async [Symbol.asyncDispose]() {
      await server[Symbol.asyncDispose]();
      await temp[Symbol.asyncDispose]();
    },
  };
}

Deno.test("GET /admin/messages/:wamid answers the tracked status", async () => {
  await using server = await startStatusServer(TEST_ADMIN_TOKEN);
  await applyStatus(server.store, failedStatus(WAMID), T0);
  const response = await get(
    server.origin,
    `/admin/messages/${encodeURIComponent(WAMID)}`,
    AUTH,
  );
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  assert.deepEqual(JSON.parse(response.text), {
    id: WAMID,
    status: "failed",
    updatedAt: "2026-01-01T00:00:00.000Z",
    errors: [{ code: 131026, title: "Message undeliverable" }],
  });
});

Deno.test("GET /admin/messages/:wamid answers 404 for an id never seen", async () => {
  await using server = await startStatusServer(TEST_ADMIN_TOKEN);
  const response = await get(server.origin, "/admin/messages/wamid.NEVER_SEEN", AUTH);
  assert.equal(response.status, 404);
  assert.deepEqual(JSON.parse(response.text), {
    error: `Message "wamid.NEVER_SEEN" has no tracked status`,
  });
});

Deno.test("GET /admin/messages/:wamid answers 401 without the token or with a wrong one", async () => {
  await using server = await startStatusServer(TEST_ADMIN_TOKEN);
  await applyStatus(server.store, failedStatus(WAMID), T0);
  const path = `/admin/messages/${encodeURIComponent(WAMID)}`;
  const missing = await get(server.origin, path);
  assert.equal(missing.status, 401);
  assert.equal(missing.headers.get("www-authenticate"), 'Bearer realm="wa-webhook admin"');
  const wrong = await get(server.origin, path, {
    Authorization: "Bearer wrong-admin-token-9876543210",
  });
  assert.equal(wrong.status, 401);
  assert.doesNotMatch(wrong.text, /failed/);
  // A 401 comes before the lookup: an unknown id is not told apart from a known one.
  assert.equal((await get(server.origin, "/admin/messages/wamid.NEVER_SEEN")).status, 401);
});

Deno.test("GET /admin/messages/:wamid answers 400 for a broken percent-encoding", async () => {
  await using server = await startStatusServer(TEST_ADMIN_TOKEN);
  const response = await get(server.origin, "/admin/messages/wamid.%E0%A4%A", AUTH);
  assert.equal(response.status, 400);
});

Deno.test("with no admin token there is no route: 404 even with a bearer token", async () => {
  await using server = await startStatusServer(undefined);
  await applyStatus(server.store, failedStatus(WAMID), T0);
  const response = await get(
    server.origin,
    `/admin/messages/${encodeURIComponent(WAMID)}`,
    AUTH,
  );
  assert.equal(response.status, 404);
  assert.match(JSON.parse(response.text).error, /^No route for/);
});
