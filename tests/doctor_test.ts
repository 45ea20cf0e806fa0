/**
 * The doctor (`src/doctor/`, `deno task doctor`, `GET /admin/doctor`) against the fake Graph API
 * answering the doctor's reads in Meta's documented shapes (`fake_graph_doctor.ts`): a healthy
 * account passes every line and the task exits 0; each thing that stops webhooks (or replies) is a
 * failed line with its fix and a non-zero exit, run as a real subprocess with the task's flags.
 *
 * @module
 */
import assert from "node:assert/strict";
import { runDoctor } from "../src/doctor/doctor.ts";
import type { CheckResult } from "../src/doctor/checks.ts";
import { FAKE_TOKEN, type FakeGraphApi, startFakeGraphApi } from "./fake_graph_api.ts";
import {
  FAKE_APP_ID,
  FAKE_APP_SECRET,
  FAKE_CALLBACK_URL,
  FAKE_PHONE_NUMBER_ID,
  FAKE_WABA_ID,
  type FakeDoctorAccount,
  healthyDoctorAccount,
} from "./fake_graph_doctor.ts";
import { ROOT, taskCommand } from "./service_process.ts";
import { startTestServer, TEST_ADMIN_TOKEN, TEST_VERIFY_TOKEN, testConfig } from "./support.ts";

/** The lines of a healthy account, in order. */
const HEALTHY_LINES = [
  "settings",
  "Graph API",
  "app credentials",
  "access token",
  "token permissions",
  "WhatsApp Business Accounts",
  "webhook subscription",
  "callback URL",
  "webhook fields",
  `app subscribed to WABA "${FAKE_WABA_ID}"`,
  `number "+1 555-010-0001" (${FAKE_PHONE_NUMBER_ID})`,
];

/** The environment of the doctor against `fake`: the settings it needs, and a test's changes. */
function doctorEnv(fake: { url: string }, overrides: Record<string, string> = {}) {
  return {
    APP_ID: FAKE_APP_ID,
    APP_SECRET: FAKE_APP_SECRET,
    VERIFY_TOKEN: TEST_VERIFY_TOKEN,
    WHATSAPP_TOKEN: FAKE_TOKEN,
    GRAPH_API_BASE_URL: fake.url,
    ...overrides,
  };
}

interface TaskRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `deno task doctor`'s exact command (deno.json), run with `env` and `args` added. */
async function runTask(env: Record<string, string>, args: string[] = []): Promise<TaskRun> {
  const [program, ...taskArgs] = (await taskCommand("doctor")).split(/\s+/);
  assert.equal(program, "deno");
  const output = await new Deno.Command("deno", {
    args: [...taskArgs, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

/** A printed line of the checklist by its name: its mark, its detail, and the fix below it. */
interface PrintedLine {
  mark: string;
  detail: string;
  fix: string | undefined;
}

function printedLines(stdout: string): Map<string, PrintedLine> {
  const lines = stdout.split("\n");
  const printed = new Map<string, PrintedLine>();
  for (const [index, line] of lines.entries()) {
    const match = /^ {2}\[(ok|warn|FAIL)\]\s+(.+?): (.*)$/.exec(line);
    if (!match) continue;
    const fixLines: string[] = [];
    for (const next of lines.slice(index + 1)) {
      if (!next.startsWith(" ".repeat(9))) break;
      fixLines.push(next.trim().replace(/^fix: /, ""));
    }
    printed.set(match[2]!, {
      mark: match[1]!,
      detail: match[3]!,
      fix: fixLines.length === 0 ? undefined : fixLines.join("\n"),
    });
  }
  return printed;
}

/** Fails unless the output holds no token or secret of the test. */
function assertNoSecrets(text: string): void {
  for (const secret of [FAKE_TOKEN, FAKE_APP_SECRET]) {
    assert.ok(!text.includes(secret), `the output quotes a secret: ${text}`);
  }
}

Deno.test("deno task doctor passes a healthy account: every line ok, exit 0", async () => {
  await using fake = startFakeGraphApi({ doctor: healthyDoctorAccount() });
  const run = await runTask(doctorEnv(fake));
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const printed = printedLines(run.stdout);
  assert.deepEqual([...printed.keys()], HEALTHY_LINES, run.stdout);
  for (const [name, line] of printed) assert.equal(line.mark, "ok", `${name}: ${line.detail}`);
  assert.match(
    printed.get("callback URL")!.detail,
    /"https:\/\/hooks\.example\.com\/webhook\/whatsapp"/,
  );
  assert.match(
    printed.get(`number "+1 555-010-0001" (${FAKE_PHONE_NUMBER_ID})`)!.detail,
    /status CONNECTED, quality GREEN, limit TIER_1K, throughput STANDARD, platform CLOUD_API/,
  );
  assert.match(run.stdout, /Every check passed/);
  assertNoSecrets(run.stdout + run.stderr);

  // What Meta was asked, as documented: the app token for the token and the app's subscriptions,
  // the access token for the account's reads, the numbers' fields named.
  const appToken = `Bearer ${FAKE_APP_ID}|${FAKE_APP_SECRET}`;
  const asked = fake.requests.map((r) => [r.method, r.path, r.headers.authorization]);
  assert.deepEqual(asked, [
    ["GET", "/v26.0/debug_token", appToken],
    ["GET", `/v26.0/${FAKE_APP_ID}/subscriptions`, appToken],
    ["GET", `/v26.0/${FAKE_WABA_ID}/subscribed_apps`, `Bearer ${FAKE_TOKEN}`],
    ["GET", `/v26.0/${FAKE_WABA_ID}/phone_numbers`, `Bearer ${FAKE_TOKEN}`],
  ]);
});

/** One way an account can be broken, as the doctor must report it. */
interface Case {
  what: string;
  /** Changes the healthy account. */
  breaks?: (account: FakeDoctorAccount) => void;
  env?: (fake: FakeGraphApi) => Record<string, string>;
  args?: string[];
  /** The line that must report it. */
  line: string;
  mark: "FAIL" | "warn";
  detail: RegExp;
  fix: RegExp;
  /** Lines that must not be printed: their branch stops. */
  absent?: string[];
}

const _number = (account: FakeDoctorAccount) => account.wabas[FAKE_WABA_ID]!.phoneNumbers[0]!;
const NUMBER_LINE = `number "+1 555-010-0001" (${FAKE_PHONE_NUMBER_ID})`;
const SUBSCRIBE_FIX = new RegExp(
  String.raw`WhatsApp > Configuration > Webhook > Edit.*\n` +
    String.raw`curl -X POST "http://127\.0\.0\.1:\d+/v26\.0/${FAKE_APP_ID}/subscriptions" ` +
    String.raw`-d object=whatsapp_business_account -d callback_url=".*" ` +
    String.raw`-d verify_token="\$VERIFY_TOKEN" -d fields=messages ` +
    String.raw`-d access_token="\$APP_ID\|\$APP_SECRET"`,
);
const NEW_TOKEN_FIX = /System users > Generate new token.*whatsapp_business_messaging/;

const CASES: Case[] = [
  {
    what: "an expired token",
    breaks: (account) => {
      account.token.isValid = false;
      account.token.expiresAt = 1_700_000_000;
    },
    line: "access token",
    mark: "FAIL",
    detail: /not valid \(error 190, subcode 463\): "Error validating access token: Session has/,
    fix: NEW_TOKEN_FIX,
    absent: ["token permissions", "WhatsApp Business Accounts", NUMBER_LINE],
  },
  {
    what: "a token of another app",
    breaks: (account) => void (account.token.appId = "999999"),
    line: "access token",
    mark: "FAIL",
    detail: /made for app "999999", not APP_ID "1234567890123456"/,
    fix: /set APP_ID and APP_SECRET/,
  },
  {
    what: "a token that expires within hours",
    breaks: (account) => void (account.token.expiresAt = Math.floor(Date.now() / 1_000) + 3_600),
    line: "access token",
    mark: "warn",
    detail: /expires at .* \(in 1 h\): replies stop then/,
    fix: /"Never" expires/,
  },
  {
    what: "a token without the WhatsApp permissions",
    breaks: (account) => void (account.token.scopes = ["public_profile"]),
    line: "token permissions",
    mark: "FAIL",
    detail: /lacks "whatsapp_business_messaging" and "whatsapp_business_management"/,
    fix: NEW_TOKEN_FIX,
    absent: [`app subscribed to WABA "${FAKE_WABA_ID}"`, NUMBER_LINE],
  },
  {
    what: "a token that reaches no account",
    breaks: (account) => void (account.token.granularScopes = []),
    line: "WhatsApp Business Accounts",
    mark: "FAIL",
    detail: /reaches no WhatsApp Business Account/,
    fix: /Assign assets > WhatsApp accounts/,
  },
  {
    what: "the app not subscribed to the account",
    breaks: (account) => void (account.wabas[FAKE_WABA_ID]!.subscribedApps = ["777"]),
    line: `app subscribed to WABA "${FAKE_WABA_ID}"`,
    mark: "FAIL",
    detail: /App "1234567890123456" is not subscribed .* \(subscribed: "777"\)/,
    fix: new RegExp(
      String.raw`^curl -X POST "http://127\.0\.0\.1:\d+/v26\.0/${FAKE_WABA_ID}/subscribed_apps" ` +
        String.raw`-H "Authorization: Bearer \$WHATSAPP_TOKEN"$`,
    ),
  },
  {
    what: "no webhook subscription",
    breaks: (account) => void (account.subscriptions = []),
    line: "webhook subscription",
    mark: "FAIL",
    detail: /no webhook subscription for "whatsapp_business_account"/,
    fix: SUBSCRIBE_FIX,
    absent: ["callback URL", "webhook fields"],
  },
  {
    what: "an inactive webhook subscription",
    breaks: (account) => void (account.subscriptions[0]!.active = false),
    line: "webhook subscription",
    mark: "FAIL",
    detail: /is inactive/,
    fix: SUBSCRIBE_FIX,
  },
  {
    what: "a callback URL that is not https",
    breaks: (account) =>
      void (account.subscriptions[0]!.callback_url = "http://hooks.example.com/webhook/whatsapp"),
    line: "callback URL",
    mark: "FAIL",
    detail: /"http:\/\/hooks\.example\.com\/webhook\/whatsapp", which is not https/,
    fix: /Serve the service over HTTPS/,
  },
  {
    what: "a callback URL other than the expected one",
    args: ["--url", "https://wa.example.org"],
    line: "callback URL",
    mark: "FAIL",
    detail:
      /calls "https:\/\/hooks\.example\.com\/webhook\/whatsapp", not "https:\/\/wa\.example\.org\/webhook\/whatsapp"/,
    fix: /callback URL https:\/\/wa\.example\.org\/webhook\/whatsapp/,
  },
  {
    what: "the messages field not subscribed",
    breaks: (account) =>
      void (account.subscriptions[0]!.fields = [{ name: "account_update", version: "v26.0" }]),
    line: "webhook fields",
    mark: "FAIL",
    detail: /"messages" is not subscribed.*\(subscribed: "account_update"\)/,
    fix: /Webhook fields: "Subscribe" on "messages"/,
  },
  {
    what: "a number that is not registered",
    breaks: (account) => {
      _number(account).status = "PENDING";
      _number(account).platform_type = "NOT_APPLICABLE";
    },
    line: NUMBER_LINE,
    mark: "FAIL",
    detail: /not registered for the Cloud API/,
    fix: new RegExp(
      String.raw`^curl -X POST "http://127\.0\.0\.1:\d+/v26\.0/${FAKE_PHONE_NUMBER_ID}/register" `,
    ),
  },
  {
    what: "a flagged number",
    breaks: (account) => void (_number(account).status = "FLAGGED"),
    line: NUMBER_LINE,
    mark: "FAIL",
    detail: /its status is FLAGGED, not CONNECTED/,
    fix: /Raise its quality/,
  },
  {
    what: "a number whose quality is RED",
    breaks: (account) => void (_number(account).quality_rating = "RED"),
    line: NUMBER_LINE,
    mark: "FAIL",
    detail: /its quality is RED/,
    fix: /Insights/,
  },
  {
    what: "a number with a low messaging limit",
    breaks: (account) => void (_number(account).messaging_limit_tier = "TIER_250"),
    line: NUMBER_LINE,
    mark: "warn",
    detail: /messaging limit is low \(TIER_250\)/,
    fix: /Verify the business/,
  },
  {
    what: "a wrong app secret",
    env: (fake) => doctorEnv(fake, { APP_SECRET: "another-app-secret-0123456789ab" }),
    line: "app credentials",
    mark: "FAIL",
    detail: /HTTP 401 with error 190 \(auth\)/,
    fix: /Set APP_ID and APP_SECRET to the App ID and App secret of App settings > Basic/,
    absent: ["access token", "webhook subscription"],
  },
  {
    what: "no APP_ID",
    env: (fake) => ({ ...doctorEnv(fake), APP_ID: "" }),
    line: "settings",
    mark: "FAIL",
    detail: /^APP_ID is not set/,
    fix: /Set APP_ID to the App ID/,
    absent: ["Graph API"],
  },
];

for (const testCase of CASES) {
  Deno.test(`deno task doctor reports ${testCase.what} with its fix`, async () => {
    const account = healthyDoctorAccount();
    testCase.breaks?.(account);
    await using fake = startFakeGraphApi({ doctor: account });
    const run = await runTask(testCase.env?.(fake) ?? doctorEnv(fake), testCase.args);
    assert.equal(run.code, testCase.mark === "FAIL" ? 1 : 0, run.stdout + run.stderr);
    const printed = printedLines(run.stdout);
    const line = printed.get(testCase.line);
    assert.ok(line, `no line "${testCase.line}" in:\n${run.stdout}`);
    assert.equal(line.mark, testCase.mark, run.stdout);
    assert.match(line.detail, testCase.detail);
    assert.match(line.fix ?? "", testCase.fix);
    for (const [name, other] of printed) {
      if (name !== testCase.line) assert.notEqual(other.mark, "FAIL", `${name}: ${other.detail}`);
    }
    for (const name of testCase.absent ?? []) assert.ok(!printed.has(name), run.stdout);
    assertNoSecrets(run.stdout + run.stderr);
  });
}

Deno.test("deno task doctor reports a Graph API it cannot reach, and stops there", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const fake = { url: `http://127.0.0.1:${closedPort}` };
  const run = await runTask(doctorEnv(fake));
  assert.equal(run.code, 1, run.stdout + run.stderr);
  const printed = printedLines(run.stdout);
  assert.deepEqual([...printed.keys()], ["settings", "Graph API"]);
  const graph = printed.get("Graph API")!;
  assert.equal(graph.mark, "FAIL");
  assert.match(graph.detail, /^Cannot connect to the Graph API: .*\(http:\/\/127\.0\.0\.1:\d+\)$/);
  assert.match(graph.fix ?? "", /GRAPH_API_BASE_URL \("http:\/\/127\.0\.0\.1:\d+"\)/);
});

Deno.test("runDoctor() bounds each read by GRAPH_TIMEOUT_MS: a Graph API that never answers fails", async () => {
  await using fake = startFakeGraphApi({ doctor: healthyDoctorAccount() });
  fake.script({ delayMs: Infinity });
  const config = testConfig({ ...doctorEnv(fake), GRAPH_TIMEOUT_MS: "100" });
  const started = performance.now();
  const report = await runDoctor({ config });
  // Far above 100 ms, far below an unbounded wait: the fake never answers.
  assert.ok(performance.now() - started < 5_000, "the read was not cut off by its time limit");
  assert.equal(report.status, "fail");
  assert.deepEqual(report.checks.map((c) => [c.name, c.status]), [
    ["settings", "ok"],
    ["Graph API", "fail"],
  ]);
  assert.match(report.checks[1]!.detail, /^The Graph API did not answer within 100 ms/);
});

Deno.test("runDoctor() never quotes the token, even when Meta's answer does", async () => {
  const account = healthyDoctorAccount();
  account.token.isValid = false;
  account.token.error = { code: 190, message: `Token ${FAKE_TOKEN} was revoked` };
  await using fake = startFakeGraphApi({ doctor: account });
  const report = await runDoctor({ config: testConfig(doctorEnv(fake)) });
  const token = report.checks.find((check) => check.name === "access token");
  assert.equal(
    token?.detail,
    'Meta says WHATSAPP_TOKEN is not valid (error 190): "Token [redacted] was revoked"',
  );
  assertNoSecrets(JSON.stringify(report));
});

Deno.test("runDoctor() tries each APP_SECRET while rotating: the one Meta accepts is used", async () => {
  await using fake = startFakeGraphApi({ doctor: healthyDoctorAccount() });
  const config = testConfig(
    doctorEnv(fake, { APP_SECRET: `old-app-secret-0123456789abcdef,${FAKE_APP_SECRET}` }),
  );
  const report = await runDoctor({ config });
  assert.equal(report.status, "ok", JSON.stringify(report, null, 2));
});

Deno.test("GET /admin/doctor answers the task's JSON, and refuses without the admin token", async () => {
  const account = healthyDoctorAccount();
  account.wabas[FAKE_WABA_ID]!.subscribedApps = [];
  await using fake = startFakeGraphApi({ doctor: account });
  await using server = await startTestServer({
    startWorker: false,
    config: testConfig({ ...doctorEnv(fake), ADMIN_TOKEN: TEST_ADMIN_TOKEN }),
  });
  const url = `${server.origin}/admin/doctor?url=${encodeURIComponent(FAKE_CALLBACK_URL)}`;

  const refused = await fetch(url);
  assert.equal(refused.status, 401);
  assert.match(refused.headers.get("WWW-Authenticate") ?? "", /^Bearer/);
  await refused.body?.cancel();
  const wrong = await fetch(url, { headers: { Authorization: "Bearer not-the-admin-token" } });
  assert.equal(wrong.status, 401);
  await wrong.body?.cancel();
  assert.equal(fake.requests.length, 0, "a refused request asks Meta nothing");

  const response = await fetch(url, { headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
  assert.equal(response.status, 200);
  const report = await response.json() as { status: string; checks: CheckResult[] };
  assert.equal(report.status, "fail");
  const subscribed = report.checks.find((c) =>
    c.name === `app subscribed to WABA "${FAKE_WABA_ID}"`
  );
  assert.equal(subscribed?.status, "fail");
  assert.match(subscribed?.fix ?? "", /subscribed_apps/);
  assert.equal(
    report.checks.find((c) => c.name === "callback URL")?.detail.endsWith("as expected"),
    true,
  );

  const run = await runTask(doctorEnv(fake), ["--json", "--url", FAKE_CALLBACK_URL]);
  assert.equal(run.code, 1, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout), report);

  const bad = await fetch(`${server.origin}/admin/doctor?url=ftp%3A%2F%2Fx`, {
    headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
  });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /expected an absolute https URL/);
});

Deno.test("deno task doctor refuses an unknown argument, a URL that is not one and a bad APP_ID with exit 2", async () => {
  const fake = { url: "http://127.0.0.1:9" };
  const unknown = await runTask(doctorEnv(fake), ["--verbose"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stdout, /^Unknown argument "--verbose"\n\nUsage: deno task doctor/);
  const notUrl = await runTask(doctorEnv(fake), ["--url", "hooks.example.com"]);
  assert.equal(notUrl.code, 2);
  assert.match(notUrl.stdout, /Cannot use "hooks\.example\.com" as the expected webhook URL/);
  const badAppId = await runTask(doctorEnv(fake, { APP_ID: "my-app" }));
  assert.equal(badAppId.code, 2);
  assert.match(badAppId.stdout, /^Cannot run the doctor:\nInvalid configuration: APP_ID expected/);
});
