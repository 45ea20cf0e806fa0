/**
 * Destination declarations: defaults filled, every kind of bad input refused with one line naming
 * the destination, the field and why (never a secret), and the same rules from `DESTINATIONS`,
 * `DESTINATIONS_FILE` and code; the file read with the start task's permissions.
 */
import assert from "node:assert/strict";
import { ConfigError, resolveConfig } from "../src/config.ts";
import { loadConfig } from "../src/config_env.ts";
import {
  DESTINATION_DEFAULTS,
  MAX_DECLARATIONS_BYTES,
  MAX_DESTINATIONS,
  parseDestinations,
  readDestinationsFile,
} from "../src/destinations/declarations.ts";
import { ROOT, runToExit, serviceEnv, withDataDir } from "./service_process.ts";

/** A Standard Webhooks secret of `bytes` bytes. */
function secretOf(bytes: number, fill = "s"): string {
  return `whsec_${btoa(fill.repeat(bytes))}`;
}

const SECRET = secretOf(32);
const OLD_SECRET = secretOf(32, "o");

/** A valid declaration, with `changes` over it. */
function declaration(changes: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: "crm",
    url: "https://crm.example.com/hooks/whatsapp",
    secrets: [SECRET],
    ...changes,
  };
}

/** The lines of the `ConfigError` that parsing `declarations` throws. */
function refusal(declarations: unknown, source = "DESTINATIONS"): string[] {
  try {
    parseDestinations(JSON.stringify(declarations), source);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.message.split("\n");
  }
  assert.fail("the declarations were accepted");
}

/** Asserts that `declarations` are refused with exactly `lines`. */
function assertRefused(declarations: unknown, lines: string[]): void {
  assert.deepEqual(refusal(declarations), lines);
}

const REQUIRED = { APP_SECRET: "0123456789abcdef0123456789abcdef", VERIFY_TOKEN: "a-real-token" };

Deno.test("parseDestinations() fills every default and keeps what is given", () => {
  const [plain, tuned] = parseDestinations(
    JSON.stringify([
      declaration(),
      {
        name: "billing_2",
        url: "http://127.0.0.1:8080/in",
        secrets: [OLD_SECRET, SECRET],
        filter: { kinds: ["status"], statuses: ["failed"] },
        timeoutMs: 2_500,
        concurrency: 1,
        ratePerSecond: 0.5,
        paused: true,
      },
    ]),
    "DESTINATIONS",
  );
  assert.deepEqual(plain, {
    name: "crm",
    url: "https://crm.example.com/hooks/whatsapp",
    secrets: [SECRET],
    filter: {},
    timeoutMs: 10_000,
    concurrency: 4,
    paused: false,
  });
  assert.deepEqual(DESTINATION_DEFAULTS, { timeoutMs: 10_000, concurrency: 4, paused: false });
  assert.deepEqual(tuned, {
    name: "billing_2",
    url: "http://127.0.0.1:8080/in",
    secrets: [OLD_SECRET, SECRET],
    filter: { kinds: ["status"], statuses: ["failed"] },
    timeoutMs: 2_500,
    concurrency: 1,
    ratePerSecond: 0.5,
    paused: true,
  });
  assert.deepEqual(parseDestinations("[]", "DESTINATIONS"), []);
});

Deno.test("parseDestinations() refuses a bad name, naming the destination by its index", () => {
  for (const name of ["CRM", "crm.example", "", "x".repeat(65), "a b"]) {
    assertRefused([declaration(), declaration({ name })], [
      `Invalid configuration: DESTINATIONS destination at index 1 name must be 1 to 64 characters of a-z, 0-9, "_" and "-", got ${
        JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}…` : name)
      }`,
    ]);
  }
  assertRefused([{ url: "https://a.example/", secrets: [SECRET] }], [
    "Invalid configuration: DESTINATIONS destination at index 0 name is required",
  ]);
  // The longest name is accepted.
  assert.equal(
    parseDestinations(JSON.stringify([declaration({ name: "a".repeat(64) })]), "D").length,
    1,
  );
});

Deno.test("parseDestinations() refuses a name declared twice: job ids are keyed by it", () => {
  assertRefused([declaration(), declaration({ name: "erp" }), declaration()], [
    `Invalid configuration: DESTINATIONS destination "crm" name is declared 2 times (at indexes 0, 2): names key delivery jobs, so each must be unique`,
  ]);
});

Deno.test("parseDestinations() refuses a URL that is not http(s), not absolute, or holds credentials", () => {
  assertRefused([declaration({ url: "ftp://files.example.com/drop" })], [
    `Invalid configuration: DESTINATIONS destination "crm" url must be http(s), got "ftp://…"`,
  ]);
  assertRefused([declaration({ url: "crm.example.com/hooks" })], [
    `Invalid configuration: DESTINATIONS destination "crm" url must be an absolute http(s) URL, such as "https://crm.example.com/whatsapp"`,
  ]);
  const lines = refusal([declaration({ url: "https://admin:hunter2secret@crm.example.com/" })]);
  assert.deepEqual(lines, [
    'Invalid configuration: DESTINATIONS destination "crm" url must not hold credentials (user:password@): consumers verify the signature instead',
  ]);
  assertRefused([declaration({ url: `https://a.example/${"p".repeat(2_048)}` })], [
    `Invalid configuration: DESTINATIONS destination "crm" url must be at most 2048 characters, got 2066`,
  ]);
  assertRefused([declaration({ url: 42 })], [
    `Invalid configuration: DESTINATIONS destination "crm" url must be an http(s) URL, got "42"`,
  ]);
});

Deno.test("parseDestinations() refuses a bad secret by its position, never quoting it", () => {
  const bad = [
    "s3cr3t-without-prefix-AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    `whsec_${btoa("s".repeat(32))}!`, // not base64
    `whsec_${btoa("s".repeat(32)).replace(/=+$/, "")}AB`, // padding wrong
    secretOf(23), // too short
    secretOf(65), // too long
    `WHSEC_${btoa("s".repeat(32))}`,
  ];
  for (const secret of bad) {
    const lines = refusal([declaration({ secrets: [OLD_SECRET, secret] })]);
    assert.deepEqual(lines, [
      `Invalid configuration: DESTINATIONS destination "crm" secrets[1] must be a Standard Webhooks secret: "whsec_" then the base64 of 24 to 64 bytes (the value is not shown)`,
    ], secret);
    for (const part of [secret, secret.slice(6, 30), OLD_SECRET.slice(6)]) {
      assert.ok(!lines.join("\n").includes(part), `${part} is in the message`);
    }
  }
  // A secret given as text rather than a list is not quoted either.
  const single = refusal([declaration({ secrets: SECRET })]);
  assert.deepEqual(single, [
    `Invalid configuration: DESTINATIONS destination "crm" secrets must be a list of secrets, got text: put the secret in [ ]`,
  ]);
  assertRefused([declaration({ secrets: [] })], [
    `Invalid configuration: DESTINATIONS destination "crm" secrets must hold at least one Standard Webhooks secret`,
  ]);
  // No more secrets than a delivery signs with: the start would fail later, at signing.
  assertRefused([declaration({ secrets: [1, 2, 3, 4, 5].map((n) => secretOf(24 + n)) })], [
    `Invalid configuration: DESTINATIONS destination "crm" secrets must have at most 4 secrets (two while rotating)`,
  ]);
  // The bounds of the key size are accepted.
  const edges = [secretOf(24), secretOf(64), secretOf(25), secretOf(26)];
  assert.deepEqual(
    parseDestinations(JSON.stringify([declaration({ secrets: edges })]), "D")[0]!.secrets,
    edges,
  );
});

Deno.test("parseDestinations() refuses an unknown filter value, listing the known ones", () => {
  const [kinds, types, fields, statuses, numbers, unknownList] = [
    { kinds: ["messages"] },
    { messageTypes: ["text", "txt"] },
    { fields: ["account_updates"] },
    { statuses: ["seen"] },
    { phoneNumberIds: ["+15550001111"] },
    { kind: ["message"] },
  ].map((filter) => refusal([declaration({ filter })]));
  assert.deepEqual(kinds, [
    `Invalid configuration: DESTINATIONS destination "crm" filter.kinds[0] must be an event kind ("message", "status", "echo", "change", "unknown"), got "messages"`,
  ]);
  assert.match(
    types![0]!,
    /^Invalid configuration: DESTINATIONS destination "crm" filter\.messageTypes\[1\] must be a message type this service knows, or "unknown" \("text", "image", .*"revoke", "unknown"\), got "txt"$/,
  );
  assert.match(
    fields![0]!,
    /^Invalid configuration: DESTINATIONS destination "crm" filter\.fields\[0\] must be a webhook field this service knows, or "unknown" \("messages", "account_alerts", .*"account_update", .*\), got "account_updates"$/,
  );
  assert.deepEqual(statuses, [
    `Invalid configuration: DESTINATIONS destination "crm" filter.statuses[0] must be a status value this service knows, or "unknown" ("sent", "delivered", "read", "played", "failed", "unknown"), got "seen"`,
  ]);
  assert.deepEqual(numbers, [
    `Invalid configuration: DESTINATIONS destination "crm" filter.phoneNumberIds[0] must be a phone number id (up to 32 digits), got "+15550001111"`,
  ]);
  assert.deepEqual(unknownList, [
    `Invalid configuration: DESTINATIONS destination "crm" filter has unknown field "kind"`,
  ]);
  for (const lines of [kinds, types, fields, statuses, numbers]) assert.equal(lines!.length, 1);
});

Deno.test("parseDestinations() refuses numbers outside their bounds and accepts the bounds", () => {
  const cases: [string, unknown, string][] = [
    ["timeoutMs", 99, "a whole number from 100 to 60000"],
    ["timeoutMs", 60_001, "a whole number from 100 to 60000"],
    ["timeoutMs", 1_000.5, "a whole number from 100 to 60000"],
    ["timeoutMs", "5000", "a whole number from 100 to 60000"],
    ["concurrency", 0, "a whole number from 1 to 64"],
    ["concurrency", 65, "a whole number from 1 to 64"],
    ["ratePerSecond", 0, "a number from 0.1 to 1000"],
    ["ratePerSecond", 1_001, "a number from 0.1 to 1000"],
  ];
  for (const [field, value, expected] of cases) {
    assertRefused([declaration({ [field]: value })], [
      `Invalid configuration: DESTINATIONS destination "crm" ${field} must be ${expected}, got "${value}"`,
    ]);
  }
  const [low, high] = parseDestinations(
    JSON.stringify([
      declaration({ timeoutMs: 100, concurrency: 1, ratePerSecond: 0.1 }),
      declaration({ name: "b", timeoutMs: 60_000, concurrency: 64, ratePerSecond: 1_000 }),
    ]),
    "DESTINATIONS",
  );
  assert.deepEqual([low!.timeoutMs, low!.concurrency, low!.ratePerSecond], [100, 1, 0.1]);
  assert.deepEqual([high!.timeoutMs, high!.concurrency, high!.ratePerSecond], [60_000, 64, 1_000]);
});

Deno.test("parseDestinations() gives every problem at once, one line each, and refuses unknown fields", () => {
  const lines = refusal([
    declaration({ url: "ftp://x.example/", paused: "no", secret: SECRET }),
    7,
    { name: "erp" },
  ]);
  assert.deepEqual(lines, [
    `Invalid configuration: DESTINATIONS destination "crm" url must be http(s), got "ftp://…"`,
    `Invalid configuration: DESTINATIONS destination "crm" paused must be true or false, got "no"`,
    `Invalid configuration: DESTINATIONS destination "crm" has unknown field "secret"`,
    `Invalid configuration: DESTINATIONS destination at index 1 must be an object, got "7"`,
    `Invalid configuration: DESTINATIONS destination "erp" url is required`,
    `Invalid configuration: DESTINATIONS destination "erp" secrets is required: one or more Standard Webhooks secrets`,
  ]);
  assert.ok(!lines.join("\n").includes(SECRET.slice(6)));
});

Deno.test("parseDestinations() refuses invalid JSON without quoting it, and what is not a list", () => {
  const text = `[{"name": "crm", "secrets": ["${SECRET}"] oops}]`;
  assert.throws(
    () => parseDestinations(text, "DESTINATIONS"),
    (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(
        error.message,
        /^Invalid configuration: DESTINATIONS is not valid JSON: .* \(at byte \d+\)$/,
      );
      assert.ok(!error.message.includes(SECRET.slice(6, 20)), error.message);
      return true;
    },
  );
  assertRefused({ name: "crm" }, [
    "Invalid configuration: DESTINATIONS must be a JSON array of destinations, got an object",
  ]);
  const many = Array.from(
    { length: MAX_DESTINATIONS + 1 },
    (_, i) => declaration({ name: `d${i}` }),
  );
  assertRefused(many, [
    `Invalid configuration: DESTINATIONS has ${
      MAX_DESTINATIONS + 1
    } destinations; at most ${MAX_DESTINATIONS} are allowed`,
  ]);
  assert.throws(
    () => parseDestinations(" ".repeat(MAX_DECLARATIONS_BYTES + 1), "DESTINATIONS"),
    new ConfigError(
      `Invalid configuration: DESTINATIONS is ${
        MAX_DECLARATIONS_BYTES + 1
      } bytes; at most ${MAX_DECLARATIONS_BYTES} are allowed`,
    ),
  );
});

Deno.test("loadConfig() reads DESTINATIONS; none by default", () => {
  assert.deepEqual(loadConfig(REQUIRED).config.destinations, []);
  const { config } = loadConfig({ ...REQUIRED, DESTINATIONS: JSON.stringify([declaration()]) });
  assert.deepEqual(config.destinations.map((d) => [d.name, d.concurrency]), [["crm", 4]]);
  assert.throws(
    () =>
      loadConfig({
        ...REQUIRED,
        DESTINATIONS: JSON.stringify([declaration({ concurrency: 0 })]),
        PORT: "x",
      }),
    new ConfigError([
      `Invalid configuration: PORT expected a whole number from 0 to 65535, got "x"`,
      `Invalid configuration: DESTINATIONS destination "crm" concurrency must be a whole number from 1 to 64, got "0"`,
    ].join("\n")),
  );
  assert.throws(
    () => loadConfig({ ...REQUIRED, DESTINATIONS: "[" }),
    new ConfigError(
      "Invalid configuration: DESTINATIONS is not valid JSON: unexpected end of input",
    ),
  );
});

Deno.test("loadConfig() refuses DESTINATIONS and DESTINATIONS_FILE both set", () => {
  const reads: string[] = [];
  assert.throws(
    () =>
      loadConfig(
        { ...REQUIRED, DESTINATIONS: "[]", DESTINATIONS_FILE: "./data/destinations.json" },
        { readDestinationsFile: (path) => (reads.push(path), "[]") },
      ),
    new ConfigError(
      "Invalid configuration: DESTINATIONS and DESTINATIONS_FILE are both set: declare the destinations in one of them",
    ),
  );
  assert.deepEqual(reads, []);
});

Deno.test("loadConfig() reads DESTINATIONS_FILE, naming the file in every reason", async () => {
  const directory = await Deno.makeTempDir({ prefix: "wa-webhook-destinations-" });
  try {
    const path = `${directory}/destinations.json`;
    await Deno.writeTextFile(path, JSON.stringify([declaration()]));
    const options = { readDestinationsFile };
    const { config } = loadConfig({ ...REQUIRED, DESTINATIONS_FILE: path }, options);
    assert.deepEqual(config.destinations.map((d) => d.name), ["crm"]);

    await Deno.writeTextFile(path, JSON.stringify([declaration({ url: "ftp://x.example/" })]));
    assert.throws(
      () => loadConfig({ ...REQUIRED, DESTINATIONS_FILE: path }, options),
      new ConfigError(
        `Invalid configuration: DESTINATIONS_FILE "${path}" destination "crm" url must be http(s), got "ftp://…"`,
      ),
    );
    const missing = `${directory}/missing.json`;
    assert.throws(
      () => loadConfig({ ...REQUIRED, DESTINATIONS_FILE: missing }, options),
      new ConfigError(`Invalid configuration: DESTINATIONS_FILE "${missing}" does not exist`),
    );
    assert.throws(
      () => loadConfig({ ...REQUIRED, DESTINATIONS_FILE: directory }, options),
      new ConfigError(
        `Invalid configuration: DESTINATIONS_FILE "${directory}" is a directory: name a JSON file`,
      ),
    );
    await Deno.writeTextFile(path, "{not json");
    assert.throws(
      () => loadConfig({ ...REQUIRED, DESTINATIONS_FILE: path }, options),
      (error: Error) =>
        error.message.startsWith(
          `Invalid configuration: DESTINATIONS_FILE "${path}" is not valid JSON`,
        ),
    );
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("resolveConfig() takes destinations from code with the same rules, naming the field", () => {
  const { config } = resolveConfig({
    appSecrets: [REQUIRED.APP_SECRET],
    verifyToken: REQUIRED.VERIFY_TOKEN,
    destinations: [{ name: "crm", url: "https://crm.example.com/", secrets: [SECRET] }],
  });
  assert.deepEqual(config.destinations, [{
    name: "crm",
    url: "https://crm.example.com/",
    secrets: [SECRET],
    filter: {},
    ...DESTINATION_DEFAULTS,
  }]);
  assert.deepEqual(
    resolveConfig({ appSecrets: ["x".repeat(32)], verifyToken: "t" }).config.destinations,
    [],
  );
  assert.throws(
    () =>
      resolveConfig({
        appSecrets: [REQUIRED.APP_SECRET],
        verifyToken: REQUIRED.VERIFY_TOKEN,
        destinations: [
          { name: "crm", url: "https://crm.example.com/", secrets: ["whsec_short"] },
          { name: "crm", url: "https://crm.example.com/", secrets: [SECRET] },
        ],
      }),
    new ConfigError([
      `Invalid configuration: destinations destination "crm" secrets[0] must be a Standard Webhooks secret: "whsec_" then the base64 of 24 to 64 bytes (the value is not shown)`,
      `Invalid configuration: destinations destination "crm" name is declared 2 times (at indexes 0, 1): names key delivery jobs, so each must be unique`,
    ].join("\n")),
  );
});

/**
 * A second bad variable beside `DESTINATIONS_FILE`: the process refuses to start whatever becomes
 * of the file, so a broken rule fails the test instead of leaving a service running.
 */
const GUARD = { WORKER_CONCURRENCY: "-1" };
const GUARD_REASON =
  `Invalid configuration: WORKER_CONCURRENCY expected a whole number from 0 to 1000, got "-1"`;

/** The "cannot start" reasons of a service that exited with 1, which logged nothing else. */
function cannotStartReasons(code: number, text: string): string[] {
  assert.equal(code, 1, text);
  const lines = text.trim().split("\n").map((line) => JSON.parse(line));
  for (const line of lines) assert.equal(line.msg, "cannot start", text);
  return lines.map((line) => line.reason);
}

Deno.test("start with DESTINATIONS_FILE outside ./data: the reason says to move the file into ./data", async () => {
  const outside = await Deno.makeTempDir({ prefix: "wa-webhook-destinations-" });
  try {
    const path = `${outside}/destinations.json`;
    await Deno.writeTextFile(path, JSON.stringify([declaration()]));
    await withDataDir(async (kvPath) => {
      const env = serviceEnv(kvPath, { DESTINATIONS_FILE: path, ...GUARD });
      const { code, text } = await runToExit(env);
      assert.deepEqual(cannotStartReasons(code, text), [
        GUARD_REASON,
        `Invalid configuration: DESTINATIONS_FILE "${path}" is outside the directories this process may read (the tasks and the compiled binary allow "./data" only): move the file into it, such as "./data/destinations.json"`,
      ]);
    });
  } finally {
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("start with DESTINATIONS_FILE inside ./data: the file is read, a bad secret stops the start unquoted", async () => {
  await withDataDir(async (kvPath) => {
    const directory = kvPath.slice(0, kvPath.lastIndexOf("/"));
    const path = `${directory}/destinations.json`;
    await Deno.mkdir(new URL(directory, ROOT), { recursive: true });
    const badSecret = "whsec_dG9vLXNob3J0LXNlY3JldA=="; // 16 bytes
    const file = new URL(path, ROOT);
    await Deno.writeTextFile(file, JSON.stringify([declaration({ secrets: [badSecret] })]));
    const env = serviceEnv(kvPath, { DESTINATIONS_FILE: path, ...GUARD });
    const { code, text } = await runToExit(env);
    assert.deepEqual(cannotStartReasons(code, text), [
      GUARD_REASON,
      `Invalid configuration: DESTINATIONS_FILE "${path}" destination "crm" secrets[0] must be a Standard Webhooks secret: "whsec_" then the base64 of 24 to 64 bytes (the value is not shown)`,
    ]);
    assert.ok(!text.includes(badSecret.slice(6)), text);
  });
});
