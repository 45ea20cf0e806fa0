/**
 * Schema drift: validation problems in parts of a delivery whose type is known. A delivery keeps
 * the first few in full and counts the rest by webhook field and type, so a delivery with a
 * million bad items costs neither a million records nor a million log lines.
 *
 * @module
 */
import type { z } from "zod";

/**
 * Schema drift recorded in full per delivery, in delivery order; the rest is only counted by
 * field and type (see {@linkcode DriftSummary.moreDrift}). A few samples say what changed; a
 * delivery with a million bad items must not cost a million records and log lines.
 */
export const MAX_DRIFT_SAMPLES = 5;

/**
 * One validation problem in a part of a delivery whose type is known (a message type, a status, a
 * contact, the value of a known field). The part still yields an event through the tolerant path;
 * the caller logs a summary per delivery and counts them (see {@linkcode countDrift}).
 */
export interface SchemaDrift {
  /** The webhook field of the change: `messages`, `account_update`, … */
  field: string;
  /** What failed: a message type (`image`), `status`, `contact`, or `value` for a change value. */
  type: string;
  /** Where, from the root of the delivery: `entry[0].changes[1].value.messages[2].image.id`. */
  path: string;
  /** What was wrong, in zod's words: `Invalid input: expected string, received number`. */
  reason: string;
}

/** How many validation problems a delivery had for one webhook field and type. */
export interface DriftCount {
  /** As {@linkcode SchemaDrift.field}. */
  field: string;
  /** As {@linkcode SchemaDrift.type}. */
  type: string;
  /** At least 1. */
  count: number;
}

/** A delivery's drift: the samples, and the rest counted (see {@linkcode countDrift}). */
export interface DriftSummary {
  /** The first {@linkcode MAX_DRIFT_SAMPLES} problems, in delivery order. */
  drift: SchemaDrift[];
  /** The problems found after those, counted by field and type; absent when there were none. */
  moreDrift?: DriftCount[];
}

/** Drift as a walk collects it: the samples, and the rest counted by field and type. */
export interface DriftFound {
  /** The first {@linkcode MAX_DRIFT_SAMPLES} problems. */
  drift: SchemaDrift[];
  /** The problems after those, keyed by field and type. */
  moreDrift: Map<string, DriftCount>;
}

/**
 * Every validation problem of a parsed delivery, the samples and the rest, counted by field and
 * type, in the order each pair was first seen.
 */
export function countDrift(parsed: DriftSummary): DriftCount[] {
  const counts = new Map<string, DriftCount>();
  for (const { field, type } of parsed.drift) _addDrift(counts, field, type, 1);
  for (const { field, type, count } of parsed.moreDrift ?? []) {
    _addDrift(counts, field, type, count);
  }
  return [...counts.values()];
}

/**
 * Adds a zod error's issues to what a walk found: in full while fewer than
 * {@linkcode MAX_DRIFT_SAMPLES} are kept, counted by field and type after that.
 */
export function recordDrift(
  found: DriftFound,
  error: z.ZodError,
  where: { field: string; type: string; path: string },
): void {
  const { issues } = error;
  let i = 0;
  for (; i < issues.length && found.drift.length < MAX_DRIFT_SAMPLES; i++) {
    const issue = issues[i];
    if (issue === undefined) break;
    let path = where.path;
    for (const segment of issue.path) {
      path += typeof segment === "number" ? `[${segment}]` : `.${String(segment)}`;
    }
    found.drift.push({ field: where.field, type: where.type, path, reason: issue.message });
  }
  if (i < issues.length) _addDrift(found.moreDrift, where.field, where.type, issues.length - i);
}

function _addDrift(
  counts: Map<string, DriftCount>,
  field: string,
  type: string,
  count: number,
): void {
  const key = JSON.stringify([field, type]);
  const known = counts.get(key);
  if (known === undefined) counts.set(key, { field, type, count });
  else known.count += count;
}
