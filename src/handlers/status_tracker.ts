/**
 * Status tracking: per message the business sent (its `wamid`), the furthest status Meta
 * reported, kept in the store, which applies statuses monotonically (`store/message_status.ts`:
 * out of order and repeated statuses change nothing, `failed` is terminal). Status values Meta
 * may add (or the old `deleted`, `warning`) are not tracked.
 *
 * @module
 */
import { type Clock, systemClock } from "../ops/clock.ts";
import { DEFAULTS } from "../config.ts";
import type { Dispatcher } from "../dispatch/dispatcher.ts";
import type { StatusEvent, WhatsAppError } from "../events/events.ts";
import { isTrackedStatus, type TrackedStatus } from "../store/message_status.ts";
import type { Store } from "../store/store.ts";

export { isFurther, isTrackedStatus, TRACKED_STATUSES } from "../store/message_status.ts";
export type { MessageStatusRecord, TrackedStatus } from "../store/message_status.ts";

/** The handler name of {@linkcode registerStatusTracking}, kept in event records. */
export const STATUS_TRACKING_HANDLER = "status-tracking";

/** A message's status as the admin API shows it. */
export interface MessageStatusView {
  id: string;
  status: TrackedStatus;
  /** ISO 8601 (UTC). */
  updatedAt: string;
  errors?: WhatsAppError[];
}

/** Options for {@linkcode applyStatus}. */
export interface ApplyStatusOptions {
  /**
   * How long the record lives after this change; defaults to
   * `DEFAULTS.statusRetentionMs`.
   */
  retentionMs?: number;
}

/**
 * Applies one status event to its message's record, if it moves the message further. Returns
 * whether the record changed. Untracked status values return `false`.
 *
 * @param now the time of applying, ms since the epoch (the record's `updatedAt`)
 * @throws when the store fails
 */
export function applyStatus(
  store: Pick<Store, "advanceMessageStatus">,
  event: StatusEvent,
  now: number,
  options: ApplyStatusOptions = {},
): Promise<boolean> {
  const { id, status, errors } = event.status;
  if (!isTrackedStatus(status)) return Promise.resolve(false);
  const next = {
    id,
    status,
    updatedAt: now,
    ...(status === "failed" && errors !== undefined ? { errors } : {}),
  };
  return store.advanceMessageStatus(next, options.retentionMs ?? DEFAULTS.statusRetentionMs);
}

/** The tracked status of message `wamid`, or `null` when it was never seen or has expired. */
export async function getMessageStatus(
  store: Pick<Store, "getMessageStatus">,
  wamid: string,
): Promise<MessageStatusView | null> {
  const value = await store.getMessageStatus(wamid);
  if (!value) return null;
  return {
    id: value.id,
    status: value.status,
    updatedAt: new Date(value.updatedAt).toISOString(),
    ...(value.errors !== undefined ? { errors: value.errors } : {}),
  };
}

/** Options for {@linkcode registerStatusTracking}. */
export interface StatusTrackingOptions extends ApplyStatusOptions {
  /** The time of applying; defaults to the system clock. */
  clock?: Clock;
}

/**
 * Registers the handler `"status-tracking"`, which applies every status event with
 * {@linkcode applyStatus}. A store failure throws, so the worker retries the event.
 */
export function registerStatusTracking(
  dispatcher: Dispatcher,
  options: StatusTrackingOptions = {},
): Dispatcher {
  const clock = options.clock ?? systemClock;
  const applyOptions = options.retentionMs === undefined
    ? {}
    : { retentionMs: options.retentionMs };
  return dispatcher.on("status", async ({ event, store, log }) => {
    const isAdvanced = await applyStatus(store, event, clock.now(), applyOptions);
    log.debug("status tracked", { status: event.status.status, isAdvanced });
  }, { name: STATUS_TRACKING_HANDLER });
}
