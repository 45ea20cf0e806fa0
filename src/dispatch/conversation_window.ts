/**
 * The customer-service window in the handler context: `ctx.window()` says when a conversation's
 * window closes, and free-form sends through the context (`ctx.reply`, `ctx.graph.sendText`,
 * `ctx.graph.sendMessage` of anything but a template) fail at once with a
 * {@linkcode WindowClosedError} when it is closed, instead of a round trip to Meta ending in error
 * 131047. Template messages, sends to a group and read receipts are never checked.
 *
 * The window is what the store keeps (`Store.getWindow`, opened by `handlers/window_tracker.ts`)
 * and, for the message being handled, that message itself: the tracker may run after the handler
 * that replies (or not at all yet, on the first run), and replying to a fresh message must never
 * fail. The user is matched on every identity known (BSUID and phone number), as the tracker
 * opens the window under each.
 *
 * @module
 */
import type { WebhookEvent } from "../events/events.ts";
import { userIdOf } from "../events/events.ts";
import type { GraphClient } from "../graph/client.ts";
import type { OutboundMessage, RecipientIdentity } from "../graph/outbound_message.ts";
import { CUSTOMER_SERVICE_WINDOW_MS } from "../store/conversation_window.ts";
import type { Store } from "../store/store.ts";
import { PermanentError } from "./handler_errors.ts";
import { senderOf } from "./reply.ts";

/** A conversation's window as a handler sees it. */
export interface WindowState {
  /** The business phone number id. */
  business: string;
  /** The user: the BSUID when known, else the phone number. */
  user: string;
  /** When the window closes (or closed), ms since the epoch; absent when no message opened one. */
  closesAt?: number;
  /** Whether a free-form message may be sent now. */
  isOpen: boolean;
}

/** Which conversation `ctx.window()` reads; each part defaults to the event's. */
export interface WindowQuery {
  /** The business phone number id; defaults to the event's `phoneNumberId`. */
  business?: string;
  /**
   * The user (BSUID or phone number, or both as known); defaults to the event's user: a
   * message's sender, a status's recipient, an echo's recipient.
   */
  user?: string | RecipientIdentity;
}

/**
 * A free-form message refused before sending: the user's customer-service window is closed (no
 * message from them in the last 24 hours), so only a template message can reach them. A
 * `PermanentError`: the event is dead-lettered at once, since retrying cannot open the window.
 */
export class WindowClosedError extends PermanentError {
  override readonly name = "WindowClosedError";
  /** The business phone number id. */
  readonly business: string;
  /** The user, as the send named them. */
  readonly user: string;
  /** When the window closed, ms since the epoch; `undefined` when no message ever opened one. */
  readonly closedAt: number | undefined;

  /** The message names the conversation and when its window closed. */
  constructor(business: string, user: string, closedAt: number | undefined) {
    const when = closedAt === undefined
      ? "no message from the user opened one"
      : `it closed at ${new Date(closedAt).toISOString()}`;
    super(
      `Cannot send a free-form message to user "${user}" from business number "${business}": ` +
        `the customer-service window is closed (${when}); send a template message instead`,
    );
    this.business = business;
    this.user = user;
    this.closedAt = closedAt;
  }
}

/** What the window checks need: the store, the time, and the event being handled. */
export interface WindowDeps {
  store: Pick<Store, "getWindow">;
  /** The current time, ms since the epoch. */
  now: () => number;
  event: WebhookEvent;
}

/** The identities of a user: BSUID and phone number, those known, BSUID first. */
export function identitiesOf(who: string | RecipientIdentity): string[] {
  if (typeof who === "string") return who === "" ? [] : [who.replace(/^\+/, "")];
  const ids: string[] = [];
  if (who.userId) ids.push(who.userId);
  if (who.phone) ids.push(who.phone.replace(/^\+/, ""));
  return ids;
}

/**
 * The user whose window a message event opens: its sender (`from_user_id` and `from`, else its
 * contact's, as `ctx.reply` answers them); `undefined` for other events and for system messages,
 * which the user did not write.
 */
export function windowOpenerOf(event: WebhookEvent): RecipientIdentity | undefined {
  if (event.kind !== "message" || event.message.type === "system") return undefined;
  return senderOf(event);
}

/**
 * The window of `business` and `who` at `deps.now()`: the latest close the store keeps under any
 * of the user's identities, or that the event being handled gives (a message from that user to
 * that business closes it 24 hours after its timestamp).
 */
export async function readWindow(
  business: string,
  who: string | RecipientIdentity,
  deps: WindowDeps,
): Promise<WindowState> {
  const ids = identitiesOf(who);
  let closesAt: number | undefined;
  for (const user of ids) {
    const stored = await deps.store.getWindow({ business, user });
    if (stored !== null && (closesAt === undefined || stored.closesAt > closesAt)) {
      closesAt = stored.closesAt;
    }
  }
  const { event } = deps;
  const opener = identitiesOf(windowOpenerOf(event) ?? {});
  if (
    event.kind === "message" && event.phoneNumberId === business &&
    ids.some((id) => opener.includes(id))
  ) {
    const own = event.timestampMs + CUSTOMER_SERVICE_WINDOW_MS;
    if (closesAt === undefined || own > closesAt) closesAt = own;
  }
  const user = ids[0] ?? "";
  const isOpen = closesAt !== undefined && deps.now() < closesAt;
  return closesAt === undefined ? { business, user, isOpen } : { business, user, closesAt, isOpen };
}

/**
 * Resolves when a free-form message to `who` from `business` may be sent now.
 *
 * @throws {WindowClosedError} when the window is closed
 */
export async function assertWindowOpen(
  business: string,
  who: string | RecipientIdentity,
  deps: WindowDeps,
): Promise<void> {
  const state = await readWindow(business, who, deps);
  if (!state.isOpen) throw new WindowClosedError(business, state.user, state.closesAt);
}

/** `ctx.window(query)`: the window of the conversation named, by default the event's. */
export function readWindowFor(query: WindowQuery, deps: WindowDeps): Promise<WindowState> {
  const { event } = deps;
  const business = query.business ?? event.phoneNumberId;
  const who = query.user ?? windowOpenerOf(event) ?? userIdOf(event);
  if (business === undefined || who === undefined || identitiesOf(who).length === 0) {
    return Promise.reject(
      new TypeError(
        `Cannot read the window: the ${event.kind} event names no ` +
          `${business === undefined ? "business number" : "user"}; pass it to ctx.window()`,
      ),
    );
  }
  return readWindow(business, who, deps);
}

/**
 * `graph` with its free-form sends checked against the window first (see the module's notes): a
 * closed window rejects with {@linkcode WindowClosedError} and no request is made.
 */
export function windowCheckedGraph(graph: GraphClient, deps: WindowDeps): GraphClient {
  return {
    async sendMessage(phoneNumberId, message, options) {
      if (_isFreeForm(message)) await assertWindowOpen(phoneNumberId, _recipient(message), deps);
      return graph.sendMessage(phoneNumberId, message, options);
    },
    async sendText(phoneNumberId, options) {
      await assertWindowOpen(phoneNumberId, options.to, deps);
      return graph.sendText(phoneNumberId, options);
    },
    markAsRead: (phoneNumberId, messageId, options) =>
      graph.markAsRead(phoneNumberId, messageId, options),
  };
}

/** Whether `message` needs an open window: anything but a template, to a user (not a group). */
function _isFreeForm(message: OutboundMessage): boolean {
  return message.type !== "template" && message.recipient_type !== "group";
}

function _recipient(message: OutboundMessage): string {
  return message.to ?? message.recipient ?? "";
}
