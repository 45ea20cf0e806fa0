/**
 * Which destinations are paused: those declared `paused`, and those paused at run time (by an
 * operator through the admin API, or by a 410 Gone), which the store keeps so the pause holds in
 * every process and across restarts.
 *
 * Deliverers ask before each claim. The store is read at most once per `refreshMs` (one read
 * shared by every deliverer of the process); a pause or resume made here is seen at once here,
 * and by other processes within `refreshMs`.
 *
 * @module
 */
import type { Clock } from "../ops/clock.ts";
import type { DestinationPause, Store } from "../store/store.ts";
import type { Destination } from "./declarations.ts";

/** How often the run-time pauses are read again: how late another process sees a pause. */
export const PAUSE_REFRESH_MS = 5_000;

/** Why a destination is paused, as the admin API shows it. */
export interface PauseView {
  /** `declared`: its declaration says `paused`; `run_time`: paused through the store. */
  by: "declared" | "run_time";
  reason: string;
  /** Since when, ms since the epoch (run-time pauses only). */
  since?: number;
}

/** What {@linkcode Pauses.resume} did. */
export type ResumeResult = "resumed" | "not_paused" | "declared";

/** The destinations' pauses, read through a short cache. */
export interface Pauses {
  /** Why `destination` is paused now; `undefined` when it delivers. */
  of(destination: string): Promise<PauseView | undefined>;
  /** Pauses `destination` at run time (the first pause's reason is kept). */
  pause(destination: string, reason: string): Promise<void>;
  /** Lifts `destination`'s run-time pause; a declared pause stays (`declared`). */
  resume(destination: string): Promise<ResumeResult>;
}

/** What {@linkcode createPauses} needs. */
export interface PausesOptions {
  destinations: readonly Destination[];
  store: Pick<Store, "pauseDestination" | "resumeDestination" | "listPausedDestinations">;
  clock: Clock;
  /** Defaults to {@linkcode PAUSE_REFRESH_MS}. */
  refreshMs?: number;
}

/** Creates the pauses of `destinations`. */
export function createPauses(options: PausesOptions): Pauses {
  const { store, clock } = options;
  const refreshMs = options.refreshMs ?? PAUSE_REFRESH_MS;
  const declared = new Set(options.destinations.filter((d) => d.paused).map((d) => d.name));
  let cached: Map<string, DestinationPause> | undefined;
  let readAt = -Infinity;
  let reading: Promise<Map<string, DestinationPause>> | undefined;
  /** Counts the changes made here: a read begun before one is not kept. */
  let changes = 0;

  /** The run-time pauses, read again once `refreshMs` passed (one read at a time). */
  function runTimePauses(): Promise<Map<string, DestinationPause>> {
    if (cached && clock.now() - readAt < refreshMs) return Promise.resolve(cached);
    if (reading) return reading;
    const changesAtRead = changes;
    const read = store.listPausedDestinations().then((pauses) => {
      const current = new Map(pauses.map((pause) => [pause.destination, pause]));
      if (changesAtRead === changes) [cached, readAt] = [current, clock.now()];
      return current;
    }).finally(() => {
      if (reading === read) reading = undefined;
    });
    reading = read;
    return read;
  }

  /** Forgets what was read, after a change made here, so the next look reads it back. */
  function forget(): void {
    changes++;
    cached = undefined;
    reading = undefined;
  }

  return {
    async of(destination) {
      if (declared.has(destination)) return { by: "declared", reason: "declared paused" };
      const pause = (await runTimePauses()).get(destination);
      return pause && { by: "run_time", reason: pause.reason, since: pause.since };
    },
    async pause(destination, reason) {
      await store.pauseDestination({ destination, reason, since: clock.now() });
      forget(); // the next look reads back the pause that was kept (the first one)
    },
    async resume(destination) {
      if (declared.has(destination)) return "declared";
      const wasPaused = await store.resumeDestination(destination);
      forget();
      return wasPaused ? "resumed" : "not_paused";
    },
  };
}
