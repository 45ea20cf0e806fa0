/**
 * The metrics of the WhatsApp Flows endpoint, on the service's registry: requests by action and
 * outcome, and how long the screen handlers take. Both labels take values from closed sets (the
 * screen is never a label: the business names its screens, without a bound).
 *
 * @module
 */
import type { Counter, Histogram, Registry } from "./metrics.ts";

/** What a Flows request was, as far as it was read; `unknown` before it could be decrypted. */
export type FlowRequestAction =
  | "ping"
  | "INIT"
  | "data_exchange"
  | "BACK"
  | "error_notification"
  | "unknown";

/** What became of one Flows request, and the status Meta saw. */
export type FlowRequestOutcome =
  /** Answered with the encrypted next screen (or `active`, or the acknowledgement): 200. */
  | "answered"
  /** A handler refused the flow token: 427, the client closes the flow. */
  | "invalid_token"
  /** A handler threw, or answered without a screen: 500. */
  | "handler_error"
  /** No handler is registered for the action and screen: 500. */
  | "no_handler"
  /** The request could not be decrypted: 421, the client refreshes the public key and retries. */
  | "undecryptable"
  /** The signature was missing, malformed or wrong: 432. */
  | "rejected_signature"
  /** The body or the decrypted request is not Meta's shape: 400. */
  | "bad_request"
  /** The body passed `MAX_BODY_BYTES`: 413. */
  | "too_large"
  /** The body had not arrived within `BODY_TIMEOUT_MS`: 408. */
  | "timed_out"
  /** The client went away before the whole body arrived. */
  | "aborted"
  /** Shutting down: 503. */
  | "unavailable";

/** Every action label; each series of the counter exists from the start, at 0. */
const FLOW_REQUEST_ACTIONS: readonly FlowRequestAction[] = [
  "ping",
  "INIT",
  "data_exchange",
  "BACK",
  "error_notification",
  "unknown",
];

/**
 * Buckets of a screen handler's duration, in seconds: from a lookup in memory to past the 10 s
 * Meta waits for an answer.
 */
export const FLOW_HANDLER_BUCKETS_SECONDS: readonly number[] = [
  0.001,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/** The Flows endpoint's metrics; `ServiceMetrics.flows` holds the service's. */
export class FlowMetrics {
  /** `wa_webhook_flow_requests_total{action,outcome}` */
  readonly requests: Counter<"action" | "outcome">;
  /** `wa_webhook_flow_handler_seconds{action}`: screen handlers only. */
  readonly handlerDuration: Histogram<"action">;

  /** Declares the metrics on `registry`. */
  constructor(registry: Registry) {
    this.requests = registry.counter({
      name: "wa_webhook_flow_requests_total",
      help: "WhatsApp Flows data exchange requests, by action and outcome.",
      labelNames: ["action", "outcome"],
    });
    for (const action of FLOW_REQUEST_ACTIONS) {
      this.requests.inc({ action, outcome: "answered" }, 0);
    }
    this.handlerDuration = registry.histogram({
      name: "wa_webhook_flow_handler_seconds",
      help: "Duration of WhatsApp Flows screen handlers, by action.",
      labelNames: ["action"],
      buckets: FLOW_HANDLER_BUCKETS_SECONDS,
    });
  }

  /** Counts one request by what it was and what became of it. */
  observeRequest(action: FlowRequestAction, outcome: FlowRequestOutcome): void {
    this.requests.inc({ action, outcome });
  }

  /** Observes one screen handler's run, in milliseconds. */
  observeHandler(action: FlowRequestAction, durationMs: number): void {
    this.handlerDuration.observe({ action }, durationMs / 1_000);
  }
}
