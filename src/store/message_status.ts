/**
 * The status of a message the business sent, as every store keeps it: the furthest status Meta
 * reported, applied monotonically.
 *
 * Statuses arrive out of order and repeat (reference §6): `sent < delivered < read < played`, and
 * a lower status arriving after a higher one changes nothing. `failed` is terminal: it replaces
 * any other status, keeps its `errors`, and nothing replaces it (a late `sent`, or the `delivered`
 * multi-device users produce after a `failed`).
 *
 * @module
 */
import type { WhatsAppError } from "../events/events.ts";

/** The statuses tracked, in delivery order; `failed` stands apart (terminal). */
export const TRACKED_STATUSES = ["sent", "delivered", "read", "played", "failed"] as const;

/** One of {@linkcode TRACKED_STATUSES}. */
export type TrackedStatus = (typeof TRACKED_STATUSES)[number];

/** What a store keeps per message. */
export interface MessageStatusRecord {
  /** The `wamid`. */
  id: string;
  status: TrackedStatus;
  /** When this service applied the status, ms since the epoch. */
  updatedAt: number;
  /** Meta's errors, with `failed` only. */
  errors?: WhatsAppError[];
}

/** Ranks of the ordered statuses; `failed` has none. */
const _RANK: Readonly<Record<Exclude<TrackedStatus, "failed">, number>> = {
  sent: 1,
  delivered: 2,
  read: 3,
  played: 4,
};

/**
 * Whether `next` moves a message whose status is `current` further: a higher rank, or `failed`
 * over anything but `failed`. Nothing moves a `failed` message.
 */
export function isFurther(current: TrackedStatus, next: TrackedStatus): boolean {
  if (current === "failed") return false;
  if (next === "failed") return true;
  return _RANK[next] > _RANK[current];
}

/** Whether `status` is one of {@linkcode TRACKED_STATUSES}. */
export function isTrackedStatus(status: string): status is TrackedStatus {
  return (TRACKED_STATUSES as readonly string[]).includes(status);
}
