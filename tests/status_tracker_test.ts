import assert from "node:assert/strict";
import { ManualClock } from "../src/ops/clock.ts";
import { Dispatcher } from "../src/dispatch/dispatcher.ts";
import type { StatusEvent, WhatsAppError } from "../src/events/events.ts";
import { silentLogger } from "../src/ops/log.ts";
import {
  applyStatus,
  getMessageStatus,
  isFurther,
  registerStatusTracking,
  STATUS_TRACKING_HANDLER,
  type TrackedStatus,
} from "../src/handlers/status_tracker.ts";
import type { Store } from "../src/store/store.ts";
import { kvStore, openTempKv } from "./support.ts";
import { expirationMs } from "./kv_records.ts";

const T0 = Date.UTC(2026, 0, 1);
const WAMID = "wamid.HBgNNTUxMTk5OTk5MDAwMBEGABIYOUT001AA==";
const ERRORS: WhatsAppError[] = [{
  code: 131049,
  title: "This message was not delivered to maintain healthy ecosystem engagement.",
  message: "This message was not delivered to maintain healthy ecosystem engagement.",
  error_data: { details: "In order to maintain a healthy ecosystem engagement, …" },
}];

/** A status event as `parseDelivery` makes it. */
function statusEvent(status: string, options: { wamid?: string; errors?: WhatsAppError[] } = {}) {
  const wamid = options.wamid ?? WAMID;
  const event: StatusEvent = {
    kind: "status",
    id: `status:${wamid}:${status}:1767225600`,
    wabaId: "102290000000001",
    phoneNumberId: "106540000000002",
    timestampMs: 1767225600_000,
    status: {
      id: wamid,
      status,
      timestamp: "1767225600",
      recipient_id: "5511999990000",
      ...(options.errors ? { errors: options.errors } : {}),
    },
  };
  return event;
}

/** Applies `statuses` in order, one second apart; returns what each apply answered. */
async function applyAll(store: Store, statuses: string[]): Promise<boolean[]> {
  const advanced: boolean[] = [];
  for (const [i, status] of statuses.entries()) {
    const errors = status === "failed" ? ERRORS : undefined;
    advanced.push(
      await applyStatus(store, statusEvent(status, errors ? { errors } : {}), T0 + i * 1_000),
    );
  }
  return advanced;
}

const ORDER_CASES: { statuses: string[]; final: TrackedStatus; advanced: boolean[] }[] = [
  { statuses: ["sent", "delivered", "read"], final: "read", advanced: [true, true, true] },
  { statuses: ["delivered", "sent"], final: "delivered", advanced: [true, false] },
  { statuses: ["read", "delivered"], final: "read", advanced: [true, false] },
  { statuses: ["read", "sent", "delivered"], final: "read", advanced: [true, false, false] },
  { statuses: ["sent", "read", "played"], final: "played", advanced: [true, true, true] },
  { statuses: ["played", "read"], final: "played", advanced: [true, false] },
  { statuses: ["sent", "sent"], final: "sent", advanced: [true, false] },
  { statuses: ["failed", "delivered"], final: "failed", advanced: [true, false] },
  { statuses: ["failed", "sent"], final: "failed", advanced: [true, false] },
  { statuses: ["sent", "failed", "read"], final: "failed", advanced: [true, true, false] },
  { statuses: ["read", "failed"], final: "failed", advanced: [true, true] },
];

for (const { statuses, final, advanced } of ORDER_CASES) {
  Deno.test(`applyStatus() keeps the furthest: ${statuses.join(" then ")} -> ${final}`, async () => {
    await using temp = await openTempKv();
    const store = kvStore(temp.kv);
    assert.deepEqual(await applyAll(store, statuses), advanced);
    const stored = await getMessageStatus(store, WAMID);
    assert.equal(stored?.status, final);
    assert.equal(stored?.id, WAMID);
    // `updatedAt` is the time of the last change that advanced it.
    const lastAdvance = advanced.lastIndexOf(true);
    assert.equal(stored?.updatedAt, new Date(T0 + lastAdvance * 1_000).toISOString());
  });
}

Deno.test("a failed message keeps its errors when a late delivered arrives", async () => {
  await using temp = await openTempKv();
  const store = kvStore(temp.kv);
  await applyAll(store, ["sent", "failed", "delivered", "read"]);
  assert.deepEqual(await getMessageStatus(store, WAMID), {
    id: WAMID,
    status: "failed",
    updatedAt: new Date(T0 + 1_000).toISOString(),
    errors: ERRORS,
  });
});

Deno.test("a message that is not failed shows no errors field", async () => {
  await using temp = await openTempKv();
  const store = kvStore(temp.kv);
  await applyAll(store, ["delivered"]);
  assert.deepEqual(Object.keys((await getMessageStatus(store, WAMID)) ?? {}).sort(), [
    "id",
    "status",
    "updatedAt",
  ]);
});

Deno.test("unknown status values are not tracked and do not disturb the record", async () => {
  await using temp = await openTempKv();
  const store = kvStore(temp.kv);
  assert.equal(await applyStatus(store, statusEvent("warning"), T0), false);
  assert.equal(await getMessageStatus(store, WAMID), null);
  await applyAll(store, ["sent"]);
  assert.equal(await applyStatus(store, statusEvent("deleted"), T0 + 5_000), false);
  assert.equal((await getMessageStatus(store, WAMID))?.status, "sent");
});

Deno.test("getMessageStatus() is null for an id never seen", async () => {
  await using temp = await openTempKv();
  const store = kvStore(temp.kv);
  assert.equal(await getMessageStatus(store, "wamid.NEVER"), null);
  assert.equal(await getMessageStatus(store, "x".repeat(5_000)), null);
});

Deno.test("each change sets the record to expire after the retention", async () => {
  await using temp = await openTempKv();
  const store = kvStore(temp.kv);
  const retentionMs = 30 * 24 * 3_600_000;
  const before = Date.now();
  await applyStatus(store, statusEvent("sent"), T0);
  const after = Date.now();
  // Deno KV expiries are wall-clock times, whatever `now` the record was applied at.
  const expiration = expirationMs(temp.path, ["message_status", WAMID]);
  assert.ok(expiration !== null && expiration >= before + retentionMs);
  assert.ok(expiration <= after + retentionMs);

  await applyStatus(store, statusEvent("read"), T0, { retentionMs: 60_000 });
  const renewed = expirationMs(temp.path, ["message_status", WAMID]);
  assert.ok(renewed !== null && renewed <= Date.now() + 60_000);
});

Deno.test("concurrent applies of different statuses keep the furthest", async () => {
  await using temp = await openTempKv();
  const store = kvStore(temp.kv);
  const statuses = ["sent", "delivered", "read", "played"];
  for (let round = 0; round < 10; round++) {
    const wamid = `wamid.CONCURRENT${round}`;
    // A different arrival order each round: rotate the list.
    const order = [...statuses.slice(round % 4), ...statuses.slice(0, round % 4)];
    const results = await Promise.all(
      order.map((status) => applyStatus(store, statusEvent(status, { wamid }), T0)),
    );
    assert.ok(results.includes(true));
    assert.equal((await getMessageStatus(store, wamid))?.status, "played", `round ${round}`);
  }
});

Deno.test("concurrent applies from two KV handles (two processes) keep the furthest", async () => {
  await using temp = await openTempKv();
  const store = kvStore(temp.kv);
  using otherKv = await Deno.openKv(temp.path);
  const other = kvStore(otherKv);
  const wamid = "wamid.TWO_PROCESSES";
  await Promise.all([
    applyStatus(store, statusEvent("sent", { wamid }), T0),
    applyStatus(other, statusEvent("read", { wamid }), T0),
    applyStatus(store, statusEvent("delivered", { wamid }), T0),
    applyStatus(other, statusEvent("sent", { wamid }), T0),
  ]);
  assert.equal((await getMessageStatus(store, wamid))?.status, "read");

  const failing = "wamid.TWO_PROCESSES_FAILED";
  await Promise.all([
    applyStatus(store, statusEvent("delivered", { wamid: failing }), T0),
    applyStatus(other, statusEvent("failed", { wamid: failing, errors: ERRORS }), T0),
    applyStatus(store, statusEvent("read", { wamid: failing }), T0),
  ]);
  const stored = await getMessageStatus(store, failing);
  assert.equal(stored?.status, "failed");
  assert.deepEqual(stored?.errors, ERRORS);
});

Deno.test("isFurther(): the order sent < delivered < read < played, failed terminal", () => {
  assert.ok(isFurther("sent", "delivered"));
  assert.ok(isFurther("delivered", "played"));
  assert.ok(!isFurther("read", "read"));
  assert.ok(!isFurther("read", "delivered"));
  assert.ok(isFurther("played", "failed"));
  assert.ok(!isFurther("failed", "failed"));
  assert.ok(!isFurther("failed", "played"));
});

Deno.test(`registerStatusTracking() adds the "${STATUS_TRACKING_HANDLER}" status handler`, async () => {
  await using temp = await openTempKv();
  const store = kvStore(temp.kv);
  const clock = new ManualClock(T0);
  const dispatcher = registerStatusTracking(new Dispatcher(), { clock, retentionMs: 60_000 });
  const event = statusEvent("delivered");
  const handlers = dispatcher.handlersFor(event);
  assert.deepEqual(handlers.map((handler) => handler.name), [STATUS_TRACKING_HANDLER]);
  await handlers[0]!.handle({
    store,
    event,
    log: silentLogger,
    signal: new AbortController().signal,
    attempt: 1,
    reply: () => Promise.reject(new Error("status tracking never replies")),
    window: () => Promise.reject(new Error("status tracking never reads the window")),
  });
  assert.deepEqual(await getMessageStatus(store, WAMID), {
    id: WAMID,
    status: "delivered",
    updatedAt: new Date(T0).toISOString(),
  });
});
