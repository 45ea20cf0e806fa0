/**
 * `GET /admin/media/:id`: the bytes of captured media, streamed with the `Content-Type` Meta gave
 * and their `Content-Length`; and the media an event captured, as `GET /admin/events/:id` names
 * them. Same rules as the rest of the admin API: the admin token as a bearer token, no handler
 * (404) without one.
 *
 * The bytes are a user's upload: they are served as an attachment with `nosniff` and a sandbox
 * policy, so a browser never runs them as a page of the admin API's origin.
 *
 * @module
 */
import type { WebhookEvent } from "../events/events.ts";
import { inboundMediaOf } from "../handlers/media_capture.ts";
import { clipForReason, HttpError } from "../http/errors.ts";
import type { RouteHandler } from "../http/router.ts";
import type { MediaStore } from "../media/media_store.ts";
import { requireAdmin } from "./auth.ts";

/** What {@linkcode createMediaHandler} needs. */
export interface MediaRouteOptions {
  /** The captured media; `undefined` while media capture is off (every id answers 404). */
  mediaStore: Pick<MediaStore, "get" | "getRecord"> | undefined;
  /** The bearer token operators send; `undefined` turns the endpoint off (404). */
  adminToken: string | undefined;
}

/** The admin path of media `id`. */
export function mediaRoute(id: string): string {
  return `/admin/media/${encodeURIComponent(id)}`;
}

/**
 * The handler of `GET /admin/media/:id`: the bytes, or 404 for media never captured (or capture
 * off), failed (with the reason) or purged; 401 without the token. `undefined` without an admin
 * token.
 */
export function createMediaHandler(options: MediaRouteOptions): RouteHandler | undefined {
  const { mediaStore, adminToken } = options;
  if (adminToken === undefined) return undefined;
  return requireAdmin(adminToken, async (_request, { params }) => {
    const id = params.id ?? "";
    if (mediaStore === undefined) {
      throw new HttpError(
        404,
        `Media "${clipForReason(id)}" is unknown: set MEDIA_CAPTURE=on to capture media`,
      );
    }
    const stored = await mediaStore.get(id);
    if (stored === null) {
      const record = await mediaStore.getRecord(id);
      const why = record?.state === "failed" ? `was not stored: ${record.reason}` : "is unknown";
      throw new HttpError(404, `Media "${clipForReason(id)}" ${why}`);
    }
    return new Response(stored.body, {
      headers: {
        "Content-Type": stored.contentType,
        "Content-Length": String(stored.size),
        "Content-Disposition": "attachment",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
      },
    });
  });
}

/**
 * `{ media: [{ id, state, reason?, size?, mimeType, route }] }` for an event whose message
 * carries media, as the media store knows it (`state: "pending"` before the capture ran); `{}`
 * for other events.
 */
export async function capturedMediaOf(
  mediaStore: Pick<MediaStore, "getRecord">,
  event: WebhookEvent,
): Promise<{ media?: Record<string, unknown>[] }> {
  const media = inboundMediaOf(event);
  if (media === undefined) return {};
  const record = await mediaStore.getRecord(media.id);
  return {
    media: [{
      id: media.id,
      state: record?.state ?? "pending",
      ...(record?.reason === undefined ? {} : { reason: record.reason }),
      ...(record?.size === undefined ? {} : { size: record.size }),
      mimeType: media.mimeType,
      route: mediaRoute(media.id),
    }],
  };
}
