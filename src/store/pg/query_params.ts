/**
 * The positional parameters of a query built in pieces (a listing's optional filters): each value
 * is appended once and named by its `$n` where the text uses it.
 *
 * @module
 */
import type { ListingPosition } from "./cursor.ts";

/** A value a built query passes to PostgreSQL. */
export type QueryValue = string | number;

/** Parameters collected while a query's text is built. */
export interface QueryParams {
  /** Every value so far, in `$n` order: the query's parameters. */
  params: QueryValue[];
  /** Appends `value` and returns its placeholder (`$3`). */
  param(value: QueryValue): string;
}

/** Parameters starting with `first` (`$1`, `$2`, … in the query's fixed text). */
export function queryParams(first: QueryValue[] = []): QueryParams {
  const params = [...first];
  return {
    params,
    param(value) {
      params.push(value);
      return `$${params.length}`;
    },
  };
}

/**
 * The condition of a newest-first listing's next page: rows before `after` in the order of the
 * reception time column `timeColumn` and the sequence column `seqColumn`.
 */
export function beforePosition(
  { param }: QueryParams,
  after: ListingPosition,
  [timeColumn, seqColumn]: readonly [string, string],
): string {
  return `(${timeColumn}, ${seqColumn}) < (${param(after.receivedAt)}::bigint, ${
    param(after.seq)
  }::bigint)`;
}
