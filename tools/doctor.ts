/**
 * `deno task doctor`: asks the Graph API, with the service's own settings, why webhooks might not
 * arrive, and prints a checklist (`src/doctor/`): the token, its permissions and accounts, the
 * app's webhook subscription (callback URL, `messages` field), whether the app is subscribed to
 * each account, and each business number's status, quality and messaging limit. Every failed line
 * comes with the exact fix.
 *
 * Usage:
 *
 * ```sh
 * deno task doctor [--url https://hooks.example.com/webhook/whatsapp] [--json]
 * ```
 *
 * - Reads the same environment as the service (`APP_ID`, `APP_SECRET`, `WHATSAPP_TOKEN`,
 *   `GRAPH_API_BASE_URL`, `GRAPH_API_VERSION`, `GRAPH_TIMEOUT_MS`, …), checked the same way; the
 *   destinations are not read.
 * - `--url`: the callback URL Meta should call; a bare origin gets `/webhook/whatsapp` added.
 * - `--json`: the report as JSON, the admin route's answer (`GET /admin/doctor`).
 *
 * Exits 0 when no check failed (warnings allowed), 1 when one did, 2 for a usage or configuration
 * error. Tokens and secrets are never printed.
 *
 * @module
 */
import { ConfigError } from "../src/config.ts";
import { CONFIG_NAMES, type ConfigName, loadConfig } from "../src/config_env.ts";
import { ExpectedUrlError, expectedWebhookUrl, runDoctor } from "../src/doctor/doctor.ts";
import { renderChecklist, renderJson } from "../src/doctor/report.ts";

/**
 * The variables the doctor does not need: the destinations and the Flows key (files it would need
 * permission to read, and secrets it has no use for).
 */
const _UNREAD: readonly ConfigName[] = [
  "DESTINATIONS",
  "DESTINATIONS_FILE",
  "FLOWS_PRIVATE_KEY",
  "FLOWS_PRIVATE_KEY_FILE",
  "FLOWS_KEY_PASSPHRASE",
];

/** The variables the doctor reads: the task's `--allow-env` list. */
export const DOCTOR_ENV_NAMES: readonly ConfigName[] = CONFIG_NAMES.filter(
  (name) => !_UNREAD.includes(name),
);

const _USAGE = `Usage: deno task doctor [--url URL] [--json]

Asks the Graph API, with this service's settings, what Meta sees: the access token and its
permissions, the app's webhook subscription (callback URL, "messages" field), whether the app is
subscribed to each WhatsApp Business Account, and each business number's status, quality and
messaging limit. Prints a checklist with a fix under each failed line.
  --url URL   the callback URL Meta should call (a bare origin gets /webhook/whatsapp)
  --json      print the report as JSON (the answer of GET /admin/doctor)
Environment: the service's (APP_ID, APP_SECRET, WHATSAPP_TOKEN, GRAPH_API_BASE_URL, ...).
Exit code: 0 nothing failed, 1 a check failed, 2 a usage or configuration error.`;

/** What {@linkcode runDoctorTask} needs from the outside world. */
export interface DoctorTaskOptions {
  /** Reads an environment variable. */
  env: (name: string) => string | undefined;
  /** Writes the output (the checklist, the JSON, or a refusal), a line break after it. */
  print: (text: string) => void;
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
}

/** Runs the doctor with `args`; resolves with the exit code. */
export async function runDoctorTask(args: string[], options: DoctorTaskOptions): Promise<number> {
  let isJson = false;
  let url: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--help" || arg === "-h") {
      options.print(_USAGE);
      return 0;
    } else if (arg === "--json") {
      isJson = true;
    } else if (arg === "--url" && i + 1 < args.length) {
      url = args[++i];
    } else if (arg.startsWith("--url=")) {
      url = arg.slice("--url=".length);
    } else {
      options.print(`Unknown argument "${arg.slice(0, 100)}"\n\n${_USAGE}`);
      return 2;
    }
  }
  let expectedUrl: string | undefined;
  try {
    expectedUrl = url === undefined ? undefined : expectedWebhookUrl(url);
  } catch (error) {
    if (!(error instanceof ExpectedUrlError)) throw error;
    options.print(error.message);
    return 2;
  }
  const environment = Object.fromEntries(DOCTOR_ENV_NAMES.map((name) => [name, options.env(name)]));
  let config;
  try {
    config = loadConfig(environment).config;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    options.print(`Cannot run the doctor:\n${error.message}`);
    return 2;
  }
  const report = await runDoctor({
    config,
    expectedUrl,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  options.print((isJson ? renderJson(report) : renderChecklist(report)).trimEnd());
  return report.status === "fail" ? 1 : 0;
}

if (import.meta.main) {
  const code = await runDoctorTask(Deno.args, {
    env: (name) => Deno.env.get(name),
    // deno-lint-ignore no-console
    print: (text) => console.log(text),
  });
  Deno.exit(code);
}
