/**
 * The fake Graph API's answers to the doctor's reads, in Meta's documented shapes, from an account
 * a test describes and may change between runs ({@linkcode FakeDoctorAccount}):
 *
 * - `GET /{v}/debug_token?input_token=…` with the app token (`{app-id}|{app-secret}`, as a bearer
 *   token or `access_token`): `{ data: { app_id, type, application, expires_at, is_valid, scopes,
 *   granular_scopes: [{ scope, target_ids }], error?, user_id } }`;
 * - `GET /{v}/{app-id}/subscriptions` with the app token: `{ data: [{ object, callback_url,
 *   active, fields: [{ name, version }] }] }`;
 * - `GET /{v}/{waba-id}/subscribed_apps` with the access token: `{ data: [{
 *   whatsapp_business_api_data: { id, link, name } }] }`;
 * - `GET /{v}/{waba-id}/phone_numbers?fields=…` with the access token: `{ data: [...], paging }`,
 *   each number with `id` and only the fields asked for, as Meta answers.
 *
 * A wrong app token is refused with 190 ("Invalid OAuth access token signature"), an invalid access
 * token with 190 (subcode 463), an account the token does not reach with 100 (subcode 33), and a
 * token without `whatsapp_business_management` with 200, each in Meta's error body.
 * `fake_graph_api.ts` mounts these answers with its `doctor` option.
 *
 * @module
 */

/** A business number as the fake's account holds it (Meta's field names). */
export interface FakePhoneNumber {
  id: string;
  display_phone_number: string;
  verified_name: string;
  status?: string;
  quality_rating?: string;
  messaging_limit_tier?: string;
  code_verification_status?: string;
  name_status?: string;
  platform_type?: string;
  throughput?: { level: string };
}

/** What Meta knows of the app, its token, its subscription and its accounts. */
export interface FakeDoctorAccount {
  appId: string;
  appSecret: string;
  /** The access token the debug answer describes, as `debug_token`'s `data` says it. */
  token: {
    isValid: boolean;
    /** The app the token was made for; defaults to `appId`. */
    appId?: string;
    type: string;
    /** Unix seconds; 0 never expires. */
    expiresAt: number;
    scopes: string[];
    granularScopes: { scope: string; target_ids?: string[] }[];
    error?: { code: number; subcode?: number; message: string };
  };
  /** The app's webhook subscriptions, one per object. */
  subscriptions: {
    object: string;
    callback_url: string;
    active: boolean;
    fields: { name: string; version: string }[];
  }[];
  /** The accounts by id: the apps subscribed to each, and its numbers. */
  wabas: Record<string, { subscribedApps: string[]; phoneNumbers: FakePhoneNumber[] }>;
}

/** The fake app's id and secret, and its account's ids. */
export const FAKE_APP_ID = "1234567890123456";
export const FAKE_APP_SECRET = "fake-app-secret-0123456789abcdef";
export const FAKE_WABA_ID = "102290129340398";
export const FAKE_PHONE_NUMBER_ID = "106540352242922";
/** The callback URL of the healthy account. */
export const FAKE_CALLBACK_URL = "https://hooks.example.com/webhook/whatsapp";

/** A healthy account: a valid, never-expiring system user token, subscribed, one good number. */
export function healthyDoctorAccount(): FakeDoctorAccount {
  return {
    appId: FAKE_APP_ID,
    appSecret: FAKE_APP_SECRET,
    token: {
      isValid: true,
      type: "SYSTEM_USER",
      expiresAt: 0,
      scopes: ["whatsapp_business_management", "whatsapp_business_messaging", "public_profile"],
      granularScopes: [
        { scope: "whatsapp_business_management", target_ids: [FAKE_WABA_ID] },
        { scope: "whatsapp_business_messaging", target_ids: [FAKE_WABA_ID] },
      ],
    },
    subscriptions: [{
      object: "whatsapp_business_account",
      callback_url: FAKE_CALLBACK_URL,
      active: true,
      fields: [
        { name: "messages", version: "v26.0" },
        { name: "message_template_status_update", version: "v26.0" },
      ],
    }],
    wabas: {
      [FAKE_WABA_ID]: {
        subscribedApps: [FAKE_APP_ID],
        phoneNumbers: [{
          id: FAKE_PHONE_NUMBER_ID,
          display_phone_number: "+1 555-010-0001",
          verified_name: "Jasper's Market",
          status: "CONNECTED",
          quality_rating: "GREEN",
          messaging_limit_tier: "TIER_1K",
          code_verification_status: "VERIFIED",
          name_status: "APPROVED",
          platform_type: "CLOUD_API",
          throughput: { level: "STANDARD" },
        }],
      },
    },
  };
}

/**
 * The answer to one of the doctor's reads, or `undefined` for any other request (the messages
 * endpoint and the rest are `fake_graph_api.ts`'s). `token` is the access token the fake accepts.
 */
export function answerDoctorRequest(
  account: FakeDoctorAccount,
  request: Request,
  token: string,
): Response | undefined {
  if (request.method !== "GET") return undefined;
  const url = new URL(request.url);
  const match = /^\/v\d+\.\d+\/([^/]+)(?:\/([a-z_]+))?$/.exec(url.pathname);
  if (!match) return undefined;
  const [, node = "", edge] = match;
  const bearer = /^Bearer (.+)$/.exec(request.headers.get("authorization") ?? "")?.[1] ??
    url.searchParams.get("access_token") ?? "";
  const isAppToken = bearer === `${account.appId}|${account.appSecret}`;

  if (node === "debug_token" && edge === undefined) {
    if (!isAppToken) return _appTokenRefused();
    return Response.json({ data: _debugData(account, url.searchParams.get("input_token"), token) });
  }
  if (edge === "subscriptions") {
    if (!isAppToken) return _appTokenRefused();
    if (node !== account.appId) return _noSuchObject(node);
    return Response.json({ data: account.subscriptions });
  }
  if (edge !== "subscribed_apps" && edge !== "phone_numbers") return undefined;
  if (bearer !== token || !account.token.isValid) {
    return _metaError(401, 190, "Error validating access token: Session has expired", 463);
  }
  const waba = account.wabas[node];
  const reaches = account.token.granularScopes.some((s) => s.target_ids?.includes(node));
  if (waba === undefined || !reaches) return _noSuchObject(node);
  if (!account.token.scopes.includes("whatsapp_business_management")) {
    return _metaError(403, 200, "(#200) Requires whatsapp_business_management permission");
  }
  if (edge === "subscribed_apps") {
    return Response.json({
      data: waba.subscribedApps.map((id) => ({
        whatsapp_business_api_data: {
          link: `https://www.facebook.com/games/?app_id=${id}`,
          name: `App ${id}`,
          id,
        },
      })),
    });
  }
  const fields = url.searchParams.get("fields")?.split(",") ??
    ["display_phone_number", "verified_name", "quality_rating"];
  return Response.json({
    data: waba.phoneNumbers.map((number) =>
      Object.fromEntries(
        Object.entries(number).filter(([name]) => name === "id" || fields.includes(name)),
      )
    ),
    paging: { cursors: { before: "QVFIU", after: "QVFIU" } },
  });
}

/** `debug_token`'s `data` for `inputToken`: the account's token, or an invalid one. */
function _debugData(
  account: FakeDoctorAccount,
  inputToken: string | null,
  token: string,
): Record<string, unknown> {
  const described = account.token;
  const isKnown = inputToken === token;
  const isValid = isKnown && described.isValid;
  return {
    app_id: described.appId ?? account.appId,
    type: described.type,
    application: "Jasper's Market app",
    data_access_expires_at: 0,
    expires_at: described.expiresAt,
    is_valid: isValid,
    scopes: isValid ? described.scopes : [],
    ...(isValid ? { granular_scopes: described.granularScopes } : {}),
    ...(isValid ? {} : {
      error: described.error ??
        (isKnown
          ? {
            code: 190,
            message: "Error validating access token: Session has expired",
            subcode: 463,
          }
          : { code: 190, message: "Invalid OAuth access token." }),
    }),
    user_id: "10222270944537964",
  };
}

function _appTokenRefused(): Response {
  return _metaError(401, 190, "Invalid OAuth access token signature.");
}

function _noSuchObject(id: string): Response {
  return _metaError(
    400,
    100,
    `Unsupported get request. Object with ID '${id}' does not exist, cannot be loaded due to ` +
      "missing permissions, or does not support this operation.",
    33,
  );
}

/** Meta's error body (reference §9.1). */
function _metaError(status: number, code: number, message: string, subcode?: number): Response {
  return Response.json({
    error: {
      message,
      type: code === 100 ? "GraphMethodException" : "OAuthException",
      code,
      ...(subcode === undefined ? {} : { error_subcode: subcode }),
      fbtrace_id: `Fake${crypto.randomUUID().slice(0, 8)}`,
    },
  }, { status });
}
