/**
 * `GET /admin/messages/:wamid`: the furthest status of a message the business sent, for operators
 * asking "was it delivered?" (the path is in `src/routes.ts`).
 *
 * The same rules as the rest of the admin API (`admin/events.ts`): `Authorization: Bearer
 * <ADMIN_TOKEN>` compared in constant time, and no handler at all (404) when no admin token is
 * configured. The id is percent-decoded once (`wamid`s end in `=` and may hold `/` or `+`).
 *
 * @module
 */
import type { Store } from "../store/store.ts";
import { requireAdmin } from "./auth.ts";
import { clipForReason, HttpError } from "../http/errors.ts";
import type { RouteHandler } from "../http/router.ts";
import { getMessageStatus } from "../handlers/status_tracker.ts";

/** What {@linkcode createMessageStatusHandler} needs. */
export interface MessageStatusOptions {
  store: Pick<Store, "getMessageStatus">;
  /** The bearer token operators send; `undefined` turns the endpoint off (404). */
  adminToken: string | undefined;
}

/**
 * The handler of `GET /admin/messages/:wamid` -> `{ id, status, updatedAt, errors? }`: 401 (with
 * `WWW-Authenticate`) for a missing or wrong token, 404 for an id never seen (or expired), 400 for
 * a broken percent-encoding (from the router). `undefined` when `adminToken` is undefined.
 */
export function createMessageStatusHandler(
  options: MessageStatusOptions,
): RouteHandler | undefined {
  const { store, adminToken } = options;
  if (adminToken === undefined) return undefined;
  return requireAdmin(adminToken, async (_request, { params }) => {
    const wamid = params.wamid ?? "";
    const status = await getMessageStatus(store, wamid);
    if (!status) {
      throw new HttpError(404, `Message "${clipForReason(wamid)}" has no tracked status`);
    }
    return Response.json(status);
  });
}
