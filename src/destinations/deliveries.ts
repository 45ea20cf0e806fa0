/**
 * Every destination's deliverer, owned together: the app creates them once, intake wakes them
 * after recording, and `main.ts` / `service.ts` start and stop them beside the worker.
 *
 * A paused destination (declared so, paused by an operator, or by a 410: `pauses.ts`) keeps its
 * deliverer, which claims nothing while the pause lasts: its jobs are recorded and wait.
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
import { createPauses, type Pauses } from "./pauses.ts";
import type { CircuitState } from "./circuit.ts";
import type { DeliveryHttp } from "./transport.ts";

/** What {@linkcode createDeliveries} needs. */
export interface DeliveriesOptions {
  destinations: readonly Destination[];
  store: Pick<
    Store,
    | "claimJobs"
    | "extendJobLease"
    | "settleJob"
    | "pauseDestination"
    | "resumeDestination"
    | "listPausedDestinations"
  >;
  clock: Clock;
  logger: Logger;
  retry: RetryPolicy;
  leaseMs: number;
  random?: () => number;
  /** How requests travel: the built-in HTTP/1.1 client, or `fetch` (default; `transport.ts`). */
  http?: DeliveryHttp;
  /** The `fetch` requests go through; defaults to the global one. Given, `http` is ignored. */
  fetch?: typeof fetch;
  /** Given to every deliverer (metrics). */
  observer?: DelivererObserver;
  /** How often run-time pauses are read again (`pauses.ts`'s default when absent). */
  pauseRefreshMs?: number;
}

/** The deliverers of every running destination. */
export interface Deliveries {
  /**
   * The names of the destinations `event` goes to, for `Store.recordEvents`; `undefined` when no
   * destination is declared, so recording spends nothing on jobs.
   */
  readonly destinationsFor: ((event: WebhookEvent) => readonly string[]) | undefined;
  /** Which destinations are paused; pausing or resuming through it wakes the deliverers. */
  readonly pauses: Pauses;
  /** The circuit of `destination`'s deliverer in this process; `undefined` when not declared. */
  circuitOf(destination: string): CircuitState | undefined;
  /** Starts every deliverer. */
  start(): void;
  /** Tells every deliverer that jobs may be due. */
  wake(): void;
  /** Stops every deliverer, attempts in flight getting `graceMs` to finish. */
  stop(graceMs: number): Promise<void>;
}

/**
 * Creates a deliverer per destination (each signer made once).
 *
 * @throws {SigningSecretError} when a destination's secret cannot sign.
 */
export function createDeliveries(options: DeliveriesOptions): Deliveries {
  const { destinations } = options;
  const pauses = createPauses({
    destinations,
    store: options.store,
    clock: options.clock,
    ...(options.pauseRefreshMs === undefined ? {} : { refreshMs: options.pauseRefreshMs }),
  });
  const byName = new Map<string, Deliverer>();
  for (const destination of destinations) {
    byName.set(destination.name, createDeliverer({ ...options, destination, pauses }));
  }
  const deliverers = [...byName.values()];
  const wake = (): void => deliverers.forEach((deliverer) => deliverer.wake());
  return {
    destinationsFor: destinations.length === 0
      ? undefined
      : (event) => destinationsFor(destinations, event).map((destination) => destination.name),
    pauses: {
      of: (destination) => pauses.of(destination),
      pause: async (destination, reason) => {
        await pauses.pause(destination, reason);
        wake();
      },
      resume: async (destination) => {
        const result = await pauses.resume(destination);
        wake();
        return result;
      },
    },
    circuitOf: (destination) => byName.get(destination)?.circuit(),
    start: () => deliverers.forEach((deliverer) => deliverer.start()),
    wake,
    stop: async (graceMs) => {
      await Promise.all(deliverers.map((deliverer) => deliverer.stop(graceMs)));
    },
  };
}
