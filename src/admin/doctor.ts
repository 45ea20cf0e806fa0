/**
 * `GET /admin/doctor`: the doctor's report (`doctor/doctor.ts`) as JSON, the same answer
 * `deno task doctor --json` prints: what Meta sees of the app's token, webhook subscription,
 * accounts and numbers. `?url=` is the callback URL Meta should call, as the task's `--url`.
 *
 * The same rules as the rest of the admin API: `Authorization: Bearer <ADMIN_TOKEN>` compared in
 * constant time, and no handler at all (404) when no admin token is configured. The answer is 200
 * whatever the checks found (the report's `status` says it); it takes as long as Meta's answers, at
 * most the doctor's deadline.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { ExpectedUrlError, expectedWebhookUrl, runDoctor } from "../doctor/doctor.ts";
import { HttpError } from "../http/errors.ts";
import type { RouteHandler } from "../http/router.ts";
import { requireAdmin } from "./auth.ts";

/** The longest `url` parameter accepted: longer is no callback URL anyone typed. */
const MAX_URL_CHARS = 2_048;

/** What {@linkcode createDoctorHandler} needs. */
export interface DoctorHandlerOptions {
  config: Config;
  /** The bearer token operators send; `undefined` turns the endpoint off (404). */
  adminToken: string | undefined;
  /** The Graph API's `fetch`; defaults to the global one. */
  fetch?: typeof fetch;
}

/**
 * The handler of `GET /admin/doctor` -> `{ status, graphUrl, checks }`: 401 (with
 * `WWW-Authenticate`) for a missing or wrong token, 400 for a `url` that is not an http(s) URL.
 * `undefined` when `adminToken` is undefined.
 */
export function createDoctorHandler(options: DoctorHandlerOptions): RouteHandler | undefined {
  const { config, adminToken } = options;
  if (adminToken === undefined) return undefined;
  return requireAdmin(adminToken, async (request) => {
    const url = new URL(request.url).searchParams.get("url");
    let expectedUrl: string | undefined;
    if (url !== null) {
      if (url.length > MAX_URL_CHARS) {
        throw new HttpError(400, `Parameter "url" is longer than ${MAX_URL_CHARS} characters`);
      }
      try {
        expectedUrl = expectedWebhookUrl(url);
      } catch (error) {
        if (error instanceof ExpectedUrlError) throw new HttpError(400, error.message);
        throw error;
      }
    }
    const report = await runDoctor({
      config,
      expectedUrl,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    return Response.json(report);
  });
}
