/**
 * One run of an event's handlers and what it comes to (`run_handlers.ts`), alone: no store, no
 * worker; the handlers, a clock and the retry policy are all it sees.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Dispatcher } from "../src/dispatch/dispatcher.ts";
import { PermanentError, RetryLaterError } from "../src/dispatch/handler_errors.ts";
import { type RunContext, runHandlers } from "../src/dispatch/run_handlers.ts";
import { parseDelivery, type WebhookEvent } from "../src/events/events.ts";
import { newRecord } from "../src/store/event_record.ts";
import type { ClaimedEvent, Store } from "../src/store/store.ts";
import { captureLogs } from "./support.ts";
import { messagesDelivery } from "./deliveries.ts";

const T0 = 1_000_000;
const RETRY = { maxAttempts: 3, baseDelayMs: 1_000, maxDelayMs: 60_000 };

function _text(): WebhookEvent {
  const delivery = messagesDelivery({
    messages: [{
      from: "5511999990000",
      id: "wamid.RUN1",
      timestamp: "1767225600",
      type: "text",
      text: { body: "hello" },
    }],
  });
  return parseDelivery(delivery).events[0]!;
}

function _claim(event: WebhookEvent, fields: { attempts?: number; completed?: string[] } = {}) {
  const record = newRecord(event, T0, 3_600_000);
  record.attempts = fields.attempts ?? 0;
  record.completedHandlers = fields.completed ?? [];
  return { record, event, lease: { until: T0 + 15_000 } } satisfies ClaimedEvent;
}

/** A context whose clock moves 5 ms per reading and whose jitter is 0. */
function _context(dispatcher: Dispatcher, signal = new AbortController().signal): RunContext {
  let now = T0;
  return {
    dispatcher,
    services: { store: {} as Store },
    log: captureLogs().logger,
    signal,
    retry: RETRY,
    random: () => 0,
    now: () => (now += 5),
    replyTtlMs: 3_600_000,
  };
}

Deno.test("runHandlers: every handler succeeding makes the run done, with all of them completed", async () => {
  const ran: string[] = [];
  const dispatcher = new Dispatcher()
    .on("message", () => void ran.push("a"), { name: "a" })
    .onMessage("text", () => void ran.push("b"), { name: "b" });
  const outcome = await runHandlers(_claim(_text()), _context(dispatcher));
  assert.deepEqual(ran, ["a", "b"]);
  assert.deepEqual(outcome, {
    state: "done",
    startedAt: T0 + 5,
    endedAt: T0 + 10,
    completedHandlers: ["a", "b"],
  });
});

Deno.test("runHandlers: handlers that succeeded on an earlier attempt do not run again", async () => {
  const ran: string[] = [];
  const dispatcher = new Dispatcher()
    .on("message", () => void ran.push("a"), { name: "a" })
    .on("message", () => void ran.push("b"), { name: "b" });
  const outcome = await runHandlers(_claim(_text(), { attempts: 1, completed: ["a"] }), {
    ..._context(dispatcher),
  });
  assert.deepEqual(ran, ["b"]);
  assert.deepEqual(outcome?.completedHandlers, ["a", "b"]);
});

Deno.test("runHandlers: a failure with attempts left retries after the backoff, naming the handler", async () => {
  const dispatcher = new Dispatcher()
    .on("message", () => {}, { name: "ok" })
    .on("message", () => {
      throw new Error("boom");
    }, { name: "bad" });
  const outcome = await runHandlers(_claim(_text(), { attempts: 1 }), _context(dispatcher));
  // Attempt 2: the backoff's ceiling is 2 s, half of it fixed; jitter 0 gives 1 s.
  assert.deepEqual(outcome, {
    state: "retrying",
    startedAt: T0 + 5,
    endedAt: T0 + 10,
    completedHandlers: ["ok"],
    error: "bad: boom",
    retryAt: T0 + 10 + 1_000,
  });
});

Deno.test("runHandlers: a RetryLaterError waits as long as it asks, within the longest delay", async () => {
  const asking = (ms: number) =>
    new Dispatcher().on("message", () => {
      throw new RetryLaterError("throttled", ms);
    }, { name: "slow" });
  const wait = await runHandlers(_claim(_text()), _context(asking(30_000)));
  assert.equal(wait?.retryAt, T0 + 10 + 30_000);
  const capped = await runHandlers(_claim(_text()), _context(asking(10 * 60_000)));
  assert.equal(capped?.retryAt, T0 + 10 + RETRY.maxDelayMs);
});

Deno.test("runHandlers: a PermanentError dead-letters at once; the last attempt's failure too", async () => {
  const permanent = new Dispatcher().on("message", () => {
    throw new PermanentError("blocked");
  }, { name: "p" });
  const dead = await runHandlers(_claim(_text()), _context(permanent));
  assert.equal(dead?.state, "dead");
  assert.equal(dead?.error, "p: blocked");
  const failing = new Dispatcher().on("message", () => {
    throw new Error("still broken");
  }, { name: "f" });
  const last = await runHandlers(_claim(_text(), { attempts: 2 }), _context(failing));
  assert.equal(last?.state, "dead");
  assert.equal(last?.retryAt, undefined);
});

Deno.test("runHandlers: a run aborted with attempts left is abandoned and stops running handlers", async () => {
  const abort = new AbortController();
  const ran: string[] = [];
  const dispatcher = new Dispatcher()
    .on("message", () => {
      ran.push("first");
      abort.abort(new Error("Shutting down"));
      throw new Error("aborted");
    }, { name: "first" })
    .on("message", () => void ran.push("second"), { name: "second" });
  const outcome = await runHandlers(_claim(_text()), _context(dispatcher, abort.signal));
  assert.equal(outcome, undefined, "nothing to store: the lease brings it back");
  assert.deepEqual(ran, ["first"]);
});

Deno.test("runHandlers: reply on an event that is not a message dead-letters it with the reason", async () => {
  const status = parseDelivery(messagesDelivery({
    statuses: [{
      id: "wamid.OUT1",
      status: "sent",
      timestamp: "1767225600",
      recipient_id: "5511999990000",
    }],
  })).events[0]!;
  const dispatcher = new Dispatcher().on("status", (ctx) => ctx.reply("hi"), { name: "r" });
  const outcome = await runHandlers(_claim(status), _context(dispatcher));
  assert.equal(outcome?.state, "dead");
  assert.match(outcome?.error ?? "", /^r: Cannot reply to a status event/);
});

Deno.test("runHandlers: each handler run is reported with its outcome", async () => {
  const reports: string[] = [];
  const dispatcher = new Dispatcher()
    .on("message", () => {}, { name: "a" })
    .on("message", () => {
      throw new Error("x");
    }, { name: "b" });
  await runHandlers(_claim(_text()), {
    ..._context(dispatcher),
    onHandlerRun: (handler, outcome) => reports.push(`${handler}:${outcome}`),
  });
  assert.deepEqual(reports, ["a:success", "b:failure"]);
});
