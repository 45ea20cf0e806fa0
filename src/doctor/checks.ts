/**
 * The doctor's checks: each a small function from what Meta answered to one or more
 * {@linkcode CheckResult} lines, `ok`, `warn` or `fail`, each `warn` and `fail` with the exact
 * step that fixes it (a Graph API call to run, or where to click in Meta's dashboards). The checks
 * read no network and no clock of their own: `doctor.ts` asks the Graph API and passes the answers.
 * The phone numbers' checks are in `phone_checks.ts`.
 *
 * Fixes name secrets by their variables (`$WHATSAPP_TOKEN`, `$APP_SECRET`), never by value, so a
 * fix can be pasted into a shell where the service's environment is set.
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { GraphApiError } from "../graph/errors.ts";
import type { AppSubscription, SubscribedApp, TokenInfo } from "./graph_reads.ts";

/** How a check went: `warn` is worth a look, `fail` means webhooks or replies are at risk. */
export type CheckStatus = "ok" | "warn" | "fail";

/** One line of the checklist. */
export interface CheckResult {
  /** What was checked, e.g. `access token` or `app subscribed to WABA "123"`; no `: ` in it. */
  name: string;
  status: CheckStatus;
  /** What Meta said, in one sentence. */
  detail: string;
  /** For `warn` and `fail`: the exact step that fixes it; lines of it separated by `\n`. */
  fix?: string;
}

/** Where fixes point their Graph API calls. */
export interface FixContext {
  /** `GRAPH_API_BASE_URL` and `GRAPH_API_VERSION`, e.g. `https://graph.facebook.com/v26.0`. */
  graphUrl: string;
  /** `APP_ID`. */
  appId: string;
  /** The callback URL Meta should call, when the caller gave one. */
  expectedUrl?: string | undefined;
}

/** The path wa-webhook answers Meta on. */
export const WEBHOOK_PATH = "/webhook/whatsapp";

/** The object of WhatsApp's webhooks in an app's subscriptions. */
export const WHATSAPP_OBJECT = "whatsapp_business_account";

/** The permissions a token needs: to send and receive, and to read the account's settings. */
export const REQUIRED_SCOPES = ["whatsapp_business_messaging", "whatsapp_business_management"];

/** A token expiring within this long gets a warning: the dashboard's temporary ones last 24 h. */
const EXPIRY_WARNING_MS = 7 * 24 * 3_600_000;

/** How much of Meta's own text (an error message, a name) a line quotes. */
const MAX_QUOTED_CHARS = 160;

/** How many field names the fields line lists. */
const MAX_LISTED_FIELDS = 12;

/** Where a new token comes from: a system user's, which can be made never to expire. */
const NEW_TOKEN_STEP =
  "In Meta Business Suite, Business settings > Users > System users > Generate new token: choose " +
  'this app, "Never" expires, and the permissions whatsapp_business_messaging and ' +
  "whatsapp_business_management; set WHATSAPP_TOKEN to it";

/** The settings line: the doctor needs `APP_ID` and `WHATSAPP_TOKEN`; `APP_SECRET` is required. */
export function checkSettings(config: Config): CheckResult {
  const missing: string[] = [];
  const fixes: string[] = [];
  if (config.appId === undefined) {
    missing.push("APP_ID");
    fixes.push(
      "Set APP_ID to the App ID shown in the App Dashboard, App settings > Basic (the app whose " +
        "webhook you configured)",
    );
  }
  if (config.whatsappToken === undefined) {
    missing.push("WHATSAPP_TOKEN");
    fixes.push(NEW_TOKEN_STEP);
  }
  if (missing.length === 0) {
    return {
      name: "settings",
      status: "ok",
      detail: "APP_ID, APP_SECRET and WHATSAPP_TOKEN are set",
    };
  }
  return {
    name: "settings",
    status: "fail",
    detail: `${missing.join(" and ")} ${missing.length === 1 ? "is" : "are"} not set: nothing ` +
      "could be asked of the Graph API",
    fix: fixes.join("\n"),
  };
}

/** The access token line: valid, made for this app, and not about to expire. */
export function checkToken(
  token: TokenInfo,
  context: { appId: string; nowMs: number },
): CheckResult {
  const name = "access token";
  if (!token.is_valid) {
    const error = token.error;
    const code = error?.code === undefined
      ? ""
      : ` (error ${error.code}${error.subcode === undefined ? "" : `, subcode ${error.subcode}`})`;
    const said = error?.message === undefined ? "" : `: "${clip(error.message)}"`;
    return {
      name,
      status: "fail",
      detail: `Meta says WHATSAPP_TOKEN is not valid${code}${said}`,
      fix: NEW_TOKEN_STEP,
    };
  }
  if (token.app_id !== undefined && token.app_id !== context.appId) {
    return {
      name,
      status: "fail",
      detail: `WHATSAPP_TOKEN was made for app "${token.app_id}", not APP_ID "${context.appId}"`,
      fix: `${NEW_TOKEN_STEP} (app "${context.appId}"); or, if app "${token.app_id}" is the one ` +
        "whose webhook you configured, set APP_ID and APP_SECRET to its id and secret",
    };
  }
  const kind = token.type === undefined
    ? "token"
    : `${token.type.toLowerCase().replaceAll("_", " ")} token`;
  const app = token.application === undefined ? "" : ` of app "${clip(token.application)}"`;
  const expiresAt = token.expires_at ?? 0;
  if (expiresAt === 0) {
    return { name, status: "ok", detail: `Valid ${kind}${app}, never expires` };
  }
  const expiresMs = expiresAt * 1_000;
  const when = new Date(expiresMs).toISOString();
  if (expiresMs <= context.nowMs) {
    return {
      name,
      status: "fail",
      detail: `WHATSAPP_TOKEN expired at ${when}`,
      fix: NEW_TOKEN_STEP,
    };
  }
  if (expiresMs - context.nowMs < EXPIRY_WARNING_MS) {
    const hours = Math.ceil((expiresMs - context.nowMs) / 3_600_000);
    return {
      name,
      status: "warn",
      detail: `Valid ${kind}${app}, but it expires at ${when} (in ${hours} h): replies stop then`,
      fix: NEW_TOKEN_STEP,
    };
  }
  return { name, status: "ok", detail: `Valid ${kind}${app}, expires at ${when}` };
}

/** The permissions line: both WhatsApp permissions granted to the token. */
export function checkScopes(token: TokenInfo): CheckResult {
  const missing = REQUIRED_SCOPES.filter((scope) => !token.scopes.includes(scope));
  if (missing.length === 0) {
    return {
      name: "token permissions",
      status: "ok",
      detail: `${REQUIRED_SCOPES.join(" and ")} granted`,
    };
  }
  return {
    name: "token permissions",
    status: "fail",
    detail: `WHATSAPP_TOKEN lacks ${missing.map((scope) => `"${scope}"`).join(" and ")}, so ` +
      "the accounts' settings cannot be read (not checked)",
    fix: NEW_TOKEN_STEP,
  };
}

/**
 * The WhatsApp Business Accounts the token reaches, from `granular_scopes[].target_ids` of its
 * WhatsApp permissions: management's first (Meta lists the newest account first), no repeats.
 */
export function accountsOf(token: TokenInfo): string[] {
  const ids = new Set<string>();
  for (const scope of [...REQUIRED_SCOPES].reverse()) {
    for (const granted of token.granular_scopes) {
      if (granted.scope === scope) { for (const id of granted.target_ids ?? []) ids.add(id); }
    }
  }
  return [...ids];
}

/** The accounts line: the token reaches at least one account; more than `limit` are not checked. */
export function checkAccounts(wabaIds: readonly string[], limit: number): CheckResult {
  const name = "WhatsApp Business Accounts";
  if (wabaIds.length === 0) {
    return {
      name,
      status: "fail",
      detail: "WHATSAPP_TOKEN reaches no WhatsApp Business Account: nothing to receive from",
      fix: "In Business settings > Users > System users, select the token's system user > Assign " +
        "assets > WhatsApp accounts, give it full control of the account, then generate the " +
        "token again (Meta lists the accounts in the token's granular scopes)",
    };
  }
  const listed = wabaIds.slice(0, limit).map((id) => `"${id}"`).join(", ");
  if (wabaIds.length > limit) {
    return {
      name,
      status: "warn",
      detail: `${wabaIds.length} accounts; the first ${limit} are checked: ${listed}`,
      fix: `Check the other ${wabaIds.length - limit} in WhatsApp Manager`,
    };
  }
  return { name, status: "ok", detail: `${wabaIds.length} found: ${listed}` };
}

/**
 * The app's webhook subscription for WhatsApp: the subscription line (present and active), then,
 * when there is one, the callback URL line (set, https, the expected URL or at least our path) and
 * the fields line (`messages` subscribed).
 */
export function checkSubscription(
  subscriptions: readonly AppSubscription[],
  context: FixContext,
): CheckResult[] {
  const subscription = subscriptions.find((s) => s.object === WHATSAPP_OBJECT);
  const subscribe = _subscribeFix(context);
  if (subscription === undefined) {
    return [{
      name: "webhook subscription",
      status: "fail",
      detail: `App "${context.appId}" has no webhook subscription for "${WHATSAPP_OBJECT}": ` +
        "Meta sends its webhooks nowhere",
      fix: subscribe,
    }];
  }
  const lines: CheckResult[] = [];
  if (subscription.active === false) {
    lines.push({
      name: "webhook subscription",
      status: "fail",
      detail: `The subscription for "${WHATSAPP_OBJECT}" is inactive: Meta sends nothing`,
      fix: subscribe,
    });
  } else {
    lines.push({
      name: "webhook subscription",
      status: "ok",
      detail: `Active for "${WHATSAPP_OBJECT}"`,
    });
  }
  lines.push(_checkCallbackUrl(subscription.callback_url, context, subscribe));
  lines.push(_checkFields(subscription.fields));
  return lines;
}

function _checkCallbackUrl(
  callbackUrl: string | undefined,
  context: FixContext,
  subscribe: string,
): CheckResult {
  const name = "callback URL";
  if (callbackUrl === undefined || callbackUrl.trim() === "") {
    return { name, status: "fail", detail: "No callback URL is set", fix: subscribe };
  }
  const url = URL.parse(callbackUrl);
  if (url === null) {
    return {
      name,
      status: "fail",
      detail: `"${clip(callbackUrl)}" is not a URL`,
      fix: subscribe,
    };
  }
  const shown = shownUrl(url);
  if (url.protocol !== "https:") {
    return {
      name,
      status: "fail",
      detail: `Meta is set to call "${shown}", which is not https: Meta calls only HTTPS URLs ` +
        "with a valid certificate",
      fix: "Serve the service over HTTPS (a reverse proxy, Deno Deploy, or a tunnel while " +
        `developing), then:\n${subscribe}`,
    };
  }
  if (context.expectedUrl !== undefined) {
    const expected = new URL(context.expectedUrl);
    if (!_isSameEndpoint(url, expected)) {
      return {
        name,
        status: "fail",
        detail: `Meta calls "${shown}", not "${shownUrl(expected)}"`,
        fix: subscribe,
      };
    }
    return { name, status: "ok", detail: `Meta calls "${shown}", as expected` };
  }
  if (!url.pathname.replace(/\/+$/, "").endsWith(WEBHOOK_PATH)) {
    return {
      name,
      status: "warn",
      detail: `Meta calls "${shown}", whose path does not end in "${WEBHOOK_PATH}", the path ` +
        "wa-webhook answers",
      fix: "Unless a proxy in front of the service rewrites the path, set the callback URL to " +
        `https://${url.host}${WEBHOOK_PATH}:\n${subscribe}`,
    };
  }
  return { name, status: "ok", detail: `Meta calls "${shown}"` };
}

function _checkFields(fields: readonly string[]): CheckResult {
  const listed = fields.slice(0, MAX_LISTED_FIELDS).map((f) => `"${clip(f)}"`).join(", ") +
    (fields.length > MAX_LISTED_FIELDS ? `, and ${fields.length - MAX_LISTED_FIELDS} more` : "");
  if (fields.includes("messages")) {
    return { name: "webhook fields", status: "ok", detail: `Subscribed: ${listed}` };
  }
  return {
    name: "webhook fields",
    status: "fail",
    detail: `"messages" is not subscribed, so no message or status arrives (subscribed: ${
      listed === "" ? "none" : listed
    })`,
    fix: 'In the App Dashboard, WhatsApp > Configuration > Webhook fields: "Subscribe" on ' +
      '"messages" (and any other field you want)',
  };
}

/** One account's subscribed apps: this app must be among them, or Meta sends it nothing. */
export function checkSubscribedApps(
  wabaId: string,
  apps: readonly SubscribedApp[],
  context: FixContext,
): CheckResult {
  const name = `app subscribed to WABA "${wabaId}"`;
  const ours = apps.find((app) => app.whatsapp_business_api_data?.id === context.appId);
  if (ours !== undefined) {
    const override = ours.override_callback_uri === undefined
      ? ""
      : ` (at the override "${_shownText(ours.override_callback_uri)}")`;
    return {
      name,
      status: "ok",
      detail: `App "${context.appId}" gets this account's webhooks${override}`,
    };
  }
  const others = apps.flatMap((app) => {
    const id = app.whatsapp_business_api_data?.id;
    return id === undefined ? [] : [`"${id}"`];
  });
  return {
    name,
    status: "fail",
    detail: `App "${context.appId}" is not subscribed to this account, so Meta sends it no ` +
      `webhook (subscribed: ${others.length === 0 ? "no app" : others.join(", ")})`,
    fix: `curl -X POST "${context.graphUrl}/${wabaId}/subscribed_apps" ` +
      '-H "Authorization: Bearer $WHATSAPP_TOKEN"',
  };
}

/** The error line of a read that failed, with `fix` for a refusal and a retry for an outage. */
export function graphFailure(name: string, error: GraphApiError, fix: string): CheckResult {
  const retry = error.category === "throttled"
    ? "Meta's rate limit was hit: run the doctor again in a few minutes"
    : error.category === "transient"
    ? "Run the doctor again; if this persists, see https://metastatus.com"
    : fix;
  return { name, status: "fail", detail: error.message, fix: retry };
}

/** A URL as a line shows it: origin and path; a query may hold a secret, so it is not shown. */
export function shownUrl(url: URL): string {
  return clip(`${url.origin}${url.pathname}${url.search === "" ? "" : "?…"}`);
}

/** `text` cut to {@linkcode MAX_QUOTED_CHARS}, on one line. */
export function clip(text: string): string {
  const line = text.replaceAll(/\s+/g, " ");
  return line.length > MAX_QUOTED_CHARS ? `${line.slice(0, MAX_QUOTED_CHARS)}…` : line;
}

function _shownText(text: string): string {
  const url = URL.parse(text);
  return url === null ? clip(text) : shownUrl(url);
}

/** Same scheme, host and path (a final slash aside); the query is not compared. */
function _isSameEndpoint(a: URL, b: URL): boolean {
  const path = (url: URL) => url.pathname.replace(/\/+$/, "");
  return a.origin === b.origin && path(a) === path(b);
}

/** How to subscribe the app to WhatsApp's webhooks: the dashboard, or the Graph API call. */
function _subscribeFix(context: FixContext): string {
  const url = context.expectedUrl ?? `https://<your host>${WEBHOOK_PATH}`;
  return `In the App Dashboard, WhatsApp > Configuration > Webhook > Edit: callback URL ${url}, ` +
    'verify token the value of VERIFY_TOKEN, "Verify and save"; then subscribe "messages". Or:\n' +
    `curl -X POST "${context.graphUrl}/${context.appId}/subscriptions" ` +
    `-d object=${WHATSAPP_OBJECT} -d callback_url="${url}" -d verify_token="$VERIFY_TOKEN" ` +
    '-d fields=messages -d access_token="$APP_ID|$APP_SECRET"';
}
