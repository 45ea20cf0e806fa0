/**
 * Status tracking: per message the business sent (its `wamid`), the furthest status Meta
 * reported, kept in Deno KV.
 *
 * Statuses arrive out of order and repeat (reference §6), so they are applied monotonically:
 * `sent < delivered < read < played`, and a lower status arriving after a higher one changes
 * nothing. `failed` is terminal: it replaces any other status, keeps its `errors`, and nothing
 * replaces it (a late `sent`, or the `delivered` multi-device users produce after a `failed`).
 * Status values Meta may add (or the old `deleted`, `warning`) are not tracked.
 *
 * Each change is one atomic that checks the versionstamp it read, retried on conflict, so two
 * workers (or processes) applying statuses of one message at once keep the furthest.
 *
 * @module
 */
import { type Clock, systemClock } from "../ops/clock.ts";
import { DEFAULTS } from "../config.ts";
import type { Dispatcher } from "../dispatch/dispatcher.ts";
import type { StatusEvent, WhatsAppError } from "../events/events.ts";
import { commitWithRetry } from "../store/commit.ts";
import { messageStatusKey } from "../store/keys.ts";

/** The statuses tracked, in delivery order; `failed` stands apart (terminal). */
export const TRACKED_STATUSES = ["sent", "delivered", "read", "played", "failed"] as const;

/** One of {@linkcode TRACKED_STATUSES}. */
export type TrackedStatus = (typeof TRACKED_STATUSES)[number];

/** The handler name of {@linkcode registerStatusTracking}, kept in event records. */
export const STATUS_TRACKING_HANDLER = "status-tracking";

/**
 * Message ids longer than this are not tracked: a KV key holds at most 2 KiB, and real `wamid`s
 * are under a hundred characters.
 */
const MAX_WAMID_CHARS = 512;

/** Conflicting commits retried before giving up (each conflict means another status landed). */
const MAX_CONFLICT_RETRIES = 20;

/** Ranks of the ordered statuses; `failed` has none. */
const _RANK: Readonly<Record<Exclude<TrackedStatus, "failed">, number>> = {
  sent: 1,
  delivered: 2,
  read: 3,
  played: 4,
};

/** What is stored per message under `["message_status", wamid]`. */
export interface MessageStatusRecord {
  /** The `wamid`. */
  id: string;
  status: TrackedStatus;
  /** When this service applied the status, ms since the epoch. */
  updatedAt: number;
  /** Meta's errors, with `failed` only. */
  errors?: WhatsAppError[];
}

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
   * How long the record lives after this change; defaults to `DEFAULTS.statusRetentionMs` (30
   * days).
   */
  retentionMs?: number;
}

/**
 * Applies one status event to its message's record, if it moves the message further (see the
 * module doc). Returns whether the record changed. Untracked status values and absurdly long ids
 * return `false`.
 *
 * @param now the time of applying, ms since the epoch (the record's `updatedAt`)
 * @throws when Deno KV fails, or keeps conflicting past the retry bound
 */
export async function applyStatus(
  kv: Deno.Kv,
  event: StatusEvent,
  now: number,
  options: ApplyStatusOptions = {},
): Promise<boolean> {
  const { id, status, errors } = event.status;
  if (!isTrackedStatus(status) || id.length > MAX_WAMID_CHARS) return false;
  const retentionMs = options.retentionMs ?? DEFAULTS.statusRetentionMs;
  const key = messageStatusKey(id);
  for (let attempt = 1; attempt <= MAX_CONFLICT_RETRIES; attempt++) {
    const current = await kv.get<MessageStatusRecord>(key);
    if (current.value && !isFurther(current.value.status, status)) return false;
    const next: MessageStatusRecord = {
      id,
      status,
      updatedAt: now,
      ...(status === "failed" && errors !== undefined ? { errors } : {}),
    };
    const result = await commitWithRetry(() =>
      kv.atomic().check(current).set(key, next, { expireIn: retentionMs })
    );
    if (result.ok) return true;
  }
  throw new Error(
    `Cannot apply status "${status}" to message "${id}": ` +
      `it kept changing for ${MAX_CONFLICT_RETRIES} attempts`,
  );
}

/** The tracked status of message `wamid`, or `null` when it was never seen or has expired. */
export async function getMessageStatus(
  kv: Deno.Kv,
  wamid: string,
): Promise<MessageStatusView | null> {
  if (wamid.length > MAX_WAMID_CHARS) return null;
  const { value } = await kv.get<MessageStatusRecord>(messageStatusKey(wamid));
  if (!value) return null;
  return {
    id: value.id,
    status: value.status,
    updatedAt: new Date(value.updatedAt).toISOString(),
    ...(value.errors !== undefined ? { errors: value.errors } : {}),
  };
}

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

/** Options for {@linkcode registerStatusTracking}. */
export interface StatusTrackingOptions extends ApplyStatusOptions {
  /** The time of applying; defaults to the system clock. */
  clock?: Clock;
}

/**
 * Registers the handler `"status-tracking"`, which applies every status event with
 * {@linkcode applyStatus}. A KV failure throws, so the worker retries the event.
 */
export function registerStatusTracking(
  dispatcher: Dispatcher,
  options: StatusTrackingOptions = {},
): Dispatcher {
  const clock = options.clock ?? systemClock;
  const applyOptions = options.retentionMs === undefined
    ? {}
    : { retentionMs: options.retentionMs };
  return dispatcher.on("status", async ({ event, kv, log }) => {
    const isAdvanced = await applyStatus(kv, event, clock.now(), applyOptions);
    log.debug("status tracked", { status: event.status.status, isAdvanced });
  }, { name: STATUS_TRACKING_HANDLER });
}
