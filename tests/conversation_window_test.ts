/**
 * The window checks of the handler context (`dispatch/conversation_window.ts`) alone, over a real
 * Deno KV store: the message being handled counts itself, whether or not the tracker ran.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  assertWindowOpen,
  readWindow,
  WindowClosedError,
  windowOpenerOf,
} from "../src/dispatch/conversation_window.ts";
import type { MessageEvent } from "../src/events/events.ts";
import { firstFixtureEvent, textMessageEvent } from "./fixtures/catalog.ts";
import { kvStore, openTempKv } from "./support.ts";

const DAY_MS = 24 * 3_600_000;

function _fresh(ageMs: number): MessageEvent {
  const event = textMessageEvent("wamid.CW1");
  return { ...event, timestampMs: event.timestampMs - ageMs };
}

Deno.test("readWindow() counts the message being handled, before any tracker stored it", async () => {
  await using temp = await openTempKv();
  const store = kvStore(temp.kv);
  const event = _fresh(0);
  const sender = windowOpenerOf(event)!;
  const now = () => event.timestampMs + 1_000;
  const state = await readWindow(event.phoneNumberId, sender, { store, now, event });
  assert.equal(state.isOpen, true);
  assert.equal(state.closesAt, event.timestampMs + DAY_MS);
  await assertWindowOpen(event.phoneNumberId, sender, { store, now, event });
});

Deno.test("readWindow() does not count the message for another user or another business", async () => {
  await using temp = await openTempKv();
  const store = kvStore(temp.kv);
  const event = _fresh(0);
  const now = () => event.timestampMs;
  const other = await readWindow(event.phoneNumberId, "5511000000000", { store, now, event });
  assert.deepEqual(other, { business: event.phoneNumberId, user: "5511000000000", isOpen: false });
  const sender = windowOpenerOf(event)!;
  await assert.rejects(
    assertWindowOpen("999", sender, { store, now, event }),
    (error) => error instanceof WindowClosedError && error.closedAt === undefined,
  );
});

Deno.test("readWindow() takes the later of the stored window and the message's own", async () => {
  await using temp = await openTempKv();
  const store = kvStore(temp.kv);
  const event = _fresh(2 * DAY_MS); // too old to open a window now by itself
  const sender = windowOpenerOf(event)!;
  const business = event.phoneNumberId;
  const now = () => event.timestampMs + 2 * DAY_MS;
  await assert.rejects(
    assertWindowOpen(business, sender, { store, now, event }),
    WindowClosedError,
  );
  const user = sender.phone!;
  await store.openWindow({ business, user }, { closesAt: now() + 60_000, now: now() });
  const state = await readWindow(business, sender, { store, now, event });
  assert.deepEqual([state.isOpen, state.closesAt], [true, now() + 60_000]);
});

Deno.test("windowOpenerOf() opens nothing for system messages, statuses and echoes", () => {
  assert.equal(
    windowOpenerOf(firstFixtureEvent("message_system_user_changed_number", "message")),
    undefined,
  );
  assert.equal(windowOpenerOf(firstFixtureEvent("status_sent", "status")), undefined);
  assert.equal(windowOpenerOf(firstFixtureEvent("field_smb_message_echoes", "echo")), undefined);
});
