/**
 * The service's metrics, declared once with stable `wa_webhook_` names, and the small observers
 * the pipeline calls: intake (deliveries by outcome, acknowledgement latency, signature failures,
 * events, duplicates, schema drift), the worker (handler runs, retries, dead letters), the
 * Graph API client (calls by outcome and error code), and, on the same registry, the deliverers of
 * HTTP destinations (`destination_metrics.ts`) and the Flows endpoint (`flow_metrics.ts`).
 *
 * Gauges that describe state rather than count things (ready-queue depth, age of the oldest ready
 * event, seconds since the last delivery) are filled by {@linkcode ServiceMetrics.collect} at
 * scrape time. Every label takes values from a closed set (outcomes, kinds, known status values,
 * handler names, Meta's error codes, destination names: at most 32 are declared), or from a
 * payload through a {@linkcode BoundedLabelValues} (message types Meta sends that this service
 * does not know), so the number of series stays bounded.
 *
 * @module
 */
import { type Clock, systemClock } from "./clock.ts";
import type { WebhookEvent } from "../events/events.ts";
import { CHANGE_VALUE_SCHEMAS } from "../events/field_schemas.ts";
import { MESSAGE_SCHEMAS } from "../events/message_schemas.ts";
import { KNOWN_STATUS_VALUES } from "../events/status_schemas.ts";
import type { GraphCallOutcome } from "../graph/client.ts";
import {
  BoundedLabelValues,
  type Counter,
  type Gauge,
  type Histogram,
  Registry,
} from "./metrics.ts";
import type { Store } from "../store/store.ts";
import { DestinationMetrics } from "./destination_metrics.ts";
import { DeliveryRate } from "./delivery_rate.ts";
import { FlowMetrics } from "./flow_metrics.ts";
import { AlertMetrics } from "./alert_metrics.ts";

/**
 * Waiting groups of events the queue gauges read per scrape at most. Counting reads each one, so
 * the bound keeps a scrape under a second on a large backlog; a depth at the bound means "at least
 * this many".
 */
export const READY_SCAN_LIMIT = 100_000;
import type { SignatureFailure } from "../webhook/signature.ts";

/** What became of one `POST /webhook/whatsapp`. */
export type DeliveryOutcome =
  /** Verified, parsed and recorded, with at least one new event: acknowledged with 200. */
  | "accepted"
  /** Verified and parsed, but every event had been recorded before (Meta's retry): 200. */
  | "duplicate_only"
  /** The signature was missing, malformed or wrong: 401. */
  | "rejected_signature"
  /** The body passed `MAX_BODY_BYTES`: 413. */
  | "too_large"
  /** The verified body was not UTF-8 JSON: 400. */
  | "bad_json"
  /** The body had not arrived within `BODY_TIMEOUT_MS`: 408, connection closed. */
  | "timed_out"
  /** The client closed the connection before sending the whole body: nobody to answer. */
  | "aborted"
  /** The events could not be recorded, or the service was shutting down: 503, Meta retries. */
  | "unavailable";

/** Every {@linkcode DeliveryOutcome}; each series exists from the start, at 0. */
export const DELIVERY_OUTCOMES: readonly DeliveryOutcome[] = [
  "accepted",
  "duplicate_only",
  "rejected_signature",
  "too_large",
  "bad_json",
  "timed_out",
  "aborted",
  "unavailable",
];

/** Every {@linkcode SignatureFailure}; each series exists from the start, at 0. */
export const SIGNATURE_FAILURES: readonly SignatureFailure[] = ["missing", "malformed", "mismatch"];

/**
 * Buckets of the intake acknowledgement latency, in seconds: from 1 ms (a warm commit) to 5 s
 * (well past what a healthy store takes; Meta waits longer, but a slow acknowledgement is the early
 * sign of a store in trouble).
 */
export const ACK_LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.001,
  0.0025,
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
];

/** Buckets of a Graph API call's duration, in seconds, up to past the default 10 s timeout. */
export const GRAPH_CALL_BUCKETS_SECONDS: readonly number[] = [
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
];

/**
 * Message types not known to this service kept as their own `type` label of
 * `wa_webhook_events_total`, the first ones seen; later ones count as `other`. Meta adds a type
 * or two a year, so this is room for years, and a sender cannot grow the scrape past it.
 */
export const MAX_UNKNOWN_MESSAGE_TYPE_LABELS = 20;

/**
 * Values of each label of `wa_webhook_schema_drift_total` besides the known fields and types;
 * drift is only found in parts of a known type, so this is a guard, never reached in practice.
 */
const MAX_OTHER_DRIFT_LABELS = 20;

/** The types of a drift that are not message types. */
const DRIFT_PART_TYPES = ["status", "contact", "value"];

/** Options for {@linkcode createServiceMetrics}. */
export interface ServiceMetricsOptions {
  /**
   * Gives the start time, from which "seconds since the last delivery" counts until the first
   * delivery arrives; defaults to the system clock.
   */
  clock?: Clock;
  /** Defaults to {@linkcode READY_SCAN_LIMIT}; lower in tests. */
  readyScanLimit?: number;
}

/** The outcome of recording one delivery's events, as the inbox reports it. */
export interface RecordedDelivery {
  /** Ids of the events recorded now. */
  recorded: readonly string[];
  /** Ids of the events that had been recorded before. */
  duplicates: readonly string[];
}

/** The acknowledgement latency's figures, from {@linkcode ServiceMetrics.ackLatency}. */
export interface AckLatency {
  /** Deliveries acknowledged (200) since the start. */
  count: number;
  /** The upper bound of the bucket holding the median, in seconds. */
  p50Seconds: number;
  /** The upper bound of the bucket holding the 99th percentile, in seconds. */
  p99Seconds: number;
}

/** Creates the service's metrics on a new registry. */
export function createServiceMetrics(options: ServiceMetricsOptions = {}): ServiceMetrics {
  return new ServiceMetrics(options);
}

/** The service's metrics and their observers; see {@linkcode createServiceMetrics}. */
export class ServiceMetrics {
  /** The registry all of them are declared on; render it for `GET /metrics`. */
  readonly registry: Registry = new Registry();
  /** `wa_webhook_deliveries_total{outcome}` */
  readonly deliveries: Counter<"outcome">;
  /** `wa_webhook_signature_failures_total{reason}` */
  readonly signatureFailures: Counter<"reason">;
  /** `wa_webhook_intake_ack_duration_seconds`, for acknowledged (200) deliveries only. */
  readonly intakeAck: Histogram;
  /** `wa_webhook_events_total{kind,type}`, new events only. */
  readonly events: Counter<"kind" | "type">;
  /** `wa_webhook_duplicate_events_total` */
  readonly duplicates: Counter;
  /** `wa_webhook_schema_drift_total{field,type}` */
  readonly schemaDrift: Counter<"field" | "type">;
  /** `wa_webhook_handler_runs_total{handler,outcome}` */
  readonly handlerRuns: Counter<"handler" | "outcome">;
  /** `wa_webhook_event_retries_total` */
  readonly retries: Counter;
  /** `wa_webhook_dead_letters_total` */
  readonly deadLetters: Counter;
  /** `wa_webhook_ready_queue_depth{due}`, filled by {@linkcode collect}. */
  readonly readyQueueDepth: Gauge<"due">;
  /** `wa_webhook_ready_queue_oldest_age_seconds`, filled by {@linkcode collect}. */
  readonly readyQueueOldestAge: Gauge;
  /** `wa_webhook_graph_calls_total{outcome,code}` */
  readonly graphCalls: Counter<"outcome" | "code">;
  /** `wa_webhook_graph_call_duration_seconds{outcome}` */
  readonly graphCallDuration: Histogram<"outcome">;
  /** `wa_webhook_seconds_since_last_delivery`, filled by {@linkcode collect}. */
  readonly secondsSinceLastDelivery: Gauge;
  /** `wa_webhook_delivery_silence`: 1 while no delivery has arrived for the silence threshold. */
  readonly deliverySilence: Gauge;
  /** The metrics of the HTTP destinations (`destination_metrics.ts`). */
  readonly destinations: DestinationMetrics;
  /** The metrics of the WhatsApp Flows endpoint (`flow_metrics.ts`). */
  readonly flows: FlowMetrics;
  /** The metric of WhatsApp alerts (`alert_metrics.ts`). */
  readonly alerts: AlertMetrics;
  /** Deliveries recorded per minute in this process, for the console's chart (`delivery_rate.ts`). */
  readonly deliveryRate: DeliveryRate = new DeliveryRate();

  #startedAt: number;
  #lastDeliveryAt: number | undefined;
  #unknownMessageTypes = new BoundedLabelValues({
    known: Object.keys(MESSAGE_SCHEMAS),
    maxDistinct: MAX_UNKNOWN_MESSAGE_TYPE_LABELS,
  });
  #driftFields = new BoundedLabelValues({
    known: ["messages", ...Object.keys(CHANGE_VALUE_SCHEMAS)],
    maxDistinct: MAX_OTHER_DRIFT_LABELS,
  });
  #driftTypes = new BoundedLabelValues({
    known: [...Object.keys(MESSAGE_SCHEMAS), ...DRIFT_PART_TYPES],
    maxDistinct: MAX_OTHER_DRIFT_LABELS,
  });
  #readyScanLimit: number;

  /** Prefer {@linkcode createServiceMetrics}. */
  constructor(options: ServiceMetricsOptions = {}) {
    const registry = this.registry;
    this.#startedAt = (options.clock ?? systemClock).now();
    this.#readyScanLimit = options.readyScanLimit ?? READY_SCAN_LIMIT;
    this.destinations = new DestinationMetrics(registry, this.#readyScanLimit);
    this.flows = new FlowMetrics(registry);
    this.alerts = new AlertMetrics(registry);

    this.deliveries = registry.counter({
      name: "wa_webhook_deliveries_total",
      help: "Deliveries posted to the webhook, by outcome.",
      labelNames: ["outcome"],
    });
    for (const outcome of DELIVERY_OUTCOMES) this.deliveries.inc({ outcome }, 0);
    this.signatureFailures = registry.counter({
      name: "wa_webhook_signature_failures_total",
      help: "Deliveries refused for their X-Hub-Signature-256, by reason.",
      labelNames: ["reason"],
    });
    for (const reason of SIGNATURE_FAILURES) this.signatureFailures.inc({ reason }, 0);
    this.intakeAck = registry.histogram({
      name: "wa_webhook_intake_ack_duration_seconds",
      help: "Time from receiving a delivery to acknowledging it with 200.",
      buckets: ACK_LATENCY_BUCKETS_SECONDS,
    });
    this.events = registry.counter({
      name: "wa_webhook_events_total",
      help: "New events recorded, by kind and type (message type, status value or change field).",
      labelNames: ["kind", "type"],
    });
    this.duplicates = registry.counter({
      name: "wa_webhook_duplicate_events_total",
      help: "Events skipped because they had been recorded before (Meta's retries).",
    });
    this.schemaDrift = registry.counter({
      name: "wa_webhook_schema_drift_total",
      help: "Parts of deliveries that failed their schema, by webhook field and type.",
      labelNames: ["field", "type"],
    });
    this.handlerRuns = registry.counter({
      name: "wa_webhook_handler_runs_total",
      help: "Handler runs, by handler and outcome (success or failure).",
      labelNames: ["handler", "outcome"],
    });
    this.retries = registry.counter({
      name: "wa_webhook_event_retries_total",
      help: "Events scheduled for another attempt after a handler failed.",
    });
    this.deadLetters = registry.counter({
      name: "wa_webhook_dead_letters_total",
      help: "Events given up on (dead-lettered) after their last attempt or a permanent error.",
    });
    this.readyQueueDepth = registry.gauge({
      name: "wa_webhook_ready_queue_depth",
      help: "Events in the ready set, due now (backlog) or later (leases, retries); " +
        `counted in up to ${this.#readyScanLimit} groups.`,
      labelNames: ["due"],
    });
    this.readyQueueOldestAge = registry.gauge({
      name: "wa_webhook_ready_queue_oldest_age_seconds",
      help: "How long the oldest due entry of the ready set has waited; 0 when none is due.",
    });
    this.graphCalls = registry.counter({
      name: "wa_webhook_graph_calls_total",
      help: "Graph API HTTP attempts, by outcome (ok or error category) and Meta error code.",
      labelNames: ["outcome", "code"],
    });
    this.graphCallDuration = registry.histogram({
      name: "wa_webhook_graph_call_duration_seconds",
      help: "Duration of Graph API HTTP attempts, by outcome.",
      labelNames: ["outcome"],
      buckets: GRAPH_CALL_BUCKETS_SECONDS,
    });
    this.secondsSinceLastDelivery = registry.gauge({
      name: "wa_webhook_seconds_since_last_delivery",
      help: "Seconds since the last accepted delivery (since the start while none has arrived).",
    });
    this.deliverySilence = registry.gauge({
      name: "wa_webhook_delivery_silence",
      help: "1 while no delivery has arrived for longer than SILENCE_AFTER_MS, else 0.",
    });
  }

  /**
   * Counts a delivery whose events are recorded (`accepted`, or `duplicate_only` when none was
   * new), its new events by kind and type, and its duplicates; remembers `now` as the time of the
   * last delivery. A message of a type this service does not know is counted under the type Meta
   * sent, within {@linkcode MAX_UNKNOWN_MESSAGE_TYPE_LABELS} (see {@linkcode BoundedLabelValues}).
   */
  observeRecorded(events: readonly WebhookEvent[], outcome: RecordedDelivery, now: number): void {
    const recorded = new Set(outcome.recorded);
    this.deliveries.inc({ outcome: recorded.size > 0 ? "accepted" : "duplicate_only" });
    for (const event of events) {
      if (recorded.has(event.id)) this.events.inc({ kind: event.kind, type: this.#typeOf(event) });
    }
    if (outcome.duplicates.length > 0) this.duplicates.inc({}, outcome.duplicates.length);
    this.#lastDeliveryAt = now;
    this.deliveryRate.record(now);
  }

  /** Counts a delivery by outcome, for outcomes decided outside the intake handler (shutdown). */
  observeDelivery(outcome: DeliveryOutcome): void {
    this.deliveries.inc({ outcome });
  }

  /** Counts a signature failure by reason. */
  observeSignatureFailure(reason: SignatureFailure): void {
    this.signatureFailures.inc({ reason });
  }

  /**
   * Counts schema drift by field and type, `count` problems (default 1); use as intake's
   * `onDrift`. Field and type are known names; any other becomes a bounded label value.
   */
  observeDrift(drift: { field: string; type: string; count?: number }): void {
    this.schemaDrift.inc({
      field: this.#driftFields.valueOf(drift.field),
      type: this.#driftTypes.valueOf(drift.type),
    }, drift.count ?? 1);
  }

  /** Counts one run of one handler. */
  observeHandlerRun(handler: string, outcome: "success" | "failure"): void {
    this.handlerRuns.inc({ handler, outcome });
  }

  /** Counts how a run of an event's handlers ended: `retrying` and `dead` are counted. */
  observeSettled(state: "done" | "retrying" | "dead"): void {
    if (state === "retrying") this.retries.inc();
    if (state === "dead") this.deadLetters.inc();
  }

  /** Counts one Graph API HTTP attempt (use as the client's `onCall`). */
  observeGraphCall(call: GraphCallOutcome): void {
    const code = call.code === undefined ? "none" : String(call.code);
    this.graphCalls.inc({ outcome: call.outcome, code });
    this.graphCallDuration.observe({ outcome: call.outcome }, call.durationMs / 1_000);
  }

  /** The `type` label of a new event: {@linkcode eventTypeOf}, or an unknown message's own type. */
  #typeOf(event: WebhookEvent): string {
    if (event.kind === "message" && event.message.type === "unknown") {
      const { originalType } = event.message;
      if (originalType !== undefined) return this.#unknownMessageTypes.valueOf(originalType);
    }
    return eventTypeOf(event);
  }

  /**
   * The acknowledgement latency since the start, read from `wa_webhook_intake_ack_duration_seconds`
   * (read-only): deliveries acknowledged, and the upper bound of the bucket holding the p50 and the
   * p99 (`Infinity` past the last bucket, `NaN` before the first delivery).
   */
  ackLatency(): AckLatency {
    const cumulative = [...this.intakeAck.render().matchAll(/_bucket\{le="[^"]+"\} (\d+)/g)]
      .map((match) => Number(match[1]));
    const count = cumulative.at(-1) ?? 0;
    const bound = (q: number): number => {
      if (count === 0) return NaN;
      const index = cumulative.findIndex((n) => n >= Math.ceil(count * q));
      return this.intakeAck.buckets[index] ?? Infinity;
    };
    return { count, p50Seconds: bound(0.5), p99Seconds: bound(0.99) };
  }

  /** When the last accepted delivery was recorded, ms since the epoch; `undefined` before one. */
  lastDeliveryAt(): number | undefined {
    return this.#lastDeliveryAt;
  }

  /**
   * Fills the scrape-time gauges: seconds since the last delivery, the ready-queue depth (events
   * due by `now` and later, reading at most `readyScanLimit` waiting groups of the store) and the
   * age of the oldest due event; then runs the registry's collectors. Never throws: errors are
   * returned for the caller to log, and the queue gauges read `NaN` when the store failed.
   */
  async collect(store: Pick<Store, "queueFigures">, now: number): Promise<unknown[]> {
    const errors: unknown[] = [];
    const since = this.#lastDeliveryAt ?? this.#startedAt;
    this.secondsSinceLastDelivery.set({}, Math.max(0, now - since) / 1_000);
    try {
      const queue = await store.queueFigures(now, this.#readyScanLimit);
      this.readyQueueDepth.set({ due: "now" }, queue.due);
      this.readyQueueDepth.set({ due: "later" }, queue.later);
      this.readyQueueOldestAge.set({}, queue.oldestDueAgeMs / 1_000);
    } catch (error) {
      this.readyQueueDepth.set({ due: "now" }, NaN);
      this.readyQueueDepth.set({ due: "later" }, NaN);
      this.readyQueueOldestAge.set({}, NaN);
      errors.push(error);
    }
    errors.push(...await this.registry.collect());
    return errors;
  }
}

/**
 * The `type` label of an event: the message type (`text`, …, `unknown`), the status value (one of
 * the known ones, else `other`), the change's field (`unknown` for fields not known), or
 * `unknown` for an unknown event; an echo's field (`smb_message_echoes`).
 */
export function eventTypeOf(event: WebhookEvent): string {
  switch (event.kind) {
    case "message":
      return event.message.type;
    case "status":
      return (KNOWN_STATUS_VALUES as readonly string[]).includes(event.status.status)
        ? event.status.status
        : "other";
    case "change":
    case "echo":
      return event.field;
    case "unknown":
      return "unknown";
  }
}
