/**
 * The delivery simulator for local development: posts a correctly signed delivery to a running
 * instance, as Meta would, and prints the answer and the events it produced.
 *
 * Usage:
 *
 * ```sh
 * deno run --allow-net --allow-env --allow-read tools/simulate.ts <kind|file> [--url URL]
 * ```
 *
 * - `<kind>`: a built-in sample, `text`, `image`, `status`, `batch` (several entries with
 *   messages and statuses) or `unknown` (a message type nobody knows), generated with fresh
 *   `wamid`s so that every run makes new events; or `<file>`: any file, posted byte for byte.
 * - `--url`: the webhook, by default `http://127.0.0.1:$PORT/webhook/whatsapp` (`PORT` 3001).
 * - The body is signed with the first secret of `APP_SECRET` (comma-separated to rotate), or with
 *   the development placeholder of `.env.example` when it is unset.
 * - The events are the ones `parseDeliveryText` computes locally from the body; each is fetched from
 *   the admin API (`GET /admin/events/:id` on the webhook's origin) with `ADMIN_TOKEN`, or the
 *   development placeholder when it is unset.
 *
 * Exits 0 when the instance acknowledged the delivery (2xx) and for `--help`, 1 when the instance
 * refused the delivery or could not be reached, 2 for a usage error. The admin API's answers are
 * reported but never change the code.
 *
 * @module
 */
import { DEFAULTS } from "../src/config.ts";
import { DEVELOPMENT_PLACEHOLDERS } from "../src/config_rules.ts";
import { parseDeliveryText, type WebhookEvent } from "../src/events/events.ts";
import { signBody } from "../src/webhook/signature.ts";

/** The built-in samples. */
export const SAMPLE_KINDS = ["text", "image", "status", "batch", "unknown"] as const;

/** One of {@linkcode SAMPLE_KINDS}. */
export type SampleKind = (typeof SAMPLE_KINDS)[number];

/** The WABA, business number and user of the samples: obviously made up. */
const WABA_ID = "100000000000001";
const PHONE_NUMBER_ID = "100000000000002";
const DISPLAY_PHONE_NUMBER = "15550000000";
const USER_WA_ID = "15551230000";
const OTHER_USER_WA_ID = "15551230001";

const _USAGE = `Usage: deno task simulate <${SAMPLE_KINDS.join("|")}|file.json> [--url URL]

Posts a signed delivery to a running wa-webhook (deno task dev) and prints the events it produced.
  text, image, status, batch, unknown   a built-in sample, with fresh message ids each run
  file.json                             any file, posted byte for byte
  --url URL   the webhook (default http://127.0.0.1:$PORT/webhook/whatsapp, PORT 3001)
Environment (.env.example, then .env): APP_SECRET (signing; first of the list),
ADMIN_TOKEN (admin API), PORT.`;

/** Options for {@linkcode buildSample}. */
export interface SampleOptions {
  /** The time of the sample's timestamps, ms since the epoch; defaults to now. */
  now?: number;
  /** Makes a fresh message id; defaults to `wamid.SIM` and a random UUID. */
  newWamid?: () => string;
}

/** Builds the delivery of a built-in sample, with fresh message ids and current timestamps. */
export function buildSample(kind: SampleKind, options: SampleOptions = {}): unknown {
  const seconds = String(Math.floor((options.now ?? Date.now()) / 1_000));
  const newWamid = options.newWamid ?? (() => `wamid.SIM${crypto.randomUUID()}`);
  const contact = (waId: string, name: string) => ({ profile: { name }, wa_id: waId });
  const text = (from: string, body: string) => ({
    from,
    id: newWamid(),
    timestamp: seconds,
    type: "text",
    text: { body },
  });
  const status = (status: string, recipient: string, wamid = newWamid()) => ({
    id: wamid,
    status,
    timestamp: seconds,
    recipient_id: recipient,
    ...(status === "sent"
      ? { pricing: { billable: true, pricing_model: "PMP", type: "regular", category: "utility" } }
      : {}),
  });

  switch (kind) {
    case "text":
      return _delivery([_messagesEntry({
        contacts: [contact(USER_WA_ID, "Simulated user")],
        messages: [text(USER_WA_ID, "Hello from the simulator")],
      })]);
    case "image":
      return _delivery([_messagesEntry({
        contacts: [contact(USER_WA_ID, "Simulated user")],
        messages: [{
          from: USER_WA_ID,
          id: newWamid(),
          timestamp: seconds,
          type: "image",
          image: {
            caption: "A simulated photo",
            mime_type: "image/jpeg",
            sha256: "c2ltdWxhdGVkLWltYWdlLWJ5dGVzLW5vdC1yZWFsLTAwMDA=",
            id: String(1_000_000_000_000_000 + Math.floor(Math.random() * 1_000_000)),
          },
        }],
      })]);
    case "status":
      return _delivery([_messagesEntry({
        contacts: [{ wa_id: USER_WA_ID }],
        statuses: [status("delivered", USER_WA_ID)],
      })]);
    case "batch": {
      const replied = newWamid();
      return _delivery([
        _messagesEntry({
          contacts: [contact(USER_WA_ID, "Simulated user"), contact(OTHER_USER_WA_ID, "Another")],
          messages: [text(USER_WA_ID, "First of a batch"), text(OTHER_USER_WA_ID, "Second")],
          statuses: [status("sent", USER_WA_ID, replied), status("delivered", USER_WA_ID, replied)],
        }),
        _messagesEntry({
          contacts: [contact(OTHER_USER_WA_ID, "Another")],
          messages: [text(OTHER_USER_WA_ID, "From a second entry")],
          statuses: [status("read", OTHER_USER_WA_ID)],
        }),
      ]);
    }
    case "unknown":
      return _delivery([_messagesEntry({
        contacts: [contact(USER_WA_ID, "Simulated user")],
        messages: [{
          from: USER_WA_ID,
          id: newWamid(),
          timestamp: seconds,
          type: "simulated_future_type",
          simulated_future_type: { note: "a message type this service does not know" },
        }],
      })]);
  }
}

/** Where the simulator reads its settings and writes its report. */
export interface SimulatorIo {
  /** Reads an environment variable. */
  env: (name: string) => string | undefined;
  /** Writes one line of the report. */
  print: (line: string) => void;
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
}

/** Runs the simulator with command-line `args`; resolves with the process exit code. */
export async function runSimulator(args: string[], io: SimulatorIo): Promise<number> {
  const doFetch = io.fetch ?? fetch;
  if (args.includes("--help") || args.includes("-h")) {
    io.print(_USAGE);
    return 0;
  }
  const parsed = _parseArgs(args, io.env("PORT") || String(DEFAULTS.port));
  if (typeof parsed === "string") {
    io.print(parsed);
    return 2;
  }
  const { target, url } = parsed;

  let body: Uint8Array<ArrayBuffer>;
  let label: string;
  if (_isSampleKind(target)) {
    body = new TextEncoder().encode(JSON.stringify(buildSample(target)));
    label = `${target} sample`;
  } else {
    try {
      body = await Deno.readFile(target);
    } catch (error) {
      io.print(
        `Cannot read "${target}": it is neither a sample (${
          SAMPLE_KINDS.join(", ")
        }) nor a readable file (${_message(error)})`,
      );
      return 2;
    }
    label = `file ${target}`;
  }

  const secret = (io.env("APP_SECRET") || DEVELOPMENT_PLACEHOLDERS.APP_SECRET).split(",")[0]!
    .trim();
  const signature = await signBody(secret, body);
  io.print(`POST ${url} (${label}, ${body.byteLength} bytes)`);
  let response: Response;
  try {
    response = await doFetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Hub-Signature-256": signature },
      body,
    });
  } catch (error) {
    io.print(`Cannot reach ${url}: ${_message(error)}; is the service running (deno task dev)?`);
    return 1;
  }
  const answer = await response.text();
  io.print(`${response.status} ${response.statusText}`.trim());
  if (!response.ok) {
    io.print(`  ${_reasonOf(answer)}`);
    if (response.status === 401) {
      io.print("  The signature was refused: set APP_SECRET to the instance's app secret");
    }
    return 1;
  }

  const events = _eventsOf(body);
  if (events === undefined) {
    io.print("The body is not JSON: no events to show");
    return 0;
  }
  io.print(`${events.length} event${events.length === 1 ? "" : "s"}:`);
  const adminToken = io.env("ADMIN_TOKEN") || DEVELOPMENT_PLACEHOLDERS.ADMIN_TOKEN;
  const origin = new URL(url).origin;
  let isAdminReachable = true;
  for (const event of events) {
    const summary = `  ${event.id}  ${_describe(event)}`;
    if (!isAdminReachable) {
      io.print(summary);
      continue;
    }
    const lookup = await _lookUp(doFetch, origin, event.id, adminToken);
    if (lookup.kind === "unreachable") {
      isAdminReachable = false;
      io.print(summary);
      io.print(`  (admin API unreachable at ${origin}: ${lookup.detail})`);
    } else {
      io.print(`${summary}  ${lookup.detail}`);
    }
  }
  return 0;
}

/** The settings read from the arguments, or a message for a usage error. */
function _parseArgs(
  args: string[],
  port: string,
): { target: string; url: string } | string {
  let url = `http://127.0.0.1:${port}/webhook/whatsapp`;
  const targets: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--url") {
      const value = args[++i];
      if (value === undefined) return `Missing value after "--url"\n\n${_USAGE}`;
      url = value;
    } else if (arg.startsWith("--url=")) {
      url = arg.slice("--url=".length);
    } else if (arg.startsWith("--")) {
      return `Unknown option "${arg}"\n\n${_USAGE}`;
    } else {
      targets.push(arg);
    }
  }
  if (targets.length === 0) return `Missing what to post: a sample or a file\n\n${_USAGE}`;
  if (targets.length > 1) {
    return `Expected one sample or file, got ${targets.length}: ${
      targets.map((target) => `"${target}"`).join(", ")
    }\n\n${_USAGE}`;
  }
  try {
    new URL(url);
  } catch {
    return `Cannot use "${url}" as the webhook: it is not a URL`;
  }
  return { target: targets[0]!, url };
}

/** What the admin API said about one event. */
interface Lookup {
  kind: "found" | "refused" | "unreachable";
  /** What to print beside the event. */
  detail: string;
}

async function _lookUp(
  doFetch: typeof fetch,
  origin: string,
  id: string,
  adminToken: string,
): Promise<Lookup> {
  let response: Response;
  try {
    response = await doFetch(`${origin}/admin/events/${encodeURIComponent(id)}`, {
      headers: { Authorization: `Bearer ${adminToken}` },
    });
  } catch (error) {
    return { kind: "unreachable", detail: _message(error) };
  }
  const text = await response.text();
  if (response.ok) {
    const record = _json(text) as { state?: unknown; attempts?: unknown } | undefined;
    return {
      kind: "found",
      detail: `recorded, state ${String(record?.state)}, attempts ${String(record?.attempts)}`,
    };
  }
  const reason = _reasonOf(text);
  if (response.status === 401) {
    return {
      kind: "refused",
      detail: `admin API refused the token (401: ${reason}); set ADMIN_TOKEN`,
    };
  }
  if (response.status === 404) {
    return {
      kind: "refused",
      detail: `admin API answered 404 (${reason}); is ADMIN_TOKEN set on the instance?`,
    };
  }
  return { kind: "refused", detail: `admin API answered ${response.status} (${reason})` };
}

function _describe(event: WebhookEvent): string {
  switch (event.kind) {
    case "message":
      return `message ${event.message.type}`;
    case "status":
      return `status ${event.status.status}`;
    case "echo":
      return `echo ${event.echo.type}`;
    case "change":
      return `change ${event.field}`;
    case "unknown":
      return `unknown (${event.reason})`;
  }
}

function _eventsOf(body: Uint8Array): WebhookEvent[] | undefined {
  try {
    // As intake reads it, so that a delivery kept whole has the id the service gave it.
    return parseDeliveryText(new TextDecoder("utf-8", { fatal: true }).decode(body)).events;
  } catch {
    return undefined;
  }
}

function _delivery(entries: unknown[]): unknown {
  return { object: "whatsapp_business_account", entry: entries };
}

function _messagesEntry(value: Record<string, unknown>): unknown {
  return {
    id: WABA_ID,
    changes: [{
      field: "messages",
      value: {
        messaging_product: "whatsapp",
        metadata: { display_phone_number: DISPLAY_PHONE_NUMBER, phone_number_id: PHONE_NUMBER_ID },
        ...value,
      },
    }],
  };
}

function _isSampleKind(value: string): value is SampleKind {
  return (SAMPLE_KINDS as readonly string[]).includes(value);
}

/** The `error` of a JSON error answer, or the text itself, on one line. */
function _reasonOf(text: string): string {
  const json = _json(text) as { error?: unknown } | undefined;
  const reason = typeof json?.error === "string" ? json.error : text;
  return reason.replace(/\s+/g, " ").slice(0, 200);
}

function _json(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** An error's message, with its cause's (`fetch failed` alone does not say why). */
function _message(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.cause instanceof Error ? `${error.message} (${error.cause.message})` : error.message;
}

if (import.meta.main) {
  const code = await runSimulator(Deno.args, {
    env: (name) => Deno.env.get(name),
    // deno-lint-ignore no-console
    print: (line) => console.log(line),
  });
  Deno.exit(code);
}
