/**
 * Inbound media through the Graph API (reference §8.6): `GET {baseUrl}/{version}/{media-id}` gives
 * `{url, mime_type, sha256, file_size, id}`; the `url` is short-lived (about five minutes) and
 * answers the bytes only with the same `Authorization: Bearer` token.
 *
 * {@linkcode MediaClient.downloadMedia} hands back the body as a stream, never read whole. A
 * request waits at most `timeoutMs` for its answer, and a body that sends nothing for
 * `timeoutMs` is cut off. Retrying is the caller's: an expired URL needs a new one from
 * `getMedia` ({@linkcode isExpiredMediaUrl}), not the same request again. The token is never in a
 * message, and a URL never either: it may carry its own credentials.
 *
 * @module
 */
import { z } from "zod";
import { DEFAULTS } from "../config.ts";
import { type Clock, systemClock } from "../ops/clock.ts";
import { GraphApiError, readGraphError } from "./errors.ts";
import { parseRetryAfter } from "./retry.ts";
import { redactToken, transportError } from "./transport_errors.ts";

/** What Meta says about a media id. */
export interface MediaInfo {
  id: string;
  /** The short-lived download URL; needs the token. Never log it. */
  url: string;
  mimeType: string;
  sha256: string;
  /** Bytes, when Meta says (a number, or a string of digits in some answers). */
  fileSize?: number;
}

/** A download whose body has not been read yet. */
export interface MediaDownload {
  /** The bytes; read it to the end or cancel it. */
  body: ReadableStream<Uint8Array>;
  /** The `Content-Length` the answer announced, if any. */
  contentLength?: number;
}

/** Options of one media call. */
export interface MediaCallOptions {
  /** The business number the media came to: its token is used. */
  phoneNumberId: string;
  /** Aborts the request, or the body being read. */
  signal?: AbortSignal;
}

/** Fetches inbound media; see {@linkcode createMediaClient}. */
export interface MediaClient {
  /**
   * Looks media `mediaId` up.
   *
   * @throws {GraphApiError} when Meta refuses, the answer is unreadable, or the network fails
   */
  getMedia(mediaId: string, options: MediaCallOptions): Promise<MediaInfo>;
  /**
   * Starts downloading `url` (from {@linkcode getMedia}) with the token, resolving once the
   * answer's headers came.
   *
   * @throws {GraphApiError} for an answer other than 2xx (see {@linkcode isExpiredMediaUrl}), a
   *   URL that is not http(s) or would send the token in clear text, or a network failure
   */
  downloadMedia(url: string, options: MediaCallOptions): Promise<MediaDownload>;
}

/** Options for {@linkcode createMediaClient}. */
export interface MediaClientOptions {
  /** The token of every number without its own. Never logged. */
  token: string;
  /** Tokens by phone number id. */
  tokensByPhoneNumberId?: Record<string, string>;
  /** Defaults to `DEFAULTS.graphApiBaseUrl`. */
  baseUrl?: string;
  /** Defaults to `DEFAULTS.graphApiVersion`. */
  version?: string;
  /** How long an answer, and each pause in a body, may take; `DEFAULTS.graphTimeoutMs`. */
  timeoutMs?: number;
  fetch?: typeof fetch;
  clock?: Clock;
}

/** Meta's answer about a media id is a few hundred bytes; more is not that answer. */
const MAX_INFO_BYTES = 64 * 1024;
/** HTTP statuses of a download URL that expired or no longer names the media: fetch a new one. */
const EXPIRED_URL_STATUSES: ReadonlySet<number> = new Set([401, 403, 404, 410]);

/** Whether a download failed because its URL expired: `getMedia` gives a new one. */
export function isExpiredMediaUrl(error: unknown): boolean {
  return error instanceof GraphApiError && error.httpStatus !== undefined &&
    EXPIRED_URL_STATUSES.has(error.httpStatus) && error.code === undefined;
}

/** Meta's answer to `GET /{media-id}`; unknown fields are ignored. */
const MediaInfoSchema = z.object({
  id: z.string().min(1),
  url: z.string().min(1),
  mime_type: z.string().min(1),
  sha256: z.string().min(1),
  file_size: z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/)]).optional(),
});

/** Creates the client; no request is made until a method is called. */
export function createMediaClient(options: MediaClientOptions): MediaClient {
  const baseUrl = (options.baseUrl ?? DEFAULTS.graphApiBaseUrl).replace(/\/+$/, "");
  const version = options.version ?? DEFAULTS.graphApiVersion;
  const timeoutMs = options.timeoutMs ?? DEFAULTS.graphTimeoutMs;
  const fetchFn = options.fetch ?? fetch;
  const clock = options.clock ?? systemClock;
  const isBaseSecure = baseUrl.startsWith("https:");

  function tokenFor(phoneNumberId: string): string {
    const token = options.tokensByPhoneNumberId?.[phoneNumberId] ?? options.token;
    if (token === "") {
      throw new GraphApiError({
        message: `No access token for phone number id "${phoneNumberId}"`,
        category: "auth",
      });
    }
    return token;
  }

  /**
   * One GET with the token: resolves with the response once its headers came (and, for a 2xx,
   * its body watched for pauses longer than `timeoutMs`), or throws a GraphApiError.
   */
  async function get(url: string, token: string, signal: AbortSignal | undefined) {
    const request = new AbortController();
    const stopWatch = new AbortController();
    let lastProgressAt = clock.now();
    let hasTimedOut = false;
    let answeredStatus: number | undefined;
    const onCallerAbort = (): void => request.abort(signal?.reason);
    signal?.addEventListener("abort", onCallerAbort, { once: true });
    const stop = (): void => {
      stopWatch.abort();
      signal?.removeEventListener("abort", onCallerAbort);
    };
    // One watchdog for the whole exchange: headers, then each pause in the body.
    (async () => {
      for (;;) {
        await clock.sleep(timeoutMs - (clock.now() - lastProgressAt), stopWatch.signal);
        if (clock.now() - lastProgressAt >= timeoutMs) break;
      }
      hasTimedOut = true;
      request.abort();
    })().catch(() => {});
    try {
      const response = await fetchFn(url, {
        headers: { "Authorization": `Bearer ${token}` },
        signal: request.signal,
      });
      answeredStatus = response.status;
      lastProgressAt = clock.now();
      if (!response.ok) {
        const text = redactToken(
          await _readText(response.body ?? new ReadableStream(), MAX_INFO_BYTES),
          token,
        );
        const retryAfterMs = parseRetryAfter(response.headers.get("Retry-After"), clock.now());
        throw readGraphError(response.status, text, retryAfterMs);
      }
      const body = _watched(response.body ?? new ReadableStream(), {
        onChunk: () => void (lastProgressAt = clock.now()),
        onEnd: stop,
        failure,
      });
      return { response, body };
    } catch (error) {
      stop();
      if (error instanceof GraphApiError) throw error;
      throw failure(error);
    }

    function failure(error: unknown): unknown {
      if (signal?.aborted) return signal.reason;
      const typed = transportError(error, { token, timeoutMs, hasTimedOut, answeredStatus });
      // Deno's fetch errors quote the URL; a download URL is not for logs.
      return new GraphApiError({
        message: typed.message.replace(/\bhttps?:\/\/\S+/g, "[url]"),
        category: typed.category,
      });
    }
  }

  return {
    async getMedia(mediaId, callOptions) {
      const token = tokenFor(callOptions.phoneNumberId);
      const query = new URLSearchParams({ phone_number_id: callOptions.phoneNumberId });
      const url = `${baseUrl}/${version}/${encodeURIComponent(mediaId)}?${query}`;
      const { body } = await get(url, token, callOptions.signal);
      const text = await _readText(body, MAX_INFO_BYTES);
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      const parsed = MediaInfoSchema.safeParse(json);
      if (!parsed.success) {
        throw new GraphApiError({
          message: `Cannot read the Graph API's answer about media "${mediaId}"`,
          category: "transient",
        });
      }
      const info = parsed.data;
      return {
        id: info.id,
        url: info.url,
        mimeType: info.mime_type,
        sha256: info.sha256,
        ...(info.file_size === undefined ? {} : { fileSize: Number(info.file_size) }),
      };
    },
    async downloadMedia(url, callOptions) {
      const token = tokenFor(callOptions.phoneNumberId);
      let protocol: string;
      try {
        protocol = new URL(url).protocol;
      } catch {
        protocol = "";
      }
      if (protocol !== "https:" && (isBaseSecure || protocol !== "http:")) {
        throw new GraphApiError({
          message: `Cannot download media: the Graph API gave a URL that is not ${
            isBaseSecure ? "https" : "http(s)"
          }, and the token is not sent there`,
          category: "invalid_request",
        });
      }
      const { response, body } = await get(url, token, callOptions.signal);
      const length = Number(response.headers.get("Content-Length") ?? NaN);
      return { body, ...(Number.isSafeInteger(length) ? { contentLength: length } : {}) };
    },
  };
}

/**
 * `stream` read one chunk per pull: `onChunk` told of each, `onEnd` once it ended, failed or was
 * cancelled, and a failure replaced by what `failure` makes of it (a typed error without the URL).
 */
function _watched(
  stream: ReadableStream<Uint8Array>,
  hooks: { onChunk: () => void; onEnd: () => void; failure: (error: unknown) => unknown },
): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          hooks.onEnd();
          controller.close();
        } else {
          hooks.onChunk();
          controller.enqueue(value);
        }
      } catch (error) {
        hooks.onEnd();
        controller.error(hooks.failure(error));
      }
    },
    async cancel(why) {
      hooks.onEnd();
      await reader.cancel(why);
    },
  }, { highWaterMark: 0 });
}

/** Reads `body` as text, refusing more than `maxBytes`. */
async function _readText(body: ReadableStream<Uint8Array>, maxBytes: number): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > maxBytes) return "";
    text += decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}
