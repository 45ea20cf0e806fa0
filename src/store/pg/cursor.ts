/**
 * The cursors of the PostgreSQL store's listings: the place of the last item of a page in the
 * listing's order (its event's reception time and sequence number), as base64url JSON, opaque to
 * clients; and a page read from a query that asked for one row more than it shows.
 *
 * @module
 */
import { InvalidCursorError } from "../store.ts";

/** A place in a newest-first listing: an event's reception time and its sequence number. */
export interface ListingPosition {
  receivedAt: number;
  seq: number;
}

/** The cursor that resumes after `position`. */
export function encodeCursor(position: ListingPosition): string {
  const json = JSON.stringify([position.receivedAt, position.seq]);
  return btoa(json).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** The position a cursor names; throws {@linkcode InvalidCursorError} for one it did not make. */
export function decodeCursor(cursor: string): ListingPosition {
  const invalid = new InvalidCursorError(
    `Cannot read "cursor": pass back the cursor of the previous page unchanged`,
  );
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalid;
  let parsed: unknown;
  try {
    parsed = JSON.parse(atob(cursor.replaceAll("-", "+").replaceAll("_", "/")));
  } catch {
    throw invalid;
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) throw invalid;
  const [receivedAt, seq] = parsed;
  if (!Number.isSafeInteger(receivedAt) || !Number.isSafeInteger(seq)) throw invalid;
  return { receivedAt, seq };
}

/** What a listing's options ask for: at least one item, after the place a cursor names. */
export function pageRequest(
  options: { limit: number; cursor?: string },
): { limit: number; after: ListingPosition | undefined } {
  return {
    limit: Math.max(1, Math.floor(options.limit)),
    after: options.cursor === undefined ? undefined : decodeCursor(options.cursor),
  };
}

/**
 * The page of `rows`, fetched with one more than `limit`: the first `limit`, and the cursor
 * after the last of them (at `positionOf` it) when more followed.
 */
export function pageOf<R>(
  rows: readonly R[],
  limit: number,
  positionOf: (row: R) => ListingPosition,
): { page: R[]; cursor?: string } {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return rows.length > limit && last !== undefined
    ? { page, cursor: encodeCursor(positionOf(last)) }
    : { page };
}
