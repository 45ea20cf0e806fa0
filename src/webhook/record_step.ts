/**
 * The record step of intake: the events of a verified delivery are recorded in the store, those
 * this process can run at once leased to its worker (they run without being claimed), the others
 * due now for any worker. It resolves once none of them can be lost; the request is acknowledged
 * after it.
 *
 * @module
 */
import type { Deliveries } from "../destinations/deliveries.ts";
import type { Worker } from "../dispatch/worker.ts";
import type { Clock } from "../ops/clock.ts";
import type { ServiceMetrics } from "../ops/service_metrics.ts";
import { annotateSpan } from "../ops/telemetry.ts";
import type { RecordOutcome, Store } from "../store/store.ts";
import type { EventRecorder } from "./intake.ts";

/** What {@linkcode createRecordStep} needs. */
export interface RecordStepOptions {
  store: Pick<Store, "recordEvents">;
  worker: Pick<Worker, "reserve" | "wake">;
  metrics: Pick<ServiceMetrics, "observeRecorded">;
  clock: Clock;
  /**
   * The destinations' deliverers: each new event gets a delivery job per destination it goes to
   * (`destinationsFor`, absent when none is declared), and they are woken once it is recorded.
   */
  deliveries?: Pick<Deliveries, "destinationsFor" | "wake">;
}

/** The intake's {@linkcode EventRecorder} over the store and the process's worker. */
export function createRecordStep(options: RecordStepOptions): EventRecorder {
  const { store, worker, metrics, clock, deliveries } = options;
  const destinationsFor = deliveries?.destinationsFor;
  return async (events, log) => {
    const reservation = worker.reserve(events.length);
    let outcome: RecordOutcome;
    try {
      outcome = await store.recordEvents(events, {
        now: clock.now(),
        lease: reservation,
        ...(destinationsFor ? { destinationsFor } : {}),
      });
    } catch (error) {
      reservation.run([]); // events committed leased run once their lease runs out
      throw error;
    }
    reservation.run(outcome.leased);
    metrics.observeRecorded(events, outcome, clock.now());
    const counts = { recorded: outcome.recorded.length, duplicates: outcome.duplicates.length };
    annotateSpan({
      "wa.events.recorded": counts.recorded,
      "wa.events.duplicates": counts.duplicates,
      "wa.events.leased": outcome.leased.length,
    });
    log.debug("delivery recorded", counts);
    if (outcome.recorded.length > outcome.leased.length) worker.wake();
    if (destinationsFor && outcome.recorded.length > 0) deliveries?.wake();
  };
}
