/**
 * Media capture (`MEDIA_CAPTURE=on`): every inbound image, audio, video, document and sticker is
 * fetched and kept, because Meta's download URL lives about five minutes and the media id seven
 * days. The media id becomes a URL through the Graph API, the URL's bytes are fetched with the
 * token, counted against `MEDIA_MAX_BYTES` and hashed as they stream into the media store
 * (`media/verify.ts`), and the hash is compared with the webhook's `sha256`.
 *
 * Downloads are tried a few times in one run: an expired URL (401, 403, 404 or 410 without a
 * Graph error) is replaced by a new one at once, other passing failures wait a backoff. What
 * cannot succeed (over the cap, a hash that does not match, a media id Meta refuses) is recorded
 * as `failed` with the reason and dead-letters the event with it; a failure that may pass is
 * recorded too and the worker retries the event later. Media already stored are not fetched
 * again on a replay. Bytes, URLs and the token are never logged.
 *
 * @module
 */
import type { Dispatcher, HandlerContext } from "../dispatch/dispatcher.ts";
import { PermanentError } from "../dispatch/handler_errors.ts";
import type { MessageEvent, WebhookEvent } from "../events/events.ts";
import { GraphApiError } from "../graph/errors.ts";
import { isExpiredMediaUrl, type MediaClient } from "../graph/media.ts";
import { backoffDelayMs } from "../graph/retry.ts";
import { type Clock, systemClock } from "../ops/clock.ts";
import {
  InvalidMediaIdError,
  isMediaId,
  type MediaRecord,
  type MediaStore,
} from "../media/media_store.ts";
import { MediaHashMismatchError, MediaTooLargeError, verifyingStream } from "../media/verify.ts";

/** The handler's name, in event records. */
export const MEDIA_CAPTURE_HANDLER = "media-capture";

/** The message types whose media are captured. */
export const CAPTURED_MEDIA_TYPES = ["image", "audio", "video", "document", "sticker"] as const;

/** Tries of one media's download in one run, new URLs included. */
export const MEDIA_DOWNLOAD_ATTEMPTS = 4;

/** Backoff between tries that failed for a passing reason: 1 s, 2 s, 4 s, at most 30 s. */
const MEDIA_RETRY = { baseDelayMs: 1_000, maxDelayMs: 30_000 };

/** The media object of a message: what the webhook says about it. */
export interface InboundMedia {
  id: string;
  mimeType: string;
  sha256: string;
}

/** The media an event's message carries, or `undefined` for any other event. */
export function inboundMediaOf(event: WebhookEvent): InboundMedia | undefined {
  if (event.kind !== "message") return undefined;
  const message = event.message as { type: string } & Record<string, unknown>;
  if (!(CAPTURED_MEDIA_TYPES as readonly string[]).includes(message.type)) return undefined;
  const media = message[message.type] as { id?: unknown; mime_type?: unknown; sha256?: unknown };
  if (typeof media?.id !== "string" || typeof media.sha256 !== "string") return undefined;
  return {
    id: media.id,
    mimeType: typeof media.mime_type === "string" ? media.mime_type : "application/octet-stream",
    sha256: media.sha256,
  };
}

/** Options for {@linkcode registerMediaCapture}. */
export interface MediaCaptureOptions {
  /** Where the bytes and records go. */
  store: MediaStore;
  /** The Graph API's media calls. */
  client: MediaClient;
  /** Larger media are refused (`MEDIA_MAX_BYTES`). */
  maxBytes: number;
  /** The cap's name in reasons; `MEDIA_MAX_BYTES` by default. */
  capName?: string;
  /** Time of records and backoff; the system clock by default. */
  clock?: Clock;
  /** Jitter of the backoff; `Math.random` by default. */
  random?: () => number;
}

/**
 * Registers the passive handler {@linkcode MEDIA_CAPTURE_HANDLER} on messages: it captures the
 * media of those of {@linkcode CAPTURED_MEDIA_TYPES} and leaves the event to the other handlers
 * (an unhandled image still reaches the `onUnhandled` fallback).
 */
export function registerMediaCapture(
  dispatcher: Dispatcher,
  options: MediaCaptureOptions,
): Dispatcher {
  return dispatcher.on("message", async (context) => {
    const media = inboundMediaOf(context.event);
    if (media !== undefined) await captureMedia(context, media, options);
  }, { name: MEDIA_CAPTURE_HANDLER, isPassive: true });
}

/**
 * Fetches, checks and stores `media`, unless it is stored already; records a failure with its
 * reason and throws: a `PermanentError` when trying again cannot help.
 */
export async function captureMedia(
  context: Pick<HandlerContext<MessageEvent>, "event" | "log" | "signal">,
  media: InboundMedia,
  options: MediaCaptureOptions,
): Promise<MediaRecord> {
  const { event, log, signal } = context;
  const clock = options.clock ?? systemClock;
  if (!isMediaId(media.id)) throw new PermanentError(new InvalidMediaIdError(media.id).message);
  const known = await options.store.getRecord(media.id);
  if (known?.state === "stored") {
    log.debug("media already stored", { mediaId: media.id });
    return known;
  }
  const about = { eventId: event.id, mimeType: media.mimeType, sha256: media.sha256 };
  try {
    const record = await _fetchAndStore(event.phoneNumberId, media, about, options, signal);
    log.info("media stored", { mediaId: media.id, mimeType: media.mimeType, size: record.size });
    return record;
  } catch (error) {
    if (signal.aborted) throw error; // abandoned: the next run tries again
    const reason = error instanceof Error ? error.message : String(error);
    await options.store.fail(media.id, { ...about, reason, now: clock.now() });
    log.warn("media not stored", { mediaId: media.id, reason });
    throw _isPermanent(error) ? new PermanentError(reason) : new Error(reason);
  }
}

async function _fetchAndStore(
  phoneNumberId: string,
  media: InboundMedia,
  about: { eventId: string; mimeType: string; sha256: string },
  options: MediaCaptureOptions,
  signal: AbortSignal,
): Promise<MediaRecord> {
  const { client, store, maxBytes } = options;
  const clock = options.clock ?? systemClock;
  const capName = options.capName ?? "MEDIA_MAX_BYTES";
  const tooLarge = (bytes: number) =>
    new MediaTooLargeError(
      `Cannot store media "${media.id}": it is ${bytes} bytes, larger than ${capName} (${maxBytes} bytes); raise ${capName} to keep it`,
    );
  const call = { phoneNumberId, signal };
  let lastError: unknown;
  for (let attempt = 1; attempt <= MEDIA_DOWNLOAD_ATTEMPTS; attempt++) {
    try {
      // A new URL for every try: the last one may have expired while waiting.
      const info = await client.getMedia(media.id, call);
      if (info.fileSize !== undefined && info.fileSize > maxBytes) throw tooLarge(info.fileSize);
      const download = await client.downloadMedia(info.url, call);
      if (download.contentLength !== undefined && download.contentLength > maxBytes) {
        await download.body.cancel();
        throw tooLarge(download.contentLength);
      }
      const checked = download.body.pipeThrough(
        verifyingStream({ id: media.id, maxBytes, capName, sha256: media.sha256 }),
      );
      try {
        return await store.put(media.id, checked, { ...about, now: clock.now() });
      } catch (error) {
        // A store that failed before reading the body leaves the download open: end it.
        if (!checked.locked) await checked.cancel().catch(() => {});
        throw error;
      }
    } catch (error) {
      if (signal.aborted || _isPermanent(error)) throw error;
      lastError = error;
      if (isExpiredMediaUrl(error) || attempt === MEDIA_DOWNLOAD_ATTEMPTS) continue;
      const backoff = backoffDelayMs(attempt - 1, MEDIA_RETRY, options.random ?? Math.random);
      const asked = error instanceof GraphApiError ? error.retryAfterMs : undefined;
      await clock.sleep(Math.min(MEDIA_RETRY.maxDelayMs, asked ?? backoff), signal);
    }
  }
  const why = lastError instanceof Error ? lastError.message : String(lastError);
  throw new Error(
    `Cannot fetch media "${media.id}" in ${MEDIA_DOWNLOAD_ATTEMPTS} tries: ${why}`,
  );
}

/** Whether trying again cannot help: the media or the request is wrong, or the token is. */
function _isPermanent(error: unknown): boolean {
  if (
    error instanceof MediaTooLargeError || error instanceof MediaHashMismatchError ||
    error instanceof InvalidMediaIdError
  ) return true;
  if (!(error instanceof GraphApiError) || isExpiredMediaUrl(error)) return false;
  return ["auth", "invalid_request", "policy", "recipient"].includes(error.category);
}
