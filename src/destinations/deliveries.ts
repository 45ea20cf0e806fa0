/**
 * Every destination's deliverer, owned together: the app creates them once, intake wakes them
 * after recording, and `main.ts` / `service.ts` start and stop them beside the worker.
 *
 * Destinations declared `paused` get no deliverer: their jobs are recorded and wait.
 *
 * @module
 */
import type { WebhookEvent } from "../events/events.ts";
import type { Clock } from "../ops/clock.ts";
import type { Logger } from "../ops/log.ts";
import type { Store } from "../store/store.ts";
import type { RetryPolicy } from "../dispatch/retry_delay.ts";
import type { Destination } from "./declarations.ts";
import { createDeliverer, type Deliverer, type DelivererObserver } from "./deliverer.ts";
import { destinationsFor } from "./filter.ts";

/** What {@linkcode createDeliveries} needs. */
export interface DeliveriesOptions {
  destinations: readonly Destination[];
  store: Pick<Store, "claimJobs" | "settleJob">;
  clock: Clock;
  logger: Logger;
  retry: RetryPolicy;
  leaseMs: number;
  random?: () => number;
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
  /** Given to every deliverer (metrics). */
  observer?: DelivererObserver;
}

/** The deliverers of every running destination. */
export interface Deliveries {
  /**
   * The names of the destinations `event` goes to, for `Store.recordEvents`; `undefined` when no
   * destination is declared, so recording spends nothing on jobs.
   */
  readonly destinationsFor: ((event: WebhookEvent) => readonly string[]) | undefined;
  /** Starts every deliverer. */
  start(): void;
  /** Tells every deliverer that jobs may be due. */
  wake(): void;
  /** Stops every deliverer, attempts in flight getting `graceMs` to finish. */
  stop(graceMs: number): Promise<void>;
}

/**
 * Creates a deliverer per destination that is not paused (each signer made once).
 *
 * @throws {SigningSecretError} when a destination's secret cannot sign.
 */
export async function createDeliveries(options: DeliveriesOptions): Promise<Deliveries> {
  const { destinations, logger } = options;
  const deliverers: Deliverer[] = [];
  for (const destination of destinations) {
    if (destination.paused) {
      logger.info("destination paused: its deliveries wait", { destination: destination.name });
      continue;
    }
    deliverers.push(await createDeliverer({ ...options, destination }));
  }
  return {
    destinationsFor: destinations.length === 0
      ? undefined
      : (event) => destinationsFor(destinations, event).map((destination) => destination.name),
    start: () => deliverers.forEach((deliverer) => deliverer.start()),
    wake: () => deliverers.forEach((deliverer) => deliverer.wake()),
    stop: async (graceMs) => {
      await Promise.all(deliverers.map((deliverer) => deliverer.stop(graceMs)));
    },
  };
}
