/**
 * The doctor for "my webhook never arrives": asks the Graph API, with the configured app id,
 * app secret and access token, what Meta sees, and turns each answer into checklist lines
 * (`checks.ts`). In order: the settings, the Graph API reached, the app's credentials, the token
 * (valid, this app's, not expiring) and its WhatsApp permissions, the accounts it reaches, the
 * app's webhook subscription (active, its callback URL, the `messages` field), then per account
 * whether this app is subscribed to it and each business number's status, quality and limit.
 *
 * A branch stops where its answers would mean nothing: with the settings missing nothing is
 * asked; with the Graph API unreachable or the app's credentials refused, nothing more; with the
 * token invalid, its accounts are not read (the app's subscription still is: it uses the app
 * token). Every read is bounded by `GRAPH_TIMEOUT_MS`, the whole run by {@linkcode DOCTOR_DEADLINE_MS}.
 * No line quotes a configured token or secret: they are redacted from every line at the end.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { GraphApiError } from "../graph/errors.ts";
import { redactToken } from "../graph/transport_errors.ts";
import {
  accountsOf,
  checkAccounts,
  type CheckResult,
  checkScopes,
  checkSettings,
  type CheckStatus,
  checkSubscribedApps,
  checkSubscription,
  checkToken,
  type FixContext,
  graphFailure,
  WEBHOOK_PATH,
} from "./checks.ts";
import { createGraphReads, type GraphReads, type TokenInfo } from "./graph_reads.ts";
import { checkPhoneNumbers } from "./phone_checks.ts";

/** The most accounts whose subscription and numbers are read: two reads each. */
export const MAX_ACCOUNTS = 10;

/**
 * The whole run's time limit: accounts not reached by then are reported, not read, so the admin
 * route answers within about this long even when every read takes its full time limit.
 */
export const DOCTOR_DEADLINE_MS = 60_000;

/** What {@linkcode runDoctor} needs. */
export interface DoctorOptions {
  /** The service's configuration: `appId`, `appSecrets`, `whatsappToken`, the Graph API's URL. */
  config: Config;
  /**
   * The callback URL Meta should call (see {@linkcode expectedWebhookUrl}); without it the callback
   * URL is only checked to be https and to end in `/webhook/whatsapp`.
   */
  expectedUrl?: string | undefined;
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
  /** The current time in ms since the epoch, for the token's expiry; defaults to `Date.now`. */
  now?: () => number;
}

/** The doctor's answer: the checklist and its worst line. */
export interface DoctorReport {
  /** `fail` if any line failed, else `warn` if any warned, else `ok`. */
  status: CheckStatus;
  /** The Graph API asked, e.g. `https://graph.facebook.com/v26.0`. */
  graphUrl: string;
  checks: CheckResult[];
}

/** Raised for an expected URL that cannot be one; the message says why. */
export class ExpectedUrlError extends Error {
  override name = "ExpectedUrlError";
}

/**
 * The webhook URL Meta should call, from what an operator typed: an `https://` URL; a bare origin
 * (`https://hooks.example.com`) gets `/webhook/whatsapp` added.
 *
 * @throws {ExpectedUrlError} when `text` is not an absolute http(s) URL
 */
export function expectedWebhookUrl(text: string): string {
  const url = URL.parse(text.trim());
  if (url === null || (url.protocol !== "https:" && url.protocol !== "http:")) {
    throw new ExpectedUrlError(
      `Cannot use "${text.slice(0, 200)}" as the expected webhook URL: expected an absolute ` +
        `https URL such as "https://hooks.example.com${WEBHOOK_PATH}"`,
    );
  }
  if (url.pathname === "/") url.pathname = WEBHOOK_PATH;
  return url.href;
}

/** Runs every check; never throws for what Meta answers (a failure is a line). */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const { config } = options;
  const now = options.now ?? Date.now;
  const graphUrl = `${config.graphApiBaseUrl}/${config.graphApiVersion}`;
  const checks: CheckResult[] = [checkSettings(config)];
  const { appId, whatsappToken: token } = config;
  if (appId !== undefined && token !== undefined) {
    const context: FixContext = { graphUrl, appId, expectedUrl: options.expectedUrl };
    await _askMeta(checks, { ...options, now, appId, token, context });
  }
  const secrets = _secretsOf(config);
  const redacted = checks.map((check) => _redacted(check, secrets));
  return { status: _worst(redacted), graphUrl, checks: redacted };
}

interface _Run extends DoctorOptions {
  now: () => number;
  appId: string;
  token: string;
  context: FixContext;
}

async function _askMeta(checks: CheckResult[], run: _Run): Promise<void> {
  const { config, appId, token, context } = run;
  const deadline = run.now() + DOCTOR_DEADLINE_MS;
  const readsWith = (secret: string): GraphReads =>
    createGraphReads({
      baseUrl: config.graphApiBaseUrl,
      version: config.graphApiVersion,
      timeoutMs: config.graphTimeoutMs,
      appToken: `${appId}|${secret}`,
      token,
      ...(run.fetch ? { fetch: run.fetch } : {}),
    });

  // The app token is APP_ID|APP_SECRET; while rotating, the first secret Meta accepts is the one.
  let reads: GraphReads | undefined;
  let tokenInfo: TokenInfo | undefined;
  let refusal: GraphApiError | undefined;
  for (const secret of config.appSecrets) {
    reads = readsWith(secret);
    try {
      tokenInfo = await reads.debugToken();
      break;
    } catch (error) {
      if (!(error instanceof GraphApiError)) throw error;
      if (error.httpStatus === undefined) {
        checks.push({
          name: "Graph API",
          status: "fail",
          detail: `${error.message} (${config.graphApiBaseUrl})`,
          fix: `Check that GRAPH_API_BASE_URL ("${config.graphApiBaseUrl}") is right and that ` +
            "this machine reaches it (DNS, firewall, an HTTPS proxy); GRAPH_TIMEOUT_MS " +
            `(${config.graphTimeoutMs} ms) bounds each request`,
        });
        return;
      }
      refusal = error;
      if (error.category !== "auth") break;
    }
  }
  checks.push({ name: "Graph API", status: "ok", detail: `Answers at ${context.graphUrl}` });
  if (reads === undefined || tokenInfo === undefined) {
    checks.push(graphFailure(
      "app credentials",
      refusal ?? new GraphApiError({ message: "No app secret was tried", category: "auth" }),
      `Set APP_ID and APP_SECRET to the App ID and App secret of App settings > Basic in the App ` +
        `Dashboard (APP_ID is "${appId}")`,
    ));
    return;
  }
  checks.push({
    name: "app credentials",
    status: "ok",
    detail: `Meta accepts APP_ID "${appId}" with APP_SECRET`,
  });

  const tokenLine = checkToken(tokenInfo, { appId, nowMs: run.now() });
  checks.push(tokenLine);
  const isTokenUsable = tokenInfo.is_valid && tokenLine.status !== "fail";
  // The accounts are read only with a token that may read them: otherwise each read is refused.
  let accounts: string[] = [];
  if (isTokenUsable) {
    const scopes = checkScopes(tokenInfo);
    checks.push(scopes);
    const reached = accountsOf(tokenInfo);
    checks.push(checkAccounts(reached, MAX_ACCOUNTS));
    if (scopes.status === "ok") accounts = reached;
  }

  try {
    checks.push(...checkSubscription(await reads.appSubscriptions(appId), context));
  } catch (error) {
    if (!(error instanceof GraphApiError)) throw error;
    checks.push(graphFailure(
      "webhook subscription",
      error,
      "Check in the App Dashboard that APP_ID is the app whose webhook you configured",
    ));
  }

  for (const wabaId of accounts.slice(0, MAX_ACCOUNTS)) {
    if (run.now() > deadline) {
      checks.push({
        name: `WABA "${wabaId}"`,
        status: "warn",
        detail: `Not checked: the doctor's ${DOCTOR_DEADLINE_MS / 1_000} s were used up`,
        fix: "Run the doctor again; if the Graph API is slow, lower GRAPH_TIMEOUT_MS",
      });
      continue;
    }
    const access = `WHATSAPP_TOKEN cannot read account "${wabaId}": in Business settings > ` +
      "Users > System users, assign the account to the token's system user with full control";
    try {
      checks.push(checkSubscribedApps(wabaId, await reads.subscribedApps(wabaId), context));
    } catch (error) {
      if (!(error instanceof GraphApiError)) throw error;
      checks.push(graphFailure(`app subscribed to WABA "${wabaId}"`, error, access));
    }
    try {
      checks.push(...checkPhoneNumbers(wabaId, await reads.phoneNumbers(wabaId), context));
    } catch (error) {
      if (!(error instanceof GraphApiError)) throw error;
      checks.push(graphFailure(`phone numbers of WABA "${wabaId}"`, error, access));
    }
  }
}

/** Every configured secret, and the app tokens made of them. */
function _secretsOf(config: Config): string[] {
  return [
    config.whatsappToken,
    ...Object.values(config.whatsappTokens),
    ...config.appSecrets.map((secret) => `${config.appId}|${secret}`),
    ...config.appSecrets,
  ].filter((secret): secret is string => secret !== undefined && secret !== "");
}

function _redacted(check: CheckResult, secrets: readonly string[]): CheckResult {
  const redact = (text: string) =>
    secrets.reduce((redacted, secret) => redactToken(redacted, secret), text);
  return {
    ...check,
    detail: redact(check.detail),
    ...(check.fix === undefined ? {} : { fix: redact(check.fix) }),
  };
}

function _worst(checks: readonly CheckResult[]): CheckStatus {
  if (checks.some((check) => check.status === "fail")) return "fail";
  return checks.some((check) => check.status === "warn") ? "warn" : "ok";
}
