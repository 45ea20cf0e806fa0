import assert from "node:assert/strict";
import { parseExposition, valueOf } from "./prometheus_text.ts";
import { postDelivery, startTestServer, TEST_ADMIN_TOKEN, waitFor } from "./support.ts";

const AUTH = { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
const WAMID = "wamid.HBgNNTUxMTk5OTk5MDAwMBEGABIYOUT012AA==";

Deno.test("the wired app: out-of-order statuses tracked, metrics scraped, readyz ready", async () => {
  await using server = await startTestServer();
  const body = await Deno.readFile(
    new URL("./fixtures/out_of_order_statuses.json", import.meta.url),
  );
  assert.equal((await postDelivery(server.origin, body)).status, 200);
  assert.equal((await postDelivery(server.origin, body)).status, 200); // Meta's retry
  assert.equal((await postDelivery(server.origin, body, { signature: null })).status, 401);

  const path = `/admin/messages/${encodeURIComponent(WAMID)}`;
  await waitFor(async () => {
    const response = await fetch(`${server.origin}${path}`, { headers: AUTH });
    const json = response.ok ? await response.json() : (await response.body?.cancel(), null);
    return json?.status === "read";
  }, "status read");
  const unknown = await fetch(`${server.origin}/admin/messages/wamid.NONE`, { headers: AUTH });
  assert.equal(unknown.status, 404);
  await unknown.body?.cancel();

  await waitFor(async () => {
    const text = await (await fetch(`${server.origin}/metrics`, { headers: AUTH })).text();
    const x = parseExposition(text);
    return valueOf(x, "wa_webhook_handler_runs_total", {
      handler: "status-tracking",
      outcome: "success",
    }) === 3;
  }, "three status-tracking runs");
  const x = parseExposition(
    await (await fetch(`${server.origin}/metrics`, { headers: AUTH })).text(),
  );
  assert.equal(valueOf(x, "wa_webhook_deliveries_total", { outcome: "accepted" }), 1);
  assert.equal(valueOf(x, "wa_webhook_deliveries_total", { outcome: "duplicate_only" }), 1);
  assert.equal(valueOf(x, "wa_webhook_deliveries_total", { outcome: "rejected_signature" }), 1);
  assert.equal(valueOf(x, "wa_webhook_signature_failures_total", { reason: "missing" }), 1);
  assert.equal(valueOf(x, "wa_webhook_events_total", { kind: "status", type: "delivered" }), 1);
  assert.equal(valueOf(x, "wa_webhook_duplicate_events_total"), 3);
  assert.equal(valueOf(x, "wa_webhook_intake_ack_duration_seconds_count"), 2);

  const ready = await fetch(`${server.origin}/readyz`);
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { status: "ready" });
  assert.equal((await fetch(`${server.origin}/metrics`)).status, 401);
});
