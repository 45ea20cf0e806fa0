/**
 * The caller's handlers run beside the built-in ones, never instead of them: status tracking stays
 * when a dispatcher is passed, the caller's fallback still sees what no other handler takes, and
 * the logging handlers run only where they would write (`LOG_LEVEL=debug`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { Dispatcher } from "../src/dispatch/dispatcher.ts";
import { STATUS_TRACKING_HANDLER } from "../src/handlers/status_tracker.ts";
import { WINDOW_TRACKING_HANDLER } from "../src/handlers/window_tracker.ts";
import { postDelivery, startTestServer, waitFor } from "./support.ts";
import { messagesDelivery, textsDelivery } from "./deliveries.ts";

const STATUS = {
  id: "wamid.OUTBOUND1",
  status: "delivered",
  timestamp: "1767225600",
  recipient_id: "5511999990000",
};

async function _doneHandlers(
  server: Awaited<ReturnType<typeof startTestServer>>,
  id: string,
): Promise<string[]> {
  let handlers: string[] = [];
  await waitFor(async () => {
    const stored = await server.store.getEvent(id);
    handlers = stored?.record.completedHandlers ?? [];
    return stored?.record.state === "done";
  }, `event ${id} done`);
  return handlers;
}

Deno.test("a passed dispatcher adds to the built-in handlers: statuses are still tracked", async () => {
  const seen: string[] = [];
  const dispatcher = new Dispatcher().onMessage("text", ({ event }) => {
    seen.push(event.id);
  }, { name: "mine" });
  await using server = await startTestServer({ dispatcher, env: { LOG_LEVEL: "info" } });
  const text = await postDelivery(server.origin, textsDelivery(["wamid.MINE1"]));
  assert.equal(text.status, 200);
  await text.body?.cancel();
  assert.deepEqual(await _doneHandlers(server, "message:wamid.MINE1"), [
    WINDOW_TRACKING_HANDLER,
    "mine",
  ]);
  assert.deepEqual(seen, ["message:wamid.MINE1"]);

  const status = await postDelivery(
    server.origin,
    JSON.stringify(messagesDelivery({ statuses: [STATUS] })),
  );
  assert.equal(status.status, 200);
  await status.body?.cancel();
  await waitFor(
    async () => (await server.store.getMessageStatus(STATUS.id))?.status === "delivered",
    "the status tracked",
  );
});

Deno.test("the logging handlers run at LOG_LEVEL=debug, beside the caller's, and not at info", async () => {
  for (
    const [level, expected] of [
      ["debug", ["log-message", WINDOW_TRACKING_HANDLER, "mine"]],
      ["info", [WINDOW_TRACKING_HANDLER, "mine"]],
    ] as const
  ) {
    const dispatcher = new Dispatcher().onMessage("text", () => {}, { name: "mine" });
    await using server = await startTestServer({ dispatcher, env: { LOG_LEVEL: level } });
    const id = `wamid.LEVEL${level}`;
    const response = await postDelivery(server.origin, textsDelivery([id]));
    await response.body?.cancel();
    assert.deepEqual(await _doneHandlers(server, `message:${id}`), expected, level);
  }
});

Deno.test("the caller's fallback takes what only passive built-in handlers took", async () => {
  const fallback: string[] = [];
  const dispatcher = new Dispatcher().onUnhandled(({ event }) => {
    fallback.push(event.kind);
  }, { name: "rest" });
  await using server = await startTestServer({ dispatcher, env: { LOG_LEVEL: "debug" } });
  const response = await postDelivery(server.origin, textsDelivery(["wamid.REST1"]));
  await response.body?.cancel();
  assert.deepEqual(await _doneHandlers(server, "message:wamid.REST1"), [
    "log-message",
    WINDOW_TRACKING_HANDLER,
    "rest",
  ]);
  assert.deepEqual(fallback, ["message"]);
  const status = await postDelivery(
    server.origin,
    JSON.stringify(messagesDelivery({ statuses: [{ ...STATUS, id: "wamid.OUTBOUND2" }] })),
  );
  await status.body?.cancel();
  const handlers = await _doneHandlers(server, "status:wamid.OUTBOUND2:delivered:1767225600");
  assert.deepEqual(handlers, ["log-status", STATUS_TRACKING_HANDLER], "status tracking takes it");
  assert.deepEqual(fallback, ["message"]);
});
