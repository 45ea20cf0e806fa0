/**
 * One run of an event's handlers and what it comes to: each handler not yet done runs in order;
 * failures are collected, and the run ends `done`, `retrying` (after the backoff, or the longest
 * wait a `RetryLaterError` asked for, within the policy's bound), `dead` (out of attempts, or a
 * `PermanentError`), or abandoned (aborted by shutdown with attempts left: its lease runs out and
 * another worker retries it).
 *
 * @module
 */
import type { RecipientIdentity } from "../graph/outbound_message.ts";
import type { Logger } from "../ops/log.ts";
import { withSpan } from "../ops/telemetry.ts";
import type { ClaimedEvent, RunOutcome } from "../store/store.ts";
import type { Dispatcher, HandlerContext, HandlerServices } from "./dispatcher.ts";
import { PermanentError, RetryLaterError } from "./handler_errors.ts";
import { replyOnce } from "./reply.ts";
import {
  assertWindowOpen,
  readWindowFor,
  windowCheckedGraph,
  type WindowDeps,
} from "./conversation_window.ts";
import { retryDelayMs, type RetryPolicy, waitAsked } from "./retry_delay.ts";

/** What {@linkcode runHandlers} needs beside the claim. */
export interface RunContext {
  dispatcher: Dispatcher;
  /** What every handler's context holds beside the event. */
  services: HandlerServices;
  /** A logger bound to the event. */
  log: Logger;
  /** Aborted when the lease is lost or shutdown gives up on the run. */
  signal: AbortSignal;
  retry: RetryPolicy;
  /** Returns a number in [0, 1) for the retry's jitter. */
  random: () => number;
  /** The current time, ms since the epoch. */
  now: () => number;
  /** How long reply records are kept: as long as the event can come back. */
  replyTtlMs: number;
  /** Told after each handler run, for metrics. */
  onHandlerRun?: (handler: string, outcome: "success" | "failure") => void;
}

/**
 * Runs the claim's handlers that have not succeeded yet and returns what the run came to, or
 * `undefined` when the run is abandoned (aborted before its attempts ran out, not by a
 * `PermanentError`): nothing is to be stored, and the lease's end brings the event back.
 */
export async function runHandlers(
  claim: ClaimedEvent,
  context: RunContext,
): Promise<RunOutcome | undefined> {
  const { event } = claim;
  const { log, signal, retry } = context;
  const attempt = claim.record.attempts + 1;
  const startedAt = context.now();
  const completed = new Set(claim.record.completedHandlers);
  const failures: string[] = [];
  const { store, graph } = context.services;
  const windowDeps: WindowDeps = { store, now: context.now, event };
  const checkedGraph = graph === undefined ? undefined : windowCheckedGraph(graph, windowDeps);
  let isPermanent = false; // a handler threw PermanentError: dead-letter without retrying
  let retryAfterMs = 0; // the longest wait a RetryLaterError asked for
  for (const handler of context.dispatcher.handlersFor(event)) {
    if (completed.has(handler.name) || signal.aborted) continue;
    try {
      const handlerLog = log.child({ handler: handler.name });
      const handlerContext: HandlerContext = {
        ...context.services,
        ...(checkedGraph === undefined ? {} : { graph: checkedGraph }),
        event,
        log: handlerLog,
        signal,
        attempt,
        reply: (text, options) => {
          if (event.kind !== "message") {
            throw new PermanentError(`Cannot reply to a ${event.kind} event: only messages`);
          }
          const deps = {
            store,
            graph,
            handler: handler.name,
            log: handlerLog,
            signal,
            replyTtlMs: context.replyTtlMs,
            checkWindow: (to: RecipientIdentity) =>
              assertWindowOpen(event.phoneNumberId, to, windowDeps),
          };
          return replyOnce(event, text, deps, options);
        },
        window: (query = {}) => readWindowFor(query, windowDeps),
      };
      await withSpan("worker.handler", () => handler.handle(handlerContext), {
        attributes: {
          "wa.handler": handler.name,
          "wa.event.id": event.id,
          "wa.event.kind": event.kind,
          "wa.attempt": attempt,
        },
      });
      completed.add(handler.name);
      context.onHandlerRun?.(handler.name, "success");
    } catch (error) {
      context.onHandlerRun?.(handler.name, "failure");
      const message = error instanceof Error ? error.message : String(error);
      failures.push(`${handler.name}: ${message}`);
      if (error instanceof PermanentError) isPermanent = true;
      if (error instanceof RetryLaterError) retryAfterMs = Math.max(retryAfterMs, waitAsked(error));
      log.warn("handler failed", { handler: handler.name, attempt, error });
    }
  }
  const endedAt = context.now();
  const base = { startedAt, endedAt, completedHandlers: [...completed] };
  if (failures.length === 0) return { ...base, state: "done" };
  const error = failures.join("; ");
  const hasAttemptsLeft = attempt < retry.maxAttempts && !isPermanent;
  if (hasAttemptsLeft && signal.aborted) return undefined;
  if (!hasAttemptsLeft) return { ...base, state: "dead", error };
  const delay = retryDelayMs(attempt, retry, { random: context.random, retryAfterMs });
  return { ...base, state: "retrying", error, retryAt: endedAt + delay };
}
