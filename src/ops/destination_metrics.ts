/**
 * The metrics of the HTTP destinations, on the service's registry: attempts by outcome, settled
 * jobs, attempt durations, delivery lag and circuit state as the deliverers report them (through
 * {@linkcode DestinationMetrics.observer}), and each destination's backlog read from the store at
 * scrape time. Labels are declared destination names: at most 32.
 *
 * @module
 */
import type { CircuitState } from "../destinations/circuit.ts";
import type { DelivererObserver } from "../destinations/deliverer.ts";
import type { Store } from "../store/store.ts";
import type { Clock } from "./clock.ts";
import type { Counter, Gauge, Histogram, Registry } from "./metrics.ts";

/**
 * Buckets of a destination attempt's duration, in seconds, up to the longest destination
 * `timeoutMs` (60 s).
 */
export const DESTINATION_ATTEMPT_BUCKETS_SECONDS: readonly number[] = [
  0.01,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
];

/**
 * Buckets of a destination's delivery lag (reception to delivered), in seconds: from a delivery
 * right away to a day of retries and outages.
 */
export const DESTINATION_LAG_BUCKETS_SECONDS: readonly number[] = [
  0.1,
  0.5,
  1,
  5,
  30,
  60,
  300,
  900,
  3_600,
  21_600,
  86_400,
];

/** Every attempt outcome of a destination; each series exists from the start, at 0. */
const DESTINATION_ATTEMPT_OUTCOMES = ["delivered", "retry", "rejected", "gone"] as const;

/** Every state a destination's job settles in; each series exists from the start, at 0. */
const DESTINATION_SETTLED_STATES = ["delivered", "retrying", "dead"] as const;

/** `wa_webhook_destination_circuit_state`'s value of each circuit state. */
export const CIRCUIT_STATE_VALUES: Readonly<Record<CircuitState, number>> = {
  closed: 0,
  half_open: 1,
  open: 2,
};

/** The destinations' metrics; `ServiceMetrics.destinations` holds the service's. */
export class DestinationMetrics {
  /** `wa_webhook_destination_attempts_total{destination,outcome}` */
  readonly attempts: Counter<"destination" | "outcome">;
  /** `wa_webhook_destination_jobs_settled_total{destination,state}` */
  readonly settled: Counter<"destination" | "state">;
  /** `wa_webhook_destination_attempt_seconds{destination}` */
  readonly attemptDuration: Histogram<"destination">;
  /** `wa_webhook_destination_delivery_lag_seconds{destination}` */
  readonly lag: Histogram<"destination">;
  /** `wa_webhook_destination_backlog{destination,due}`, filled at scrape time. */
  readonly backlog: Gauge<"destination" | "due">;
  /** `wa_webhook_destination_oldest_due_age_seconds{destination}`, filled at scrape time. */
  readonly oldestDueAge: Gauge<"destination">;
  /** `wa_webhook_destination_circuit_state{destination}`: 0 closed, 1 half open, 2 open. */
  readonly circuit: Gauge<"destination">;

  #registry: Registry;
  #scanLimit: number;

  /** Declares the metrics on `registry`; a scrape reads at most `scanLimit` jobs a destination. */
  constructor(registry: Registry, scanLimit: number) {
    this.#registry = registry;
    this.#scanLimit = scanLimit;
    this.attempts = registry.counter({
      name: "wa_webhook_destination_attempts_total",
      help: "Delivery attempts to HTTP destinations, by destination and outcome.",
      labelNames: ["destination", "outcome"],
    });
    this.settled = registry.counter({
      name: "wa_webhook_destination_jobs_settled_total",
      help: "Delivery jobs settled after an attempt, by destination and state.",
      labelNames: ["destination", "state"],
    });
    this.attemptDuration = registry.histogram({
      name: "wa_webhook_destination_attempt_seconds",
      help: "Duration of delivery attempts to HTTP destinations, by destination.",
      labelNames: ["destination"],
      buckets: DESTINATION_ATTEMPT_BUCKETS_SECONDS,
    });
    this.lag = registry.histogram({
      name: "wa_webhook_destination_delivery_lag_seconds",
      help: "Time from an event's reception to its delivery to a destination, by destination.",
      labelNames: ["destination"],
      buckets: DESTINATION_LAG_BUCKETS_SECONDS,
    });
    this.backlog = registry.gauge({
      name: "wa_webhook_destination_backlog",
      help: "A destination's waiting jobs, due now (backlog) or later (leases, retries); " +
        `counted in up to ${this.#scanLimit} jobs.`,
      labelNames: ["destination", "due"],
    });
    this.oldestDueAge = registry.gauge({
      name: "wa_webhook_destination_oldest_due_age_seconds",
      help: "How long a destination's oldest due job has waited; 0 when none is due.",
      labelNames: ["destination"],
    });
    this.circuit = registry.gauge({
      name: "wa_webhook_destination_circuit_state",
      help: "A destination's circuit: 0 closed, 1 half open (a probe out), 2 open.",
      labelNames: ["destination"],
    });
  }

  /**
   * Makes every series of the `destinations` (their declared names, at most 32) visible at 0, and
   * adds a collector filling their backlog gauges from `store` at scrape time (at most
   * the scan limit of jobs read per destination; `NaN` when the store failed, the error thrown).
   */
  watch(
    destinations: readonly string[],
    store: Pick<Store, "jobFigures">,
    clock: Clock,
  ): void {
    for (const destination of destinations) {
      for (const outcome of DESTINATION_ATTEMPT_OUTCOMES) {
        this.attempts.inc({ destination, outcome }, 0);
      }
      for (const state of DESTINATION_SETTLED_STATES) {
        this.settled.inc({ destination, state }, 0);
      }
      this.circuit.set({ destination }, CIRCUIT_STATE_VALUES.closed);
    }
    if (destinations.length === 0) return;
    this.#registry.addCollector(async () => {
      const errors: unknown[] = [];
      const now = clock.now();
      for (const destination of destinations) {
        try {
          const figures = await store.jobFigures(destination, { now, limit: this.#scanLimit });
          this.backlog.set({ destination, due: "now" }, figures.due);
          this.backlog.set({ destination, due: "later" }, figures.later);
          this.oldestDueAge.set({ destination }, figures.oldestDueAgeMs / 1_000);
        } catch (error) {
          this.backlog.set({ destination, due: "now" }, NaN);
          this.backlog.set({ destination, due: "later" }, NaN);
          this.oldestDueAge.set({ destination }, NaN);
          errors.push(error);
        }
      }
      if (errors.length > 0) throw errors[0];
    });
  }

  /** The observer the deliverers call: attempts, settled jobs, and circuit changes. */
  observer(): DelivererObserver {
    return {
      onAttempt: ({ destination, outcome, durationMs }) => {
        this.attempts.inc({ destination, outcome });
        this.attemptDuration.observe({ destination }, durationMs / 1_000);
      },
      onSettled: ({ destination, state, lagMs }) => {
        this.settled.inc({ destination, state });
        if (lagMs !== undefined) this.lag.observe({ destination }, lagMs / 1_000);
      },
      onCircuit: ({ destination, state }) => {
        this.circuit.set({ destination }, CIRCUIT_STATE_VALUES[state]);
      },
    };
  }
}
