/**
 * `GET /admin/conversations/:business/:user/window`: the customer-service window of a business
 * number and a user (BSUID or phone number), for operators asking "can we still answer them
 * free-form, or is a template needed?" (the path is in `src/routes.ts`).
 *
 * The same rules as the rest of the admin API (`admin/events.ts`): `Authorization: Bearer
 * <ADMIN_TOKEN>` compared in constant time, and no handler at all (404) when no admin token is
 * configured.
 *
 * @module
 */
import type { Clock } from "../ops/clock.ts";
import type { Store } from "../store/store.ts";
import { requireAdmin } from "./auth.ts";
import type { RouteHandler } from "../http/router.ts";

/** What {@linkcode createWindowHandler} needs. */
export interface WindowHandlerOptions {
  store: Pick<Store, "getWindow">;
  clock: Clock;
  /** The bearer token operators send; `undefined` turns the endpoint off (404). */
  adminToken: string | undefined;
}

/** A conversation's window as the admin API shows it. */
export interface WindowView {
  business: string;
  user: string;
  /** Whether a free-form message may be sent now. */
  isOpen: boolean;
  /** When the window closes or closed (ISO 8601, UTC); absent when none is kept. */
  closesAt?: string;
}

/**
 * The handler of `GET /admin/conversations/:business/:user/window` -> {@linkcode WindowView}: 200
 * with `isOpen: false` and no `closesAt` when no message opened a window (or it closed over a week
 * ago); 401 (with `WWW-Authenticate`) for a missing or wrong token. A phone number may be written
 * with or without its `+`. `undefined` when `adminToken` is undefined.
 */
export function createWindowHandler(options: WindowHandlerOptions): RouteHandler | undefined {
  const { store, clock, adminToken } = options;
  if (adminToken === undefined) return undefined;
  return requireAdmin(adminToken, async (_request, { params }) => {
    const business = params.business ?? "";
    const user = (params.user ?? "").replace(/^\+/, "");
    const window = await store.getWindow({ business, user });
    const view: WindowView = window === null ? { business, user, isOpen: false } : {
      business,
      user,
      isOpen: clock.now() < window.closesAt,
      closesAt: new Date(window.closesAt).toISOString(),
    };
    return Response.json(view);
  });
}
