/**
 * wa-webhook as a library: a WhatsApp Cloud API webhook service you build in a few lines.
 *
 * ```ts
 * import { Dispatcher } from "@wa-webhook/service";
 * import { runService } from "@wa-webhook/service/main";
 *
 * const bot = new Dispatcher().onMessage("text", (ctx) => ctx.reply("hi"), { name: "hi" });
 * await runService({ args: Deno.args, dispatcher: bot });
 * ```
 *
 * `runService` (from `main.ts`, the binary) reads the environment and owns the process;
 * {@linkcode createService} here does neither: pass it a configuration (and a store, or Deno KV at
 * `config.kvPath` is opened) and serve its `fetch` yourself. Handlers registered on a
 * {@linkcode Dispatcher} run beside the built-in ones (logging, status tracking, echo); their
 * context's `reply` answers a message exactly once, whatever Meta's retries, the worker's retries
 * or an operator's replay do, and refuses at once (`WindowClosedError`) outside the user's
 * 24-hour customer-service window, where only a template can reach them.
 *
 * @module
 */
export { createService, type Service, type ServiceOptions } from "./src/service.ts";
export {
  type Config,
  ConfigError,
  type ConfigInput,
  DEFAULTS,
  type LoadedConfig,
  resolveConfig,
} from "./src/config.ts";
export {
  Dispatcher,
  type DispatchKey,
  type EventFor,
  type Handler,
  type HandlerContext,
  type HandlerOptions,
  type HandlerServices,
  type MessageEventOf,
} from "./src/dispatch/dispatcher.ts";
export { PermanentError, RetryLaterError } from "./src/dispatch/handler_errors.ts";
export {
  WindowClosedError,
  type WindowQuery,
  type WindowState,
} from "./src/dispatch/conversation_window.ts";
export type { ReplyOptions, ReplyResult } from "./src/dispatch/reply.ts";
export type {
  ChangeEvent,
  Contact,
  Echo,
  EchoEvent,
  InboundMessage,
  MessageEvent,
  StatusEvent,
  UnknownEvent,
  WebhookEvent,
  WhatsAppError,
} from "./src/events/events.ts";
export {
  type FlowContext,
  type FlowErrorNotification,
  type FlowHandler,
  type FlowHandlerOptions,
  Flows,
  type FlowsOptions,
  InvalidFlowTokenError,
} from "./src/flows/flows.ts";
export { completeFlow, type FlowAction, type FlowScreenAnswer } from "./src/flows/protocol.ts";
export type { GraphClient } from "./src/graph/client.ts";
export { GraphApiError, type GraphErrorCategory } from "./src/graph/errors.ts";
export { createLogger, type Logger } from "./src/ops/log.ts";
export type { Store, StoreOptions } from "./src/store/store.ts";
export type {
  FailMediaOptions,
  MediaRecord,
  MediaState,
  MediaStore,
  PutMediaOptions,
  StoredMedia,
} from "./src/media/media_store.ts";
export { openKvStore } from "./src/store/kv/open.ts";
