/**
 * The WhatsApp Flows data exchange endpoint: read the bounded body, verify its
 * `X-Hub-Signature-256` like the webhook's, decrypt the request, answer it (a health check, an
 * error notification, or a screen handler), and send the answer encrypted, as base64 text.
 *
 * The statuses are the ones Meta's client acts on: 421 when the request cannot be decrypted (it
 * fetches the public key again and retries), 427 when a handler refuses the flow token (it shows
 * `error_msg` and closes the flow), 432 when the signature fails; 400 for a body not of Meta's
 * shape and 500 when a handler fails, with the reason in the log and never a stack trace in the
 * answer. The flow token, the data and the keys are never logged above debug.
 *
 * @module
 */
import { clipForReason, HttpError } from "../http/errors.ts";
import type { RouteHandler } from "../http/router.ts";
import type { FlowMetrics, FlowRequestAction, FlowRequestOutcome } from "../ops/flow_metrics.ts";
import type { Logger } from "../ops/log.ts";
import { withSpan } from "../ops/telemetry.ts";
import { type ReadBodyOptions, readBoundedBody } from "../webhook/body.ts";
import { SIGNATURE_HEADER, type SignatureVerifier } from "../webhook/signature.ts";
import { FlowDecryptionError, openFlowRequest } from "./crypto.ts";
import { type Flows, InvalidFlowTokenError } from "./flows.ts";
import {
  FlowProtocolError,
  type FlowRequest,
  type FlowScreenAnswer,
  readEncryptedBody,
  readFlowRequest,
} from "./protocol.ts";

/** Meta's status for a request that cannot be decrypted: the client refreshes the public key. */
export const STATUS_CANNOT_DECRYPT = 421;
/** Meta's status for a flow token that is not valid: the client closes the flow. */
export const STATUS_INVALID_FLOW_TOKEN = 427;
/** Meta's status for a request whose signature fails. */
export const STATUS_BAD_SIGNATURE = 432;

/** Options for {@linkcode createFlowsEndpoint}. */
export interface FlowsEndpointOptions {
  /** The business private key, imported for RSA-OAEP (`keys.ts`). */
  privateKey: CryptoKey;
  /** The screen handlers. */
  flows: Flows;
  /** Checks `X-Hub-Signature-256` against the app secrets, as for the webhook. */
  verifier: SignatureVerifier;
  /** The bounds of the body read: the app's, as for the webhook. */
  bodyLimits: ReadBodyOptions;
  metrics: FlowMetrics;
  /** A monotonic time in ms for the handler latency; defaults to `performance.now`. */
  now?: () => number;
}

/** Why a request ended the way it did, for the metric; set as the request is read. */
interface _Progress {
  action: FlowRequestAction;
}

/** Handles `POST` on the Flows path (`FLOWS_PATH`). */
export function createFlowsEndpoint(options: FlowsEndpointOptions): RouteHandler {
  const { metrics } = options;
  const now = options.now ?? (() => performance.now());
  return async (request, { log }) => {
    const progress: _Progress = { action: "unknown" };
    try {
      const response = await _exchange(request, log, progress, options, now);
      metrics.observeRequest(
        progress.action,
        response.status === STATUS_INVALID_FLOW_TOKEN ? "invalid_token" : "answered",
      );
      return response;
    } catch (error) {
      metrics.observeRequest(progress.action, _refusedOutcome(error));
      throw error;
    }
  };
}

async function _exchange(
  request: Request,
  log: Logger,
  progress: _Progress,
  options: FlowsEndpointOptions,
  now: () => number,
): Promise<Response> {
  const body = await readBoundedBody(request, options.bodyLimits);
  const check = await withSpan("flows.verify", async (span) => {
    const check = await options.verifier.verify(request.headers.get(SIGNATURE_HEADER), body);
    span.setAttribute("wa.signature.outcome", check.valid ? "valid" : check.failure);
    return check;
  }, { attributes: { "wa.body.bytes": body.byteLength } });
  if (!check.valid) throw new HttpError(STATUS_BAD_SIGNATURE, check.reason);

  const opened = await withSpan("flows.decrypt", async () => {
    try {
      return await openFlowRequest(options.privateKey, readEncryptedBody(body));
    } catch (error) {
      if (error instanceof FlowProtocolError) throw new HttpError(400, error.message);
      if (error instanceof FlowDecryptionError) {
        throw new HttpError(
          STATUS_CANNOT_DECRYPT,
          `Cannot decrypt the Flows request: ${error.message}`,
        );
      }
      throw error;
    }
  });
  let flowRequest: FlowRequest;
  try {
    flowRequest = readFlowRequest(opened.text);
  } catch (error) {
    if (error instanceof FlowProtocolError) throw new HttpError(400, error.message);
    throw error;
  }
  progress.action = flowRequest.kind === "screen" ? flowRequest.action : flowRequest.kind;

  const answer = await _answer(flowRequest, log, options, now);
  if (answer instanceof Response) return answer;
  const sealed = await withSpan("flows.encrypt", () => opened.seal(answer));
  log.debug("flow request answered", {
    action: progress.action,
    ...("screen" in flowRequest ? { screen: flowRequest.screen } : {}),
    ...("screen" in answer && typeof answer.screen === "string" ? { next: answer.screen } : {}),
  });
  return new Response(sealed, { headers: { "Content-Type": "text/plain; charset=utf-8" } });
}

/** The clear answer to a request, or the 427 response. */
async function _answer(
  request: FlowRequest,
  log: Logger,
  options: FlowsEndpointOptions,
  now: () => number,
): Promise<Record<string, unknown> | Response> {
  if (request.kind === "ping") return { data: { status: "active" } };
  const flow = options.flows.flowOf(request.flowToken);
  const where = {
    action: request.action,
    ...(request.screen === undefined ? {} : { screen: clipForReason(request.screen) }),
    ...(flow === undefined ? {} : { flow: clipForReason(flow) }),
  };
  if (request.kind === "error_notification") {
    // Meta's key says what went wrong; its message may quote the data, so it stays at debug.
    log.warn("flow error notification", { ...where, error: clipForReason(request.error) });
    log.debug("flow error notification message", { errorMessage: request.errorMessage });
    const onError = options.flows.errorNotificationHandler;
    if (onError) {
      try {
        await onError({
          action: request.action,
          screen: request.screen,
          error: request.error,
          errorMessage: request.errorMessage,
          flowToken: request.flowToken,
          flow,
          log,
        });
      } catch (error) {
        log.error("flow error notification handler failed", { ...where, error });
      }
    }
    return { data: { acknowledged: true } };
  }

  const handler = options.flows.handlerFor(request.action, request.screen, flow);
  if (!handler) {
    const on = request.screen === undefined ? "" : ` on screen "${clipForReason(request.screen)}"`;
    throw new _NoHandlerError(
      `No flow handler for ${request.action}${on}: register one on the Flows passed to the service`,
    );
  }
  const started = now();
  let answer: FlowScreenAnswer;
  try {
    answer = await withSpan("flows.handler", () =>
      handler({
        action: request.action,
        screen: request.screen as string,
        data: request.data,
        flowToken: request.flowToken,
        flow,
        version: request.version,
        log,
      }), {
      attributes: {
        "wa.flow.action": request.action,
        ...(request.screen === undefined ? {} : { "wa.flow.screen": where.screen }),
      },
    });
  } catch (error) {
    options.metrics.observeHandler(request.action, now() - started);
    if (error instanceof InvalidFlowTokenError) {
      log.warn("flow token refused", { ...where, reason: "the handler refused the flow token" });
      return Response.json({ error_msg: error.message }, { status: STATUS_INVALID_FLOW_TOKEN });
    }
    log.error("flow handler failed", { ...where, error });
    throw new _HandlerError(
      `The flow handler for ${request.action} failed; its error is in the service's log`,
    );
  }
  options.metrics.observeHandler(request.action, now() - started);
  if (typeof answer?.screen !== "string" || answer.screen === "") {
    log.error("flow handler failed", { ...where, error: "it answered without a screen" });
    throw new _HandlerError(`The flow handler for ${request.action} answered without a screen`);
  }
  return { screen: answer.screen, data: answer.data ?? {} };
}

/** A handler failed or answered nothing usable: 500, the reason in the log. */
class _HandlerError extends HttpError {
  constructor(reason: string) {
    super(500, reason);
  }
}

/** No handler is registered for the request: 500, the reason says which to register. */
class _NoHandlerError extends HttpError {
  constructor(reason: string) {
    super(500, reason);
  }
}

function _refusedOutcome(error: unknown): FlowRequestOutcome {
  if (error instanceof _NoHandlerError) return "no_handler";
  if (error instanceof _HandlerError) return "handler_error";
  const status = error instanceof HttpError ? error.status : 500;
  if (status === STATUS_BAD_SIGNATURE) return "rejected_signature";
  if (status === STATUS_CANNOT_DECRYPT) return "undecryptable";
  if (status === 400) return "bad_request";
  if (status === 413) return "too_large";
  if (status === 408) return "timed_out";
  if (status === 499) return "aborted";
  return "unavailable";
}
