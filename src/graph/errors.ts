/**
 * Graph API failures as one typed error. Meta's error body (`error.code`, `error_subcode`,
 * `error_data.details`, `fbtrace_id`), an HTTP status without a readable body, a network error or
 * a timeout all become a {@linkcode GraphApiError} whose `category` says what to do next.
 *
 * Classification reads Meta's error code first and the HTTP status second: Meta answers its
 * throttling codes (4, 80007, 130429, 131056, …) with HTTP 400, so a status-only rule would treat
 * them as permanent, and a rule that retries every 4xx would hammer Meta.
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
 */
export type GraphErrorCategory =
  | "throttled"
  | "transient"
  | "recipient"
  | "policy"
  | "auth"
  | "invalid_request";

/** The categories the client retries by itself. */
export const RETRYABLE_CATEGORIES: ReadonlySet<GraphErrorCategory> = new Set([
  "throttled",
  "transient",
]);

/**
 * Meta's error codes by category (reference §9.3). A code missing here is classified by its HTTP
 * status instead.
 */
export const GRAPH_ERROR_CODES: Readonly<Record<GraphErrorCategory, readonly number[]>> = {
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
  /** Meta's `error.error_data.details`: the most specific explanation. */
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
  /** Meta's `error.error_data.details`. */
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
    return new GraphApiError({
      message: excerpt === ""
        ? `Graph API answered HTTP ${httpStatus} with an empty body`
        : `Graph API answered HTTP ${httpStatus} with a body that is not a Graph error: "${excerpt}"`,
      httpStatus,
      retryAfterMs,
    });
  }
  const { error } = parsed.data;
  const category = classifyGraphError(error.code, httpStatus);
  const codeText = error.code === undefined ? "an error" : `error ${error.code}`;
  const reason = error.error_data?.details ?? error.message ?? "no message";
  return new GraphApiError({
    message: `Graph API answered HTTP ${httpStatus} with ${codeText} (${category}): ${reason}`,
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
