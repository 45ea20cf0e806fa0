/**
 * Window tracking: each message a user sends opens or extends the customer-service window of
 * that business number and user until 24 hours after the message's own timestamp (not its
 * arrival), kept in the store, which never moves a window backwards (`Store.openWindow`). The
 * window is opened under every identity the message names (BSUID and phone number), so that a
 * send addressed by either finds it. System messages open nothing: the user did not write them.
 *
 * @module
 */
import { type Clock, systemClock } from "../ops/clock.ts";
import type { Dispatcher } from "../dispatch/dispatcher.ts";
import { identitiesOf, windowOpenerOf } from "../dispatch/conversation_window.ts";
import type { MessageEvent } from "../events/events.ts";
import { CUSTOMER_SERVICE_WINDOW_MS } from "../store/conversation_window.ts";
import type { Store } from "../store/store.ts";

/** The handler name of {@linkcode registerWindowTracking}, kept in event records. */
export const WINDOW_TRACKING_HANDLER = "window-tracking";

/**
 * Opens or extends the window `event` opens, under each identity of its sender; returns whether
 * any stored window moved (`false` for a message older than the one that last extended it).
 *
 * @param now the time of writing, ms since the epoch (how long the record lives is counted from it)
 * @throws when the store fails
 */
export async function openWindowOf(
  store: Pick<Store, "openWindow">,
  event: MessageEvent,
  now: number,
): Promise<boolean> {
  const closesAt = event.timestampMs + CUSTOMER_SERVICE_WINDOW_MS;
  let isMoved = false;
  for (const user of identitiesOf(windowOpenerOf(event) ?? {})) {
    const business = event.phoneNumberId;
    if (await store.openWindow({ business, user }, { closesAt, now })) isMoved = true;
  }
  return isMoved;
}

/** Options for {@linkcode registerWindowTracking}. */
export interface WindowTrackingOptions {
  /** The time of writing; defaults to the system clock. */
  clock?: Clock;
}

/**
 * Registers the passive handler `"window-tracking"` on every message (a message that only it
 * takes still reaches the `onUnhandled` fallback). A store failure throws, so the worker retries
 * the event.
 */
export function registerWindowTracking(
  dispatcher: Dispatcher,
  options: WindowTrackingOptions = {},
): Dispatcher {
  const clock = options.clock ?? systemClock;
  return dispatcher.on("message", async ({ event, store, log }) => {
    const isMoved = await openWindowOf(store, event, clock.now());
    log.debug("window tracked", { isMoved });
  }, { name: WINDOW_TRACKING_HANDLER, isPassive: true });
}
