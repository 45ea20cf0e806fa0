/**
 * Destinations paused at run time: one entry per paused destination, written by an operator's
 * pause or a 410 Gone and removed by a resume. Every process's deliverers read them, so a pause
 * holds across processes and restarts.
 *
 * @module
 */
import type { DestinationPause } from "../store.ts";
import { commitWithRetry } from "./commit.ts";
import { DESTINATION_PAUSE_PREFIX, destinationPauseKey } from "./keys.ts";

/** Pauses `pause.destination` unless it is paused already (the first pause is kept). */
export async function pauseDestination(kv: Deno.Kv, pause: DestinationPause): Promise<void> {
  const key = destinationPauseKey(pause.destination);
  // Absent -> set; present -> the check fails and the first pause stays, which is the point.
  await commitWithRetry(() => kv.atomic().check({ key, versionstamp: null }).set(key, pause));
}

/** Lifts `destination`'s pause; returns whether it was paused. */
export async function resumeDestination(kv: Deno.Kv, destination: string): Promise<boolean> {
  const key = destinationPauseKey(destination);
  const current = await kv.get(key);
  if (current.versionstamp === null) return false;
  await commitWithRetry(() => kv.atomic().delete(key));
  return true;
}

/** Every paused destination, by name. */
export async function listPausedDestinations(kv: Deno.Kv): Promise<DestinationPause[]> {
  const pauses: DestinationPause[] = [];
  for await (const entry of kv.list<DestinationPause>({ prefix: DESTINATION_PAUSE_PREFIX })) {
    pauses.push(entry.value);
  }
  return pauses;
}
