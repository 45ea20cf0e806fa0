/**
 * What the doctor asks the Graph API, and the shapes of Meta's answers: `GET /debug_token`,
 * `GET /{app-id}/subscriptions`, `GET /{waba-id}/subscribed_apps` and
 * `GET /{waba-id}/phone_numbers`. Each read is one bounded GET (a time limit, a size limit on the
 * answer) that resolves with the parsed answer or throws a {@linkcode GraphApiError}: Meta's error
 * body read by `graph/errors.ts`, or, when no answer came, an error without `httpStatus`.
 *
 * The schemas are lenient, as Meta's answers drift: a field of an unexpected type is dropped, not
 * fatal. No error text quotes a token or a secret: every secret given is redacted from it.
 *
 * @module
 */
import { z } from "zod";
import { GraphApiError, readGraphError } from "../graph/errors.ts";
import { describeError, isConnectFailure, redactToken } from "../graph/transport_errors.ts";

/**
 * The largest answer read: Meta's answers to these reads are a few kilobytes; a proxy's page or a
 * runaway answer is cut off here.
 */
const MAX_ANSWER_BYTES = 1024 * 1024;

/** The most phone numbers read per WhatsApp Business Account, in one page. */
export const MAX_PHONE_NUMBERS = 100;

/** The phone number fields the doctor reads (Meta returns only `id` and a few without them). */
export const PHONE_NUMBER_FIELDS = [
  "display_phone_number",
  "verified_name",
  "status",
  "quality_rating",
  "messaging_limit_tier",
  "code_verification_status",
  "name_status",
  "platform_type",
  "throughput",
] as const;

/** An id Meta may write as a string or a number. */
const _Id = z.union([z.string(), z.number()]).transform(String);

/** Text, or `undefined` when absent or of another type. */
const _text = () => z.string().optional().catch(undefined);

/** `GET /debug_token?input_token=…`: what Meta knows of the access token. */
const DebugTokenSchema = z.object({
  data: z.object({
    app_id: _Id.optional().catch(undefined),
    type: _text(),
    application: _text(),
    is_valid: z.boolean().catch(false),
    /** Unix seconds; 0 means the token never expires. */
    expires_at: z.number().optional().catch(undefined),
    scopes: z.array(z.string()).catch([]),
    granular_scopes: z.array(z.object({
      scope: z.string(),
      target_ids: z.array(_Id).optional().catch(undefined),
    })).catch([]),
    error: z.object({
      code: z.number().optional().catch(undefined),
      subcode: z.number().optional().catch(undefined),
      message: _text(),
    }).optional().catch(undefined),
  }),
});

/** Meta's answer about the access token. */
export type TokenInfo = z.infer<typeof DebugTokenSchema>["data"];

/** `GET /{app-id}/subscriptions`: the app's webhook subscriptions, one per object. */
const SubscriptionsSchema = z.object({
  data: z.array(z.object({
    object: _text(),
    callback_url: _text(),
    active: z.boolean().optional().catch(undefined),
    fields: z.array(
      z.union([z.string(), z.object({ name: z.string() }).transform(({ name }) => name)]),
    ).catch([]),
  })).catch([]),
});

/** One of the app's webhook subscriptions; `fields` are the subscribed field names. */
export type AppSubscription = z.infer<typeof SubscriptionsSchema>["data"][number];

/** `GET /{waba-id}/subscribed_apps`: the apps that get the account's webhooks. */
const SubscribedAppsSchema = z.object({
  data: z.array(z.object({
    whatsapp_business_api_data: z.object({ id: _Id, name: _text() }).optional().catch(undefined),
    override_callback_uri: _text(),
  })).catch([]),
});

/** One app subscribed to a WhatsApp Business Account. */
export type SubscribedApp = z.infer<typeof SubscribedAppsSchema>["data"][number];

/** `GET /{waba-id}/phone_numbers?fields=…`: the account's business numbers. */
const PhoneNumbersSchema = z.object({
  data: z.array(z.object({
    id: _Id,
    display_phone_number: _text(),
    verified_name: _text(),
    status: _text(),
    quality_rating: _text(),
    messaging_limit_tier: _text(),
    code_verification_status: _text(),
    name_status: _text(),
    platform_type: _text(),
    throughput: z.object({ level: _text() }).optional().catch(undefined),
  })).catch([]),
  paging: z.object({ next: _text() }).optional().catch(undefined),
});

/** A business phone number as Meta describes it. */
export type PhoneNumberInfo = z.infer<typeof PhoneNumbersSchema>["data"][number];

/** The phone numbers of one account, and whether Meta has more than this page. */
export interface PhoneNumbersPage {
  numbers: PhoneNumberInfo[];
  hasMore: boolean;
}

/** What {@linkcode createGraphReads} needs. */
export interface GraphReadsOptions {
  /** `GRAPH_API_BASE_URL`, without a final slash. */
  baseUrl: string;
  /** `GRAPH_API_VERSION`, like `v26.0`. */
  version: string;
  /** The longest one read may take, in milliseconds. */
  timeoutMs: number;
  /** The app token, `{app-id}|{app-secret}`: for `debug_token` and the app's subscriptions. */
  appToken: string;
  /** The access token checked and used for the accounts' reads. */
  token: string;
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
}

/** The doctor's reads; each throws a {@linkcode GraphApiError} when it gets no usable answer. */
export interface GraphReads {
  /** `GET /debug_token?input_token={token}` with the app token. */
  debugToken(): Promise<TokenInfo>;
  /** `GET /{app-id}/subscriptions` with the app token. */
  appSubscriptions(appId: string): Promise<AppSubscription[]>;
  /** `GET /{waba-id}/subscribed_apps` with the access token. */
  subscribedApps(wabaId: string): Promise<SubscribedApp[]>;
  /** `GET /{waba-id}/phone_numbers?fields=…` with the access token. */
  phoneNumbers(wabaId: string): Promise<PhoneNumbersPage>;
}

/** Builds the doctor's reads over the configured Graph API. */
export function createGraphReads(options: GraphReadsOptions): GraphReads {
  const { baseUrl, version, timeoutMs, appToken, token } = options;
  const fetchFn = options.fetch ?? fetch;
  const secrets = [token, appToken];

  async function get<T>(
    path: string,
    query: Record<string, string>,
    bearer: string,
    schema: z.ZodType<T>,
  ): Promise<T> {
    const url = new URL(`${baseUrl}/${version}/${path}`);
    for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
    const stop = new AbortController();
    let hasTimedOut = false;
    const timer = setTimeout(() => {
      hasTimedOut = true;
      stop.abort();
    }, timeoutMs);
    try {
      const response = await fetchFn(url, {
        headers: { "Authorization": `Bearer ${bearer}`, "Accept": "application/json" },
        signal: stop.signal,
      });
      const text = _redact(await _readBounded(response), secrets);
      if (!response.ok) throw readGraphError(response.status, text);
      const parsed = schema.safeParse(_parseJson(text));
      if (!parsed.success) {
        throw new GraphApiError({
          message: `Cannot read the Graph API's answer to "${path}": not the documented shape`,
          category: "transient",
          httpStatus: response.status,
        });
      }
      return parsed.data;
    } catch (error) {
      if (error instanceof GraphApiError) throw error;
      throw _unanswered(error, { hasTimedOut, timeoutMs, secrets });
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    debugToken: async () =>
      (await get("debug_token", { input_token: token }, appToken, DebugTokenSchema)).data,
    appSubscriptions: async (appId) =>
      (await get(`${encodeURIComponent(appId)}/subscriptions`, {}, appToken, SubscriptionsSchema))
        .data,
    subscribedApps: async (wabaId) =>
      (await get(`${encodeURIComponent(wabaId)}/subscribed_apps`, {}, token, SubscribedAppsSchema))
        .data,
    phoneNumbers: async (wabaId) => {
      const query = { fields: PHONE_NUMBER_FIELDS.join(","), limit: String(MAX_PHONE_NUMBERS) };
      const page = await get(
        `${encodeURIComponent(wabaId)}/phone_numbers`,
        query,
        token,
        PhoneNumbersSchema,
      );
      return { numbers: page.data, hasMore: page.paging?.next !== undefined };
    },
  };
}

/**
 * The error of a read that got no answer: a time-out, a refused connection or a lost one. It has
 * no `httpStatus`, which is how the doctor tells "Graph API unreachable" from Meta's refusals.
 */
function _unanswered(
  error: unknown,
  attempt: { hasTimedOut: boolean; timeoutMs: number; secrets: string[] },
): GraphApiError {
  const reason = _redact(describeError(error), attempt.secrets);
  const message = attempt.hasTimedOut
    ? `The Graph API did not answer within ${attempt.timeoutMs} ms`
    : isConnectFailure(error)
    ? `Cannot connect to the Graph API: ${reason}`
    : `Lost the connection to the Graph API: ${reason}`;
  return new GraphApiError({ message, category: "transient", cause: error });
}

/** The answer's text, at most {@linkcode MAX_ANSWER_BYTES}; longer answers are refused. */
async function _readBounded(response: Response): Promise<string> {
  if (response.body === null) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of response.body) {
    total += chunk.byteLength;
    if (total > MAX_ANSWER_BYTES) {
      // Leaving the loop by throwing cancels the rest of the body.
      throw new GraphApiError({
        message: `The Graph API's answer is larger than ${MAX_ANSWER_BYTES} bytes`,
        category: "transient",
        httpStatus: response.status,
      });
    }
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

/** `text` with every secret replaced, in case an answer or an error echoes one. */
function _redact(text: string, secrets: readonly string[]): string {
  return secrets.reduce((redacted, secret) => redactToken(redacted, secret), text);
}

function _parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
