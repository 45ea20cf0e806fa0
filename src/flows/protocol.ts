/**
 * The shapes of WhatsApp Flows data exchange, as zod schemas with the types inferred from them:
 * the encrypted body Meta posts, the request inside it (a health check, an error notification, or
 * `INIT`, `data_exchange` and `BACK` for a screen), and the answers (the next screen, or the
 * final `SUCCESS` that closes the flow and sends its parameters to the chat as an `nfm_reply`).
 *
 * Reasons name fields and actions, never a value: the data holds the user's answers.
 *
 * @module
 */
import { z } from "zod";
import type { EncryptedFlowRequest } from "./crypto.ts";

/** Longest flow token read; Meta's are opaque strings the business chose, far shorter. */
const MAX_FLOW_TOKEN_CHARS = 2_048;

/** Longest screen name read; screen ids in Flow JSON are short identifiers. */
const MAX_SCREEN_CHARS = 200;

/** The screen that ends a flow, by Meta's name. */
export const SUCCESS_SCREEN = "SUCCESS";

/** The body Meta posts: three base64 strings (other fields are ignored). */
const _ENCRYPTED_BODY_SCHEMA = z.object({
  encrypted_flow_data: z.string({ error: "is required: a base64 string" }),
  encrypted_aes_key: z.string({ error: "is required: a base64 string" }),
  initial_vector: z.string({ error: "is required: a base64 string" }),
});

const _data = z.record(z.string(), z.unknown(), { error: "must be an object" });
const _screen = z.string({ error: "is required: the screen's id" }).min(1, "must not be empty")
  .max(MAX_SCREEN_CHARS, `must be at most ${MAX_SCREEN_CHARS} characters`);
const _flowToken = z.string({ error: "is required" }).min(1, "must not be empty")
  .max(MAX_FLOW_TOKEN_CHARS, `must be at most ${MAX_FLOW_TOKEN_CHARS} characters`);
const _version = z.string({ error: "is required" });

const _REQUEST_SCHEMA = z.discriminatedUnion("action", [
  z.object({ version: _version, action: z.literal("ping") }),
  z.object({
    version: _version,
    action: z.literal("INIT"),
    flow_token: _flowToken,
    screen: z.string().max(MAX_SCREEN_CHARS).optional(),
    data: _data.optional(),
  }),
  z.object({
    version: _version,
    action: z.literal("data_exchange"),
    flow_token: _flowToken,
    screen: _screen,
    data: _data.optional(),
  }),
  z.object({
    version: _version,
    action: z.literal("BACK"),
    flow_token: _flowToken,
    screen: _screen,
    data: _data.optional(),
  }),
], { error: 'expected "ping", "INIT", "data_exchange" or "BACK"' });

/** An action a screen handler answers. */
export type FlowAction = "INIT" | "data_exchange" | "BACK";

/** A request, opened and read: its `kind` says who answers it. */
export type FlowRequest =
  /** Meta's health check: answered `active` by the endpoint. */
  | { kind: "ping"; version: string }
  /**
   * The client could not use an earlier answer (`data.error` set): acknowledged by the endpoint,
   * and shown to the error handler if there is one.
   */
  | {
    kind: "error_notification";
    version: string;
    action: FlowAction;
    flowToken: string;
    screen: string | undefined;
    error: string;
    errorMessage: string | undefined;
  }
  /** A screen's request, for the handler registered for its action and screen. */
  | {
    kind: "screen";
    version: string;
    action: FlowAction;
    flowToken: string;
    screen: string | undefined;
    data: Readonly<Record<string, unknown>>;
  };

/** The next screen to show, with the data its Flow JSON declares. */
export interface FlowScreenAnswer {
  /** The screen's id in the Flow JSON, or `SUCCESS` to close the flow. */
  screen: string;
  /** The screen's data; for `SUCCESS`, `extension_message_response` (see {@linkcode completeFlow}). */
  data?: Record<string, unknown>;
}

/** Raised when a body or a request does not have Meta's shape; the message says where. */
export class FlowProtocolError extends Error {
  override name = "FlowProtocolError";
}

const _decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads the posted body: JSON with the three base64 fields.
 *
 * @throws {FlowProtocolError} when it is not UTF-8 JSON, or a field is missing or not a string
 */
export function readEncryptedBody(body: Uint8Array): EncryptedFlowRequest {
  let value: unknown;
  try {
    value = JSON.parse(_decoder.decode(body));
  } catch {
    throw new FlowProtocolError("Cannot read the Flows request: the body is not UTF-8 JSON");
  }
  const parsed = _ENCRYPTED_BODY_SCHEMA.safeParse(value);
  if (!parsed.success) {
    throw new FlowProtocolError(`Cannot read the Flows request: ${_reasons(parsed.error)}`);
  }
  return parsed.data;
}

/**
 * Reads the decrypted request.
 *
 * @throws {FlowProtocolError} when it is not JSON or not one of Meta's requests
 */
export function readFlowRequest(text: string): FlowRequest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FlowProtocolError("Cannot read the decrypted Flows request: it is not JSON");
  }
  const parsed = _REQUEST_SCHEMA.safeParse(value);
  if (!parsed.success) {
    throw new FlowProtocolError(
      `Cannot read the decrypted Flows request: ${_reasons(parsed.error)}`,
    );
  }
  const request = parsed.data;
  if (request.action === "ping") return { kind: "ping", version: request.version };
  const data = request.data ?? {};
  const base = {
    version: request.version,
    action: request.action,
    flowToken: request.flow_token,
    screen: request.screen || undefined,
  };
  if (typeof data.error === "string" || data.error === true) {
    return {
      kind: "error_notification",
      ...base,
      error: String(data.error),
      errorMessage: typeof data.error_message === "string" ? data.error_message : undefined,
    };
  }
  return { kind: "screen", ...base, data };
}

/**
 * The answer that closes a flow: the `SUCCESS` screen whose `extension_message_response.params`
 * Meta sends to the chat as the `nfm_reply` message's `response_json`. The flow token goes in
 * first, so that message can be matched to this session (a `flow_token` in `params` wins).
 */
export function completeFlow(
  flowToken: string,
  params: Record<string, unknown> = {},
): FlowScreenAnswer {
  return {
    screen: SUCCESS_SCREEN,
    data: { extension_message_response: { params: { flow_token: flowToken, ...params } } },
  };
}

/** The issues of a failed parse as one line: `field reason; field reason`, no values. */
function _reasons(error: z.ZodError): string {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join(".");
    return path === "" ? issue.message : `"${path}" ${issue.message}`;
  }).join("; ");
}
