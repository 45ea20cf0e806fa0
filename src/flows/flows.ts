/**
 * The screen handlers of WhatsApp Flows: a typed registry, by action and screen and, when the
 * business runs several flows, by flow. A team registers only what its screens need:
 *
 * ```ts
 * const flows = new Flows()
 *   .onInit(() => ({ screen: "APPOINTMENT", data: { slots } }))
 *   .onDataExchange("APPOINTMENT", ({ data }) => ({ screen: "CONFIRM", data: { slot: data.slot } }))
 *   .onDataExchange("CONFIRM", ({ flowToken }) => completeFlow(flowToken, { booked: true }));
 * ```
 *
 * Meta's requests do not say which flow they belong to; the flow token does, as the business
 * chose it when it sent the flow. {@linkcode FlowsOptions.flowOf} reads the flow's name from a
 * token, and a handler registered with `{ flow: "booking" }` answers that flow only (before any
 * handler registered for every flow).
 *
 * @module
 */
import type { Logger } from "../ops/log.ts";
import type { FlowAction, FlowScreenAnswer } from "./protocol.ts";

/** What a screen handler gets. */
export interface FlowContext<A extends FlowAction = FlowAction> {
  /** `INIT` (the flow opens), `data_exchange` (a screen was submitted) or `BACK`. */
  action: A;
  /** The screen the request is about; `INIT` has none. */
  screen: A extends "INIT" ? string | undefined : string;
  /** The screen's submitted data (`INIT`: what the flow was sent with, often nothing). */
  data: Readonly<Record<string, unknown>>;
  /** The token the business sent the flow with; never log it at info level. */
  flowToken: string;
  /** The flow's name, from {@linkcode FlowsOptions.flowOf}; `undefined` without it. */
  flow: string | undefined;
  /** The request's version of the data API (`3.0`). */
  version: string;
  /** A logger bound to the request's id. */
  log: Logger;
}

/** Answers a screen's request with the next screen, or with `completeFlow(…)`. */
export type FlowHandler<A extends FlowAction = FlowAction> = (
  context: FlowContext<A>,
) => FlowScreenAnswer | Promise<FlowScreenAnswer>;

/** An error notification: the client could not use an earlier answer of this endpoint. */
export interface FlowErrorNotification {
  action: FlowAction;
  screen: string | undefined;
  /** Meta's error key. */
  error: string;
  /** Meta's description of it. */
  errorMessage: string | undefined;
  flowToken: string;
  flow: string | undefined;
  log: Logger;
}

/** Options for {@linkcode Flows}. */
export interface FlowsOptions {
  /**
   * The flow's name in a flow token (as the business chose the token when it sent the flow), for
   * handlers registered with `{ flow }`; `undefined` when the token names none.
   */
  flowOf?: (flowToken: string) => string | undefined;
}

/** Options of one registration. */
export interface FlowHandlerOptions {
  /** Only requests of this flow (by {@linkcode FlowsOptions.flowOf}); every flow when left out. */
  flow?: string;
}

/**
 * Thrown by a handler when the flow token is not valid (unknown, used up, expired): Meta is
 * answered 427, and the client shows `message` and closes the flow.
 */
export class InvalidFlowTokenError extends Error {
  override name = "InvalidFlowTokenError";

  /** @param message shown to the user by WhatsApp; keep it short and in their language */
  constructor(message = "This form is no longer available") {
    super(message);
  }
}

/** The typed registry of screen handlers; see the module's doc. */
export class Flows {
  #handlers = new Map<string, FlowHandler>();
  #onError: ((notification: FlowErrorNotification) => void | Promise<void>) | undefined;
  #flowOf: (flowToken: string) => string | undefined;

  /** See {@linkcode FlowsOptions}. */
  constructor(options: FlowsOptions = {}) {
    this.#flowOf = options.flowOf ?? (() => undefined);
  }

  /** Answers `INIT`: the flow opens and asks for its first screen. */
  onInit(handler: FlowHandler<"INIT">, options: FlowHandlerOptions = {}): this {
    return this.#add("INIT", undefined, handler as FlowHandler, options);
  }

  /** Answers `data_exchange` of `screen`: the user submitted it. */
  onDataExchange(
    screen: string,
    handler: FlowHandler<"data_exchange">,
    options: FlowHandlerOptions = {},
  ): this {
    return this.#add("data_exchange", screen, handler as FlowHandler, options);
  }

  /** Answers `BACK` to `screen` (a screen with `refresh_on_back`). */
  onBack(screen: string, handler: FlowHandler<"BACK">, options: FlowHandlerOptions = {}): this {
    return this.#add("BACK", screen, handler as FlowHandler, options);
  }

  /**
   * Sees each error notification (after it is logged); the endpoint acknowledges it whatever this
   * does or throws.
   */
  onErrorNotification(
    handler: (notification: FlowErrorNotification) => void | Promise<void>,
  ): this {
    this.#onError = handler;
    return this;
  }

  /** The flow's name in `flowToken`, by {@linkcode FlowsOptions.flowOf}. */
  flowOf(flowToken: string): string | undefined {
    return this.#flowOf(flowToken);
  }

  /** The handler for a request: the flow's own first, then the one for every flow. */
  handlerFor(
    action: FlowAction,
    screen: string | undefined,
    flow: string | undefined,
  ): FlowHandler | undefined {
    const screenKey = action === "INIT" ? undefined : screen;
    return (flow === undefined ? undefined : this.#handlers.get(_key(action, screenKey, flow))) ??
      this.#handlers.get(_key(action, screenKey, undefined));
  }

  /** The error notification handler, if one is registered. */
  get errorNotificationHandler():
    | ((notification: FlowErrorNotification) => void | Promise<void>)
    | undefined {
    return this.#onError;
  }

  #add(
    action: FlowAction,
    screen: string | undefined,
    handler: FlowHandler,
    options: FlowHandlerOptions,
  ): this {
    const key = _key(action, screen, options.flow);
    if (this.#handlers.has(key)) {
      const where = screen === undefined ? "" : ` on screen "${screen}"`;
      const flow = options.flow === undefined ? "" : ` of flow "${options.flow}"`;
      throw new Error(`A handler for ${action}${where}${flow} is already registered`);
    }
    this.#handlers.set(key, handler);
    return this;
  }
}

function _key(action: FlowAction, screen: string | undefined, flow: string | undefined): string {
  return JSON.stringify([flow ?? null, action, screen ?? null]);
}
