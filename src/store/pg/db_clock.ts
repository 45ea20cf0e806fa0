/**
 * The database's wall clock in ms since the epoch, as SQL: what records that expire by the wall
 * clock (message statuses, reply records, as Deno KV's `expireIn` does) are stamped and compared
 * with, so every instance agrees whatever its own clock says.
 *
 * @module
 */

/** SQL for the database's time now, ms since the epoch, as a `bigint`. */
export const DB_NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";
