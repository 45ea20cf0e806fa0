/**
 * Graph API failures as one typed error. Meta's error body (`error.code`, `error_subcode`,
 * `error_data.details`, `fbtrace_id`), an HTTP status without a readable body, a network error or
 * a timeout all become a {@linkcode GraphApiError} whose `category` says what to do next.
 *
 * Classification reads Meta's error code first and the HTTP status second: Meta answers its
 * throttling codes (4, 80007, 130429, 131056, …) with HTTP 400, so a status-only rule would treat
 * them as permanent, and a rule that retries every 4xx would hammer Meta.
 *
 * An error's `message` goes into logs and event records, so it never quotes Meta's `message` or
 * `error_data.details`: those may quote the text that was sent. It holds the HTTP status, Meta's
 * code, the category and the code's title from {@linkcode GRAPH_ERROR_TITLES}; the details stay
 * in the error's `details` field for code that needs them.
 *
 * @module
 */

import { z } from "zod";

/**
 * What a failed call means for the caller.
 *
 * - `throttled`: a rate limit was hit (per app, WABA, number or recipient); retry later.
 * - `transient`: Meta or the network failed for a while; retry with backoff.
 * - `recipient`: this recipient cannot get this message now (24-hour window closed,
 *   undeliverable, not allowed); never retry as is.
 * - `policy`: Meta's rules or the business account's standing forbid the send (opt-out, marketing
 *   limits, blocks, billing, registration); never retry as is.
 * - `auth`: the token is invalid or lacks permission; never retry; an operator must act.
 * - `invalid_request`: the request itself is wrong (bad parameter, unknown template); never retry.
 * - `unknown_outcome`: the request was sent but no answer says what became of it (a timeout, the
 *   connection lost after the request was written, a gateway timeout, an unreadable success):
 *   Meta may have accepted it, and the Cloud API has no idempotency key, so sending it again may
 *   deliver it twice. The client retries it only for idempotent calls (mark-as-read); for a
 *   message the caller decides (the echo handler sends it once more at most).
 */
export type GraphErrorCategory =
  | "throttled"
  | "transient"
  | "recipient"
  | "policy"
  | "auth"
  | "invalid_request"
  | "unknown_outcome";

/** The categories the client retries by itself. */
export const RETRYABLE_CATEGORIES: ReadonlySet<GraphErrorCategory> = new Set([
  "throttled",
  "transient",
]);

/**
 * Meta's error codes by category (reference §9.3). A code missing here is classified by its HTTP
 * status instead.
 */
export const GRAPH_ERROR_CODES: Readonly<
  Record<Exclude<GraphErrorCategory, "unknown_outcome">, readonly number[]>
> = {
  throttled: [4, 17, 341, 80007, 130429, 131048, 131056, 132069],
  transient: [1, 2, 131000, 131016, 131057, 133004],
  recipient: [131021, 131026, 131030, 131047, 137000],
  policy: [
    368,
    130472,
    130497,
    131031,
    131037,
    131042,
    131045,
    131049,
    131050,
    131063,
    131064,
    132015,
    132016,
    133000,
    133005,
    133006,
    133010,
  ],
  auth: [0, 3, 10, 190, 131005],
  invalid_request: [
    33,
    100,
    131008,
    131009,
    131051,
    131052,
    131053,
    131062,
    132000,
    132001,
    132005,
    132007,
    132008,
    132012,
    132068,
    135000,
  ],
};

/**
 * Meta's title of each code it documents (reference §9.3), written here rather than read from the
 * answer: Meta's `message` and `details` may quote the text that was sent, and error messages end
 * up in logs and event records.
 */
export const GRAPH_ERROR_TITLES: ReadonlyMap<number, string> = new Map([
  [0, "AuthException"],
  [1, "API Unknown"],
  [2, "API Service"],
  [3, "API Method"],
  [4, "API Too Many Calls"],
  [10, "Permission denied"],
  [17, "API User Too Many Calls"],
  [33, "Parameter value is not valid"],
  [100, "Invalid parameter"],
  [190, "Access token has expired"],
  [341, "Application limit reached"],
  [368, "Temporarily blocked for policies violations"],
  [80007, "Rate limit issues"],
  [130429, "Rate limit hit"],
  [130472, "User's number is part of an experiment"],
  [130497, "Business account is restricted from messaging users in this country"],
  [131000, "Something went wrong"],
  [131005, "Access denied"],
  [131008, "Required parameter is missing"],
  [131009, "Parameter value is not valid"],
  [131016, "Service unavailable"],
  [131021, "Recipient cannot be sender"],
  [131026, "Message undeliverable"],
  [131030, "Recipient phone number not in allowed list"],
  [131031, "Business account locked"],
  [131037, "Display name approval needed"],
  [131042, "Business eligibility payment issue"],
  [131045, "Incorrect certificate"],
  [131047, "Re-engagement message"],
  [131048, "Spam rate limit hit"],
  [131049, "Not delivered to maintain healthy ecosystem engagement"],
  [131050, "User stopped marketing messages"],
  [131051, "Unsupported message type"],
  [131052, "Media download error"],
  [131053, "Media upload error"],
  [131056, "Pair rate limit hit"],
  [131057, "Account in maintenance mode"],
  [131062, "Business-scoped user id recipients not supported"],
  [131063, "Marketing templates disabled on Cloud API"],
  [131064, "Messaging limit after template category violations"],
  [132000, "Template parameter count mismatch"],
  [132001, "Template does not exist"],
  [132005, "Template hydrated text too long"],
  [132007, "Template format character policy violated"],
  [132008, "Template parameter format mismatch"],
  [132012, "Template parameter format mismatch"],
  [132015, "Template is paused"],
  [132016, "Template is disabled"],
  [132068, "Flow is blocked"],
  [132069, "Flow is throttled"],
  [133000, "Incomplete deregistration"],
  [133004, "Server temporarily unavailable"],
  [133005, "Two-step verification PIN mismatch"],
  [133006, "Phone number re-verification needed"],
  [133010, "Phone number not registered"],
  [135000, "Generic user error"],
  [137000, "Identity key mismatch"],
]);

/** Meta's pair rate limit: too many messages to one recipient. */
export const PAIR_RATE_LIMIT_CODE = 131056;

/** Graph "permission not granted" errors are the range 200–299. */
const PERMISSION_CODE_MIN = 200;
const PERMISSION_CODE_MAX = 299;
/** Flows management errors are the range 139000–139004. */
const FLOWS_CODE_MIN = 139000;
const FLOWS_CODE_MAX = 139004;
/** How much of an unreadable body goes into an error message: enough to recognise a proxy page. */
const BODY_EXCERPT_CHARS = 200;
/**
 * A gateway's "timed out waiting for the server behind me": that server may have taken the
 * message, so a bare 504 (without Meta's error body) leaves the outcome unknown.
 */
const GATEWAY_TIMEOUT_STATUS = 504;

const _CATEGORY_BY_CODE: ReadonlyMap<number, GraphErrorCategory> = new Map(
  Object.entries(GRAPH_ERROR_CODES).flatMap(([category, codes]) =>
    codes.map((code) => [code, category as GraphErrorCategory] as const)
  ),
);

/**
 * The category of a failure: by Meta's `code` when it is a known one, else by HTTP status (429
 * throttled; 401 and 403 auth; 408 and 5xx transient; other 4xx invalid request). With neither
 * (a network error), the failure is transient.
 */
export function classifyGraphError(
  code: number | undefined,
  httpStatus: number | undefined,
): GraphErrorCategory {
  if (code !== undefined) {
    const known = _CATEGORY_BY_CODE.get(code);
    if (known) return known;
    if (code >= PERMISSION_CODE_MIN && code <= PERMISSION_CODE_MAX) return "auth";
    if (code >= FLOWS_CODE_MIN && code <= FLOWS_CODE_MAX) return "invalid_request";
  }
  if (httpStatus === undefined) return "transient";
  if (httpStatus === 429) return "throttled";
  if (httpStatus === 401 || httpStatus === 403) return "auth";
  if (httpStatus === 408 || httpStatus >= 500) return "transient";
  if (httpStatus >= 400) return "invalid_request";
  return "transient";
}

/** Fields of a {@linkcode GraphApiError}; `category` and `retryable` are derived when omitted. */
export interface GraphApiErrorInit {
  /** Sentence-case reason for people and logs. */
  message: string;
  /** Defaults to {@linkcode classifyGraphError} of `code` and `httpStatus`. */
  category?: GraphErrorCategory;
  /** Defaults to whether `category` is in {@linkcode RETRYABLE_CATEGORIES}. */
  retryable?: boolean;
  /** Meta's `error.code`. */
  code?: number | undefined;
  /** Meta's `error.error_subcode`. */
  subcode?: number | undefined;
  /** Meta's `error.type`, e.g. `OAuthException`. */
  type?: string | undefined;
  /**
   * Meta's `error.error_data.details`: the most specific explanation. It may quote the text that
   * was sent: never put it in a log line or a message.
   */
  details?: string | undefined;
  /** Meta's `error.fbtrace_id`, to quote to Meta support. */
  fbtraceId?: string | undefined;
  /** The HTTP status; absent when no response arrived. */
  httpStatus?: number | undefined;
  /** How long the response's `Retry-After` asked to wait, in milliseconds. */
  retryAfterMs?: number | undefined;
  /** The underlying error (network failure, abort). */
  cause?: unknown;
}

/** Any failed Graph API call: an error answer, an unreadable answer, a network error or a timeout. */
export class GraphApiError extends Error {
  override readonly name = "GraphApiError";
  /** What the failure means; see {@linkcode GraphErrorCategory}. */
  readonly category: GraphErrorCategory;
  /** Whether sending the same request again may succeed. */
  readonly retryable: boolean;
  /** Meta's `error.code`, if the body had one. */
  readonly code: number | undefined;
  /** Meta's `error.error_subcode`. */
  readonly subcode: number | undefined;
  /** Meta's `error.type`. */
  readonly type: string | undefined;
  /** Meta's `error.error_data.details`; may quote the text that was sent, so never logged. */
  readonly details: string | undefined;
  /** Meta's `error.fbtrace_id`. */
  readonly fbtraceId: string | undefined;
  /** The HTTP status, or `undefined` when no response arrived. */
  readonly httpStatus: number | undefined;
  /** The wait the response's `Retry-After` header asked for, in milliseconds. */
  readonly retryAfterMs: number | undefined;

  /** Builds the error; see {@linkcode GraphApiErrorInit} for the defaults. */
  constructor(init: GraphApiErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.subcode = init.subcode;
    this.type = init.type;
    this.details = init.details;
    this.fbtraceId = init.fbtraceId;
    this.httpStatus = init.httpStatus;
    this.retryAfterMs = init.retryAfterMs;
    this.category = init.category ?? classifyGraphError(init.code, init.httpStatus);
    this.retryable = init.retryable ?? RETRYABLE_CATEGORIES.has(this.category);
  }
}

/**
 * Meta's error body. Every field is optional and a field of the wrong type is dropped, so a body
 * that drifts from the documented shape still yields what it can.
 */
const GraphErrorBodySchema = z.object({
  error: z.object({
    message: z.string().optional().catch(undefined),
    type: z.string().optional().catch(undefined),
    code: z.number().int().optional().catch(undefined),
    error_subcode: z.number().int().optional().catch(undefined),
    error_data: z.object({ details: z.string().optional().catch(undefined) }).optional()
      .catch(undefined),
    fbtrace_id: z.string().optional().catch(undefined),
  }),
});

/** Meta's error body, as read by {@linkcode readGraphError}. */
export type GraphErrorBody = z.infer<typeof GraphErrorBodySchema>;

/**
 * Turns a non-2xx answer into a {@linkcode GraphApiError}. `bodyText` may be anything: Meta's JSON
 * error, an empty body, or a proxy's HTML page; `retryAfterMs` comes from the response's
 * `Retry-After` header (see `parseRetryAfter`).
 */
export function readGraphError(
  httpStatus: number,
  bodyText: string,
  retryAfterMs?: number,
): GraphApiError {
  const parsed = GraphErrorBodySchema.safeParse(_parseJson(bodyText));
  if (!parsed.success) {
    const excerpt = bodyText.trim().slice(0, BODY_EXCERPT_CHARS);
    const isGatewayTimeout = httpStatus === GATEWAY_TIMEOUT_STATUS;
    return new GraphApiError({
      message: excerpt === ""
        ? `Graph API answered HTTP ${httpStatus} with an empty body`
        : `Graph API answered HTTP ${httpStatus} with a body that is not a Graph error: "${excerpt}"`,
      httpStatus,
      retryAfterMs,
      ...(isGatewayTimeout ? { category: "unknown_outcome" as const } : {}),
    });
  }
  const { error } = parsed.data;
  const category = classifyGraphError(error.code, httpStatus);
  const codeText = error.code === undefined ? "an error" : `error ${error.code}`;
  const title = error.code === undefined ? undefined : GRAPH_ERROR_TITLES.get(error.code);
  return new GraphApiError({
    message: `Graph API answered HTTP ${httpStatus} with ${codeText} (${category})` +
      (title === undefined ? "" : `: ${title}`),
    category,
    code: error.code,
    subcode: error.error_subcode,
    type: error.type,
    details: error.error_data?.details,
    fbtraceId: error.fbtrace_id,
    httpStatus,
    retryAfterMs,
  });
}

function _parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
