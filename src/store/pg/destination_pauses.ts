/**
 * Destinations paused at run time, in PostgreSQL: one row per paused destination, inserted by a
 * pause (the first one's reason kept) and deleted by a resume. Every instance's deliverers read
 * them, so a pause holds across instances and restarts.
 *
 * @module
 */
import type postgres from "postgres";
import type { DestinationPause } from "../store.ts";

/** Pauses `pause.destination` unless it is paused already (the first pause is kept). */
export async function pauseDestination(sql: postgres.Sql, pause: DestinationPause): Promise<void> {
  await sql`
    INSERT INTO wa_destination_pauses (destination, reason, since)
    VALUES (${pause.destination}, ${pause.reason}, ${pause.since})
    ON CONFLICT (destination) DO NOTHING`;
}

/** Lifts `destination`'s pause; returns whether it was paused. */
export async function resumeDestination(sql: postgres.Sql, destination: string): Promise<boolean> {
  const rows = await sql`
    DELETE FROM wa_destination_pauses WHERE destination = ${destination} RETURNING 1`;
  return rows.length > 0;
}

/** Every paused destination. */
export async function listPausedDestinations(sql: postgres.Sql): Promise<DestinationPause[]> {
  const rows = await sql<{ destination: string; reason: string; since: number }[]>`
    SELECT destination, reason, since FROM wa_destination_pauses ORDER BY destination`;
  return rows.map((row) => ({
    destination: row.destination,
    reason: row.reason,
    since: Number(row.since),
  }));
}
