/**
 * The typed dispatcher: handlers register per event kind, per webhook field and per message type,
 * and the compiler knows which event each handler gets (a text handler sees a text message without
 * casts). Several handlers may share a key; each has a name, so that a retry runs only the
 * handlers that have not succeeded yet.
 *
 * @module
 */
import type { ChangeEvent, InboundMessage, MessageEvent, WebhookEvent } from "../events/events.ts";
import type { GraphClient } from "../graph/client.ts";
import type { Logger } from "../ops/log.ts";
import type { Store } from "../store/store.ts";
import type { ReplyOptions, ReplyResult } from "./reply.ts";
import type { WindowQuery, WindowState } from "./conversation_window.ts";

/** The kinds of {@linkcode WebhookEvent}. */
export type EventKind = WebhookEvent["kind"];

/** The event of a kind (`"message"`) or of a webhook field (`"account_update"`). */
export type EventFor<K extends DispatchKey> = K extends EventKind
  ? Extract<WebhookEvent, { kind: K }>
  : Extract<ChangeEvent, { field: K }>;

/** What handlers register on: an event kind or the field of a change. */
export type DispatchKey = EventKind | Exclude<ChangeEvent["field"], "unknown">;

/** A message event whose message has type `T`. */
export type MessageEventOf<T extends InboundMessage["type"]> = MessageEvent & {
  message: Extract<InboundMessage, { type: T }>;
};

/** Services a handler may use, added to as the service grows. */
export interface HandlerServices {
  /** The service's store: reply records, message statuses, the event log. */
  store: Store;
  /**
   * The Cloud API client, to send messages; absent when no access token is configured
   * (`WHATSAPP_TOKEN`, `WHATSAPP_TOKENS`).
   */
  graph?: GraphClient;
}

/**
 * What a handler receives. Its `graph` refuses free-form sends outside the customer-service
 * window with a `WindowClosedError` before any request (`conversation_window.ts`).
 */
export interface HandlerContext<E extends WebhookEvent = WebhookEvent> extends HandlerServices {
  event: E;
  /** A logger bound to the event id and the handler name. */
  log: Logger;
  /** Aborted when the worker gives up on this run (shutdown past its bound, or a lost lease). */
  signal: AbortSignal;
  /** 1 for the first run of this event's handlers, 2 for the first retry, … */
  attempt: number;
  /**
   * Replies to the event's message with `text`, from the number it was sent to, to its sender,
   * exactly once per handler and message whatever the retries and replays (`reply.ts`). Throws
   * a `PermanentError` for an event that is not a message, or when there is no Graph API client,
   * and a `WindowClosedError` (one) without sending when the user's customer-service window is
   * closed: a message counts itself, so replying to a fresh one never fails.
   */
  reply(text: string, options?: ReplyOptions): Promise<ReplyResult>;
  /**
   * The customer-service window of a conversation, by default the event's (its business number
   * and its user: a message's sender, a status's or an echo's recipient): when it closes and
   * whether a free-form message may be sent now. Rejects with a `TypeError` when the event names
   * no business number or user and `query` does not either.
   */
  window(query?: WindowQuery): Promise<WindowState>;
}

/**
 * A handler: throwing (or rejecting) makes the worker retry it with backoff; a `PermanentError`
 * dead-letters the event at once, and a `RetryLaterError` sets the least wait before the retry
 * (both in `handler_errors.ts`).
 */
export type Handler<E extends WebhookEvent = WebhookEvent> = (
  context: HandlerContext<E>,
) => void | Promise<unknown>;

/** Options of a registration. */
export interface HandlerOptions {
  /**
   * A stable name, kept in the event's record to know which handlers already succeeded. Defaults
   * to the key and the registration's position (`message:0`); name handlers that may be added
   * or removed between deploys.
   */
  name?: string;
  /**
   * Runs beside the other handlers without taking the event: an event that only passive handlers
   * take still goes to the `onUnhandled` fallback (the built-in logging handlers are passive).
   */
  isPassive?: boolean;
}

/** A registered handler with its name. */
export interface NamedHandler {
  name: string;
  handle: Handler;
  /** See {@linkcode HandlerOptions.isPassive}. */
  isPassive?: boolean;
}

/** Registers handlers and finds those of an event. */
export class Dispatcher {
  #byKey = new Map<string, NamedHandler[]>();
  #byMessageType = new Map<string, NamedHandler[]>();
  #unhandled: NamedHandler[] = [];
  #names = new Set<string>();

  /** Runs `handler` for every event of a kind, or every change of a webhook field. */
  on<K extends DispatchKey>(key: K, handler: Handler<EventFor<K>>, options?: HandlerOptions): this {
    this.#add(this.#byKey, key, handler as Handler, options);
    return this;
  }

  /** Runs `handler` for every message of type `type` (`"text"`, `"image"`, …, `"unknown"`). */
  onMessage<T extends InboundMessage["type"]>(
    type: T,
    handler: Handler<MessageEventOf<T>>,
    options?: HandlerOptions,
  ): this {
    this.#add(this.#byMessageType, `message.${type}`, handler as Handler, options);
    return this;
  }

  /** Runs `handler` for events that no other handler takes: the fallback for the unforeseen. */
  onUnhandled(handler: Handler, options?: HandlerOptions): this {
    const name = this.#claimName(options?.name ?? `unhandled:${this.#unhandled.length}`);
    this.#unhandled.push({ name, handle: handler });
    return this;
  }

  /**
   * Adds every handler registered on `other`, after this one's (in their order, under their
   * names): how the service puts a user's handlers beside its built-in ones.
   *
   * @throws when a name is registered on both
   */
  include(other: Dispatcher): this {
    for (const [key, handlers] of other.#byKey) {
      for (const handler of handlers) this.#push(this.#byKey, key, handler);
    }
    for (const [key, handlers] of other.#byMessageType) {
      for (const handler of handlers) this.#push(this.#byMessageType, key, handler);
    }
    for (const { name, handle } of other.#unhandled) {
      this.#unhandled.push({ name: this.#claimName(name), handle });
    }
    return this;
  }

  /**
   * The handlers of `event`, in registration order: kind, field, message type; then the fallback
   * when none of them but passive ones take it.
   */
  handlersFor(event: WebhookEvent): NamedHandler[] {
    const handlers = [...(this.#byKey.get(event.kind) ?? [])];
    if (event.kind === "change") handlers.push(...(this.#byKey.get(event.field) ?? []));
    if (event.kind === "message") {
      handlers.push(...(this.#byMessageType.get(`message.${event.message.type}`) ?? []));
    }
    return handlers.some((handler) => !handler.isPassive)
      ? handlers
      : [...handlers, ...this.#unhandled];
  }

  #add(
    map: Map<string, NamedHandler[]>,
    key: string,
    handle: Handler,
    options: HandlerOptions | undefined,
  ): void {
    const name = options?.name ?? `${key}:${map.get(key)?.length ?? 0}`;
    this.#push(map, key, { name, handle, ...(options?.isPassive ? { isPassive: true } : {}) });
  }

  #push(map: Map<string, NamedHandler[]>, key: string, handler: NamedHandler): void {
    this.#claimName(handler.name);
    map.set(key, [...(map.get(key) ?? []), handler]);
  }

  #claimName(name: string): string {
    if (this.#names.has(name)) throw new Error(`A handler named "${name}" is already registered`);
    this.#names.add(name);
    return name;
  }
}

/** The built-in handlers: messages and statuses logged at debug, without their text. */
export function registerLoggingHandlers(dispatcher: Dispatcher): Dispatcher {
  return dispatcher
    .on("message", ({ event, log }) => {
      log.debug("message received", {
        type: event.message.type,
        phoneNumberId: event.phoneNumberId,
      });
    }, { name: "log-message", isPassive: true })
    .on("status", ({ event, log }) => {
      log.debug("status received", { status: event.status.status });
    }, { name: "log-status", isPassive: true });
}
