/**
 * The WhatsApp Cloud API client: `POST {baseUrl}/{version}/{phoneNumberId}/messages` with typed
 * helpers for a text reply, mark-as-read (with the typing indicator) and any other message.
 *
 * Every call is paced (token bucket per phone number id, spacing per recipient after a pair rate
 * error), bounded by a timeout, and retried with full-jitter backoff while its error is retryable
 * and the attempt and time caps allow; it then fails with a {@linkcode GraphApiError} whose
 * category tells the caller what to do next. Messages to one recipient go one at a time, in call
 * order, retries included, so a user receives them in the order they were sent.
 *
 * A message whose outcome is unknown is not retried: a timeout, or the connection lost after the
 * request was written, may follow Meta's acceptance, and the Cloud API has no idempotency key, so
 * a retry could deliver the message twice. The call fails with category `unknown_outcome` and the
 * caller decides (the echo handler sends once more at most, and remembers it durably). Only a
 * failure that certainly sent nothing (the connection refused, a DNS failure: Deno reports both as
 * a connect error) or an answer from Meta is retried here. Read receipts are idempotent, so their
 * unknown outcomes are retried like transient errors.
 *
 * @module
 */

import { z } from "zod";
import { type Clock, systemClock } from "../ops/clock.ts";
import { DEFAULTS } from "../config.ts";
import { type Logger, silentLogger } from "../ops/log.ts";
import { addSpanEvent, withSpan } from "../ops/telemetry.ts";
import { redactToken, transportError, unreadableSuccess } from "./transport_errors.ts";
import {
  GraphApiError,
  type GraphErrorCategory,
  PAIR_RATE_LIMIT_CODE,
  readGraphError,
} from "./errors.ts";
import {
  type OutboundMessage,
  recipientFields,
  type RecipientIdentity,
} from "./outbound_message.ts";
import { createRateLimiter, type RecipientTurn } from "./rate_limit.ts";
import {
  backoffDelayMs,
  DEFAULT_RETRY_OPTIONS,
  parseRetryAfter,
  type RetryOptions,
} from "./retry.ts";

/** Options every call accepts. */
export interface CallOptions {
  /** Aborts waiting and the request in flight; the call rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Options for {@linkcode GraphClient.sendText}. */
export interface SendTextOptions extends CallOptions {
  /** A phone number or BSUID (see {@linkcode recipientFields}), or both as known. */
  to: string | RecipientIdentity;
  /** The message body (Meta's limit: 4096 characters). */
  text: string;
  /** The id (`wamid`) of the message this one replies to and quotes. */
  replyTo?: string;
  /** Whether WhatsApp renders a preview of the first link. */
  previewUrl?: boolean;
  /** Comes back in the status webhooks of this message. */
  bizOpaqueCallbackData?: string;
}

/** Options for {@linkcode GraphClient.markAsRead}. */
export interface MarkAsReadOptions extends CallOptions {
  /** Also show "typing…" until the reply, or for 25 seconds. */
  typingIndicator?: boolean;
}

/** What Meta answered to an accepted message. Accepted is not delivered: statuses tell that. */
export interface SendMessageResult {
  /** The `wamid` that statuses of this message will refer to. */
  messageId: string;
  /** `accepted`, or e.g. `held_for_quality_assessment`, when Meta says. */
  messageStatus?: string;
  /** The recipient as Meta resolved it. */
  contact?: { input: string; waId?: string; userId?: string };
}

/** One HTTP attempt, as reported to {@linkcode GraphClientOptions.onCall} (for metrics). */
export interface GraphCallOutcome {
  phoneNumberId: string;
  /** 1 for the first try. */
  attempt: number;
  /** `ok`, or the category of the error. */
  outcome: "ok" | GraphErrorCategory;
  /** Absent when no response arrived. */
  httpStatus?: number;
  /** Meta's error code, when the answer had one. */
  code?: number;
  /** From sending to the end of the answer, by the client's clock. */
  durationMs: number;
}

/** Options for {@linkcode createGraphClient}. */
export interface GraphClientOptions {
  /**
   * The access token for every phone number without its own. Never logged. Empty when every
   * number has its own: a call for another number then fails as `auth` without a request.
   */
  token: string;
  /** Tokens by phone number id, for several numbers behind one service. */
  tokensByPhoneNumberId?: Record<string, string>;
  /** Defaults to `DEFAULTS.graphApiBaseUrl` of `config.ts`, Meta's Graph API host. */
  baseUrl?: string;
  /** Defaults to `DEFAULTS.graphApiVersion` of `config.ts`, the newest in the reference. */
  version?: string;
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
  /** Time for timeouts, backoff and pacing; defaults to the system clock. */
  clock?: Clock;
  /** Defaults to a silent logger. */
  logger?: Logger;
  /** Returns a number in [0, 1) for the backoff jitter; defaults to `Math.random`. */
  random?: () => number;
  /** How long one request may take; defaults to `DEFAULTS.graphTimeoutMs` of `config.ts`. */
  timeoutMs?: number;
  /** Overrides parts of `DEFAULT_RETRY_OPTIONS`. */
  retry?: Partial<RetryOptions>;
  /** Throughput per phone number id; defaults to `DEFAULTS.graphMessagesPerSecond`, Meta's. */
  messagesPerSecond?: number;
  /** Told about every HTTP attempt; an observer that throws is logged and ignored. */
  onCall?: (outcome: GraphCallOutcome) => void;
}

/** Sends through the Cloud API; see {@linkcode createGraphClient}. */
export interface GraphClient {
  /**
   * Sends any message. Resolves with Meta's acceptance.
   *
   * @throws {GraphApiError} when Meta refuses it, or when retries ran out.
   */
  sendMessage(
    phoneNumberId: string,
    message: OutboundMessage,
    options?: CallOptions,
  ): Promise<SendMessageResult>;
  /**
   * Sends a text message, quoting `replyTo` when given.
   *
   * @throws {GraphApiError} as {@linkcode GraphClient.sendMessage}.
   */
  sendText(phoneNumberId: string, options: SendTextOptions): Promise<SendMessageResult>;
  /**
   * Marks an inbound message (and the ones before it) as read, optionally showing the typing
   * indicator. Not paced per recipient: it is not a message to the user.
   *
   * @throws {GraphApiError} as {@linkcode GraphClient.sendMessage}.
   */
  markAsRead(phoneNumberId: string, messageId: string, options?: MarkAsReadOptions): Promise<void>;
}

const SentMessageSchema = z.object({
  id: z.string().min(1),
  message_status: z.string().optional(),
});

/** Meta's answer to an accepted message (reference §8.3); unknown fields are ignored. */
const SendResponseSchema = z.object({
  messages: z.tuple([SentMessageSchema], SentMessageSchema),
  contacts: z.array(
    z.object({ input: z.string(), wa_id: z.string().optional(), user_id: z.string().optional() }),
  ).optional(),
});

const MarkAsReadResponseSchema = z.object({ success: z.literal(true) });

/** Creates a client. No request is made until a method is called. */
export function createGraphClient(options: GraphClientOptions): GraphClient {
  const baseUrl = (options.baseUrl ?? DEFAULTS.graphApiBaseUrl).replace(/\/+$/, "");
  const version = options.version ?? DEFAULTS.graphApiVersion;
  const fetchFn = options.fetch ?? fetch;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger;
  const random = options.random ?? Math.random;
  const timeoutMs = options.timeoutMs ?? DEFAULTS.graphTimeoutMs;
  const retry: RetryOptions = { ...DEFAULT_RETRY_OPTIONS, ...options.retry };
  const limiter = createRateLimiter({
    clock,
    messagesPerSecond: options.messagesPerSecond ?? DEFAULTS.graphMessagesPerSecond,
  });

  function tokenFor(phoneNumberId: string): string {
    return options.tokensByPhoneNumberId?.[phoneNumberId] ?? options.token;
  }

  /** One HTTP attempt: resolves with the JSON of a 2xx answer, or throws a GraphApiError. */
  async function post(
    phoneNumberId: string,
    body: Record<string, unknown>,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    const token = tokenFor(phoneNumberId);
    if (token === "") {
      throw new GraphApiError({
        message: `No access token for phone number id "${phoneNumberId}"`,
        category: "auth",
      });
    }
    const url = `${baseUrl}/${version}/${encodeURIComponent(phoneNumberId)}/messages`;
    const request = new AbortController();
    const stopTimer = new AbortController();
    let hasTimedOut = false;
    let answeredStatus: number | undefined; // set once the answer's status line arrived
    const onCallerAbort = (): void => request.abort(signal?.reason);
    signal?.addEventListener("abort", onCallerAbort, { once: true });
    clock.sleep(timeoutMs, stopTimer.signal).then(() => {
      hasTimedOut = true;
      request.abort();
    }, () => {});
    try {
      const response = await fetchFn(url, {
        method: "POST",
        headers: { "Authorization": `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
        signal: request.signal,
      });
      answeredStatus = response.status;
      const text = redactToken(await response.text(), token);
      if (response.ok) return _parseJsonOrUndefined(text);
      const retryAfterMs = parseRetryAfter(response.headers.get("Retry-After"), clock.now());
      throw readGraphError(response.status, text, retryAfterMs);
    } catch (error) {
      if (error instanceof GraphApiError) throw error;
      if (signal?.aborted) throw signal.reason;
      throw transportError(error, { token, timeoutMs, hasTimedOut, answeredStatus });
    } finally {
      stopTimer.abort();
      signal?.removeEventListener("abort", onCallerAbort);
    }
  }

  /**
   * Paces, sends and retries one call; `recipient` is set for messages to a user. `isIdempotent`
   * (a read receipt) lets an unknown outcome be retried: sending it twice changes nothing.
   */
  async function call(
    phoneNumberId: string,
    body: Record<string, unknown>,
    recipient: string | undefined,
    signal: AbortSignal | undefined,
    isIdempotent = false,
  ): Promise<unknown> {
    const operation = String(body.type ?? body.status);
    return await withSpan("graph.call", async (span) => {
      const turn = recipient === undefined
        ? undefined
        : await limiter.takeTurn(phoneNumberId, recipient, signal);
      try {
        const result = await callInTurn(phoneNumberId, body, turn, signal, isIdempotent);
        span.setAttribute("wa.graph.outcome", "ok");
        return result;
      } catch (error) {
        if (error instanceof GraphApiError) {
          span.setAttributes({
            "wa.graph.outcome": error.category,
            ...(error.code === undefined ? {} : { "wa.graph.error_code": error.code }),
          });
        }
        throw error;
      } finally {
        turn?.release();
      }
    }, { attributes: { "wa.phone_number_id": phoneNumberId, "wa.graph.operation": operation } });
  }

  async function callInTurn(
    phoneNumberId: string,
    body: Record<string, unknown>,
    turn: RecipientTurn | undefined,
    signal: AbortSignal | undefined,
    isIdempotent: boolean,
  ): Promise<unknown> {
    const log = logger.child({ phoneNumberId, type: body.type ?? body.status });
    let firstTryAt: number | undefined;
    for (let attempt = 1;; attempt++) {
      await turn?.waitForSpacing(signal);
      await limiter.acquire(phoneNumberId, signal);
      const startedAt = clock.now();
      firstTryAt ??= startedAt;
      try {
        const result = await post(phoneNumberId, body, signal);
        turn?.recordDelivered();
        observe({ phoneNumberId, attempt, outcome: "ok", durationMs: clock.now() - startedAt });
        log.debug("graph call succeeded", { attempt });
        return result;
      } catch (error) {
        if (!(error instanceof GraphApiError)) throw error;
        observe({
          phoneNumberId,
          attempt,
          outcome: error.category,
          durationMs: clock.now() - startedAt,
          ...(error.httpStatus === undefined ? {} : { httpStatus: error.httpStatus }),
          ...(error.code === undefined ? {} : { code: error.code }),
        });
        const fields = _errorFields(error, attempt);
        if (error.category === "auth") {
          log.error("graph call refused: access token or permission", fields);
          throw error;
        }
        const isUnknownOutcome = error.category === "unknown_outcome";
        if (isUnknownOutcome && !isIdempotent) {
          log.warn("graph call outcome unknown: not retried, Meta may have accepted it", fields);
          throw error;
        }
        if (!error.retryable && !isUnknownOutcome) {
          log.debug("graph call failed", fields);
          throw error;
        }
        // After a pair rate error the recipient's spacing is the wait (`waitForSpacing`).
        const pairSpacingMs = error.code === PAIR_RATE_LIMIT_CODE
          ? turn?.recordPairRateLimit()
          : undefined;
        const sleepMs = error.retryAfterMs ??
          (pairSpacingMs === undefined ? backoffDelayMs(attempt - 1, retry, random) : 0);
        const delayMs = Math.max(sleepMs, pairSpacingMs ?? 0);
        const elapsedMs = clock.now() - firstTryAt;
        if (attempt >= retry.maxAttempts || elapsedMs + delayMs > retry.maxTotalMs) {
          log.warn("graph call gave up", { ...fields, elapsedMs, delayMs });
          throw error;
        }
        log.warn("graph call will be retried", { ...fields, delayMs });
        if (sleepMs > 0) await clock.sleep(sleepMs, signal);
      }
    }
  }

  function observe(outcome: GraphCallOutcome): void {
    addSpanEvent("graph.attempt", {
      "wa.attempt": outcome.attempt,
      "wa.graph.outcome": outcome.outcome,
      "wa.duration_ms": outcome.durationMs,
      ...(outcome.httpStatus === undefined
        ? {}
        : { "http.response.status_code": outcome.httpStatus }),
      ...(outcome.code === undefined ? {} : { "wa.graph.error_code": outcome.code }),
    });
    if (!options.onCall) return;
    try {
      options.onCall(outcome);
    } catch (error) {
      logger.warn("graph call observer threw", { error });
    }
  }

  async function sendMessage(
    phoneNumberId: string,
    message: OutboundMessage,
    callOptions: CallOptions = {},
  ): Promise<SendMessageResult> {
    const recipient = message.to ?? message.recipient;
    const answer = await call(
      phoneNumberId,
      { messaging_product: "whatsapp", ...message },
      recipient,
      callOptions.signal,
    );
    const parsed = SendResponseSchema.safeParse(answer);
    if (!parsed.success) throw unreadableSuccess();
    return _toSendResult(parsed.data);
  }

  function sendText(
    phoneNumberId: string,
    textOptions: SendTextOptions,
  ): Promise<SendMessageResult> {
    const message: OutboundMessage = {
      ...recipientFields(textOptions.to),
      recipient_type: "individual",
      type: "text",
      text: {
        body: textOptions.text,
        ...(textOptions.previewUrl === undefined ? {} : { preview_url: textOptions.previewUrl }),
      },
      ...(textOptions.replyTo === undefined
        ? {}
        : { context: { message_id: textOptions.replyTo } }),
      ...(textOptions.bizOpaqueCallbackData === undefined
        ? {}
        : { biz_opaque_callback_data: textOptions.bizOpaqueCallbackData }),
    };
    return sendMessage(
      phoneNumberId,
      message,
      textOptions.signal ? { signal: textOptions.signal } : {},
    );
  }

  async function markAsRead(
    phoneNumberId: string,
    messageId: string,
    readOptions: MarkAsReadOptions = {},
  ): Promise<void> {
    const body = {
      messaging_product: "whatsapp",
      status: "read",
      message_id: messageId,
      ...(readOptions.typingIndicator ? { typing_indicator: { type: "text" } } : {}),
    };
    const answer = await call(phoneNumberId, body, undefined, readOptions.signal, true);
    if (!MarkAsReadResponseSchema.safeParse(answer).success) throw unreadableSuccess();
  }

  return { sendMessage, sendText, markAsRead };
}

type _SendResponse = z.infer<typeof SendResponseSchema>;

function _toSendResult(response: _SendResponse): SendMessageResult {
  const [message] = response.messages;
  const contact = response.contacts?.[0];
  return {
    messageId: message.id,
    ...(message.message_status === undefined ? {} : { messageStatus: message.message_status }),
    ...(contact === undefined ? {} : {
      contact: {
        input: contact.input,
        ...(contact.wa_id === undefined ? {} : { waId: contact.wa_id }),
        ...(contact.user_id === undefined ? {} : { userId: contact.user_id }),
      },
    }),
  };
}

function _errorFields(error: GraphApiError, attempt: number): Record<string, unknown> {
  return {
    attempt,
    category: error.category,
    code: error.code,
    subcode: error.subcode,
    httpStatus: error.httpStatus,
    fbtraceId: error.fbtraceId,
    reason: error.message,
  };
}

function _parseJsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
