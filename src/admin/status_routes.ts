/**
 * `GET /admin/messages/:wamid`: the furthest status of a message the business sent, for operators
 * asking "was it delivered?".
 *
 * The same rules as the rest of the admin API (`admin/routes.ts`): `Authorization: Bearer
 * <ADMIN_TOKEN>` compared in constant time, and no route at all (404) when no admin token is
 * configured. The id is percent-decoded once (`wamid`s end in `=` and may hold `/` or `+`).
 *
 * @module
 */
import type { Store } from "../store/store.ts";
import { requireAdmin } from "./auth.ts";
import { clipForReason, HttpError } from "../http/errors.ts";
import type { Route } from "../http/router.ts";
import { getMessageStatus } from "../handlers/status_tracker.ts";

/** What {@linkcode statusRoutes} needs. */
export interface StatusRoutesOptions {
  store: Pick<Store, "getMessageStatus">;
  /** The bearer token operators send; `undefined` turns the route off (404). */
  adminToken: string | undefined;
}

/**
 * The route `GET /admin/messages/:wamid` -> `{ id, status, updatedAt, errors? }`: 401 (with
 * `WWW-Authenticate`) for a missing or wrong token, 404 for an id never seen (or expired), 400 for
 * a broken percent-encoding. No routes when `adminToken` is undefined.
 */
export function statusRoutes(options: StatusRoutesOptions): Route[] {
  const { store, adminToken } = options;
  if (adminToken === undefined) return [];
  return [
    {
      method: "GET",
      path: "/admin/messages/:wamid",
      handler: requireAdmin(adminToken, async (_request, { params }) => {
        const wamid = params.wamid ?? "";
        const status = await getMessageStatus(store, wamid);
        if (!status) {
          throw new HttpError(404, `Message "${clipForReason(wamid)}" has no tracked status`);
        }
        return Response.json(status);
      }),
    },
  ];
}
