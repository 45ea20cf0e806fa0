import assert from "node:assert/strict";
import { ConfigError, DEFAULTS, resolveConfig } from "../src/config.ts";
import { DEVELOPMENT_PLACEHOLDERS } from "../src/config_rules.ts";
import { CONFIG_NAMES, loadConfig, RUNTIME_ENV_NAMES } from "../src/config_env.ts";
import { taskCommand } from "./service_process.ts";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

const REQUIRED = { APP_SECRET: "0123456789abcdef0123456789abcdef", VERIFY_TOKEN: "a-real-token" };

Deno.test("loadConfig() applies the documented defaults", () => {
  const { config, warnings } = loadConfig(REQUIRED);
  assert.equal(config.port, 3001);
  assert.equal(config.host, "0.0.0.0");
  assert.equal(config.kvPath, "./data/wa-webhook.kv");
  assert.equal(config.graphApiBaseUrl, "https://graph.facebook.com");
  assert.equal(config.graphApiVersion, "v26.0");
  assert.equal(config.logLevel, "info");
  assert.equal(config.logFormat, "auto");
  assert.equal(config.maxBodyBytes, DEFAULTS.maxBodyBytes);
  assert.equal(config.maxBodyBytes, 3 * 1024 * 1024);
  assert.deepEqual(config.appSecrets, [REQUIRED.APP_SECRET]);
  assert.equal(config.adminToken, undefined);
  assert.deepEqual(warnings, []);
});

Deno.test("loadConfig() reads a comma-separated list of app secrets for rotation", () => {
  const { config } = loadConfig({ ...REQUIRED, APP_SECRET: "old-secret, new-secret" });
  assert.deepEqual(config.appSecrets, ["old-secret", "new-secret"]);
  assert.throws(
    () => loadConfig({ ...REQUIRED, APP_SECRET: "old-secret,,new" }),
    /APP_SECRET has an empty secret/,
  );
});

Deno.test("loadConfig() fails closed, naming each missing secret", () => {
  assert.throws(
    () => loadConfig({ VERIFY_TOKEN: "token" }),
    (error) =>
      error instanceof ConfigError && /^Invalid configuration: APP_SECRET is required/.test(
        error.message,
      ) && !error.message.includes("VERIFY_TOKEN"),
  );
  assert.throws(() => loadConfig({ APP_SECRET: "s" }), /VERIFY_TOKEN is required/);
  assert.throws(() => loadConfig({ ...REQUIRED, APP_SECRET: "" }), /APP_SECRET is required/);
});

Deno.test("loadConfig() refuses the .env.example placeholders outside development", () => {
  for (const [name, placeholder] of Object.entries(DEVELOPMENT_PLACEHOLDERS)) {
    assert.throws(
      () => loadConfig({ ...REQUIRED, [name]: placeholder }),
      new RegExp(`${name} is the development placeholder`),
    );
  }
});

Deno.test("loadConfig() accepts the placeholders in development with one warning", () => {
  const { warnings } = loadConfig({
    APP_SECRET: DEVELOPMENT_PLACEHOLDERS.APP_SECRET,
    VERIFY_TOKEN: DEVELOPMENT_PLACEHOLDERS.VERIFY_TOKEN,
  }, { isDevelopment: true });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0] ?? "", /Development secrets in use \(APP_SECRET, VERIFY_TOKEN\)/);
});

Deno.test("loadConfig() reads LOG_FORMAT: json, pretty or auto", () => {
  for (const format of ["json", "pretty", "auto"]) {
    assert.equal(loadConfig({ ...REQUIRED, LOG_FORMAT: format }).config.logFormat, format);
  }
});

Deno.test("loadConfig() names the variable and the reason for a bad value", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ PORT: "abc" }, /PORT expected a whole number from 0 to 65535, got "abc"/],
    [{ PORT: "70000" }, /PORT expected a whole number/],
    [{ LOG_LEVEL: "loud" }, /LOG_LEVEL expected one of debug, info, warn, error/],
    [{ LOG_FORMAT: "text" }, /LOG_FORMAT expected one of json, pretty, auto/],
    [{ MAX_BODY_BYTES: "-1" }, /MAX_BODY_BYTES expected a whole number/],
    [{ GRAPH_API_VERSION: "26" }, /GRAPH_API_VERSION expected a version like "v26.0"/],
    [{ GRAPH_API_BASE_URL: "ftp://x" }, /GRAPH_API_BASE_URL expected an http\(s\) URL/],
    [{ ADMIN_TOKEN: "short" }, /ADMIN_TOKEN must be at least 16 characters/],
  ];
  for (const [overrides, expected] of cases) {
    assert.throws(() => loadConfig({ ...REQUIRED, ...overrides }), expected);
  }
});

Deno.test("loadConfig() warns about an app secret too short to be Meta's, never quoting it", () => {
  for (const isDevelopment of [false, true]) {
    const { config, warnings } = loadConfig({ ...REQUIRED, APP_SECRET: "x" }, { isDevelopment });
    assert.deepEqual(config.appSecrets, ["x"]);
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(
      warnings[0] ?? "",
      /^APP_SECRET has a secret of 1 character, but Meta's app secrets are 32 hex characters: copy it from the App Dashboard/,
    );
  }
  // In a rotation list, each short secret is named by its length only.
  const rotating = loadConfig({ ...REQUIRED, APP_SECRET: `${REQUIRED.APP_SECRET},secret-0123` });
  assert.equal(rotating.warnings.length, 1);
  assert.match(rotating.warnings[0] ?? "", /a secret of 11 characters/);
  assert.ok(!rotating.warnings[0]?.includes("secret-0123"));
  // Meta's form, and the tests' longer made-up secrets, are accepted silently.
  assert.deepEqual(loadConfig(REQUIRED).warnings, []);
  assert.deepEqual(
    loadConfig({ ...REQUIRED, APP_SECRET: "test-app-secret-0123456789" }).warnings,
    [],
  );
});

Deno.test("loadConfig() refuses a retry base delay above the maximum delay, naming both", () => {
  assert.throws(
    () => loadConfig({ ...REQUIRED, RETRY_BASE_DELAY_MS: "60000", RETRY_MAX_DELAY_MS: "30000" }),
    (error) =>
      error instanceof ConfigError &&
      error.message ===
        'Invalid configuration: RETRY_BASE_DELAY_MS is "60000", above RETRY_MAX_DELAY_MS "30000": lower RETRY_BASE_DELAY_MS or raise RETRY_MAX_DELAY_MS',
  );
  // Against the other's default: 15 minutes.
  assert.throws(
    () => loadConfig({ ...REQUIRED, RETRY_BASE_DELAY_MS: "900001" }),
    /RETRY_BASE_DELAY_MS is "900001", above RETRY_MAX_DELAY_MS "900000"/,
  );
  assert.throws(
    () => loadConfig({ ...REQUIRED, RETRY_MAX_DELAY_MS: "999" }),
    /RETRY_BASE_DELAY_MS is "1000", above RETRY_MAX_DELAY_MS "999"/,
  );
  // Equal delays are a constant backoff: allowed.
  const { config } = loadConfig({
    ...REQUIRED,
    RETRY_BASE_DELAY_MS: "5000",
    RETRY_MAX_DELAY_MS: "5000",
  });
  assert.equal(config.retryBaseDelayMs, config.retryMaxDelayMs);
});

Deno.test("loadConfig() treats an empty value as unset", () => {
  const { config } = loadConfig({ ...REQUIRED, WHATSAPP_TOKEN: "", PORT: "" });
  assert.equal(config.whatsappToken, undefined);
  assert.equal(config.port, 3001);
});

Deno.test("loadConfig() reads the reply settings, with echo off, 80 messages/s and 10 s by default", () => {
  const defaults = loadConfig(REQUIRED).config;
  assert.equal(defaults.echoReplies, false);
  assert.deepEqual(defaults.whatsappTokens, {});
  assert.equal(defaults.graphMessagesPerSecond, 80);
  assert.equal(defaults.graphTimeoutMs, 10_000);

  const { config, warnings } = loadConfig({
    ...REQUIRED,
    ECHO_REPLIES: "true",
    WHATSAPP_TOKEN: "default-token",
    WHATSAPP_TOKENS: "106540000000002:TOKEN, 106540000000003:TOKEN:2",
    GRAPH_MESSAGES_PER_SECOND: "20",
    GRAPH_TIMEOUT_MS: "2500",
  });
  assert.equal(config.echoReplies, true);
  assert.deepEqual(config.whatsappTokens, {
    "106540000000002": "TOKEN",
    "106540000000003": "TOKEN:2",
  });
  assert.equal(config.graphMessagesPerSecond, 20);
  assert.equal(config.graphTimeoutMs, 2500);
  assert.deepEqual(warnings, []);
  assert.equal(loadConfig({ ...REQUIRED, ECHO_REPLIES: "false" }).config.echoReplies, false);
});

Deno.test("loadConfig() names the reply variable and the reason, never quoting a token", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ ECHO_REPLIES: "yes" }, /ECHO_REPLIES expected "true" or "false", got "yes"/],
    [{ GRAPH_MESSAGES_PER_SECOND: "0" }, /GRAPH_MESSAGES_PER_SECOND expected a whole number/],
    [{ GRAPH_MESSAGES_PER_SECOND: "1001" }, /GRAPH_MESSAGES_PER_SECOND expected a whole number/],
    [{ GRAPH_TIMEOUT_MS: "fast" }, /GRAPH_TIMEOUT_MS expected a whole number/],
    [{ WHATSAPP_TOKENS: "106540000000002:SECRET1,SECRET2" }, /WHATSAPP_TOKENS .* entry 2 is not/],
    [{ WHATSAPP_TOKENS: "not-an-id:SECRET1" }, /WHATSAPP_TOKENS .* entry 1 is not/],
    [{ WHATSAPP_TOKENS: "106540000000002:" }, /WHATSAPP_TOKENS .* entry 1 is not/],
    [
      { WHATSAPP_TOKENS: "106540000000002:SECRET1,106540000000002:SECRET2" },
      /WHATSAPP_TOKENS has phone number id "106540000000002" more than once/,
    ],
  ];
  for (const [overrides, expected] of cases) {
    assert.throws(
      () => loadConfig({ ...REQUIRED, ...overrides }),
      (error) =>
        error instanceof ConfigError && expected.test(error.message) &&
        !error.message.includes("SECRET"),
    );
  }
});

Deno.test("loadConfig() refuses ECHO_REPLIES=true without any token outside development", () => {
  assert.throws(
    () => loadConfig({ ...REQUIRED, ECHO_REPLIES: "true" }),
    (error) =>
      error instanceof ConfigError &&
      error.message ===
        "Invalid configuration: ECHO_REPLIES is true but neither WHATSAPP_TOKEN nor WHATSAPP_TOKENS is set",
  );
  // Either kind of token is enough.
  const perNumber = { ECHO_REPLIES: "true", WHATSAPP_TOKENS: "106540000000002:T" };
  assert.equal(loadConfig({ ...REQUIRED, ...perNumber }).config.echoReplies, true);
  const shared = { ECHO_REPLIES: "true", WHATSAPP_TOKEN: "T" };
  assert.equal(loadConfig({ ...REQUIRED, ...shared }).config.echoReplies, true);
});

Deno.test("loadConfig() turns echo off with one warning in development when no token is set", async () => {
  // What `deno task dev` reads on a fresh clone: .env.example as it is.
  const example = await Deno.readTextFile(new URL("../.env.example", import.meta.url));
  const env = Object.fromEntries(
    example.split("\n").filter((line) => /^[A-Z_]+=/.test(line)).map((line) => {
      const separator = line.indexOf("=");
      return [line.slice(0, separator), line.slice(separator + 1)];
    }),
  );
  assert.equal(env.ECHO_REPLIES, "true");
  assert.equal(env.WHATSAPP_TOKEN, "");
  const { config, warnings } = loadConfig(env, { isDevelopment: true });
  assert.equal(config.echoReplies, false);
  const echoWarnings = warnings.filter((warning) => warning.includes("ECHO_REPLIES"));
  assert.deepEqual(echoWarnings, [
    "ECHO_REPLIES is on but neither WHATSAPP_TOKEN nor WHATSAPP_TOKENS is set: echo replies are off",
  ]);
  // Every variable of .env.example is one the service reads.
  assert.deepEqual(Object.keys(env).filter((name) => !CONFIG_NAMES.includes(name as never)), []);
});

Deno.test("loadConfig() reads the retention variables in hours and days, their bounds in those units", () => {
  const defaults = loadConfig(REQUIRED).config;
  assert.equal(defaults.dedupTtlMs, 192 * HOUR_MS);
  assert.equal(defaults.eventRetentionMs, 168 * HOUR_MS);
  assert.equal(defaults.statusRetentionMs, 30 * DAY_MS);
  const { config } = loadConfig({
    ...REQUIRED,
    DEDUP_TTL_HOURS: "2",
    EVENT_RETENTION_HOURS: "3",
    STATUS_RETENTION_DAYS: "4",
  });
  assert.equal(config.dedupTtlMs, 2 * HOUR_MS);
  assert.equal(config.eventRetentionMs, 3 * HOUR_MS);
  assert.equal(config.statusRetentionMs, 4 * DAY_MS);
  const cases: [Record<string, string>, string][] = [
    [{ DEDUP_TTL_HOURS: "0" }, 'DEDUP_TTL_HOURS expected a whole number from 1 to 8760, got "0"'],
    [
      { EVENT_RETENTION_HOURS: "8761" },
      'EVENT_RETENTION_HOURS expected a whole number from 1 to 8760, got "8761"',
    ],
    [
      { STATUS_RETENTION_DAYS: "366" },
      'STATUS_RETENTION_DAYS expected a whole number from 1 to 365, got "366"',
    ],
  ];
  for (const [overrides, reason] of cases) {
    assert.throws(
      () => loadConfig({ ...REQUIRED, ...overrides }),
      (error) =>
        error instanceof ConfigError && error.message === `Invalid configuration: ${reason}`,
    );
  }
});

Deno.test("loadConfig() lists every bad variable at once, in the order of CONFIG_NAMES", () => {
  // PORT fails as text, the secrets as missing settings: both kinds come in one error.
  assert.throws(
    () => loadConfig({ PORT: "abc", LOG_LEVEL: "loud", DEDUP_TTL_HOURS: "abc" }),
    (error) =>
      error instanceof ConfigError &&
      error.message.split("\n").map((line) => line.split(" ")[2]).join(",") ===
        "PORT,APP_SECRET,VERIFY_TOKEN,LOG_LEVEL,DEDUP_TTL_HOURS",
  );
});

const SECRETS = { appSecrets: [REQUIRED.APP_SECRET], verifyToken: REQUIRED.VERIFY_TOKEN };

Deno.test("resolveConfig() fills every setting left out from DEFAULTS, as loadConfig() does", () => {
  const { config, warnings } = resolveConfig(SECRETS);
  assert.deepEqual(config, { ...DEFAULTS, ...SECRETS, whatsappTokens: {} });
  assert.deepEqual(warnings, []);
  assert.deepEqual(config, loadConfig(REQUIRED).config);
  // What is given is kept, in milliseconds: a TTL need not be whole hours in code.
  const given = resolveConfig({ ...SECRETS, leaseMs: 30_000, dedupTtlMs: 90 * 60_000 }).config;
  assert.equal(given.leaseMs, 30_000);
  assert.equal(given.dedupTtlMs, 90 * 60_000);
  assert.equal(given.eventRetentionMs, DEFAULTS.eventRetentionMs);
});

Deno.test("resolveConfig() refuses a bad value with the same bounds, naming the field", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ leaseMs: 999 }, 'leaseMs expected a whole number from 1000 to 3600000, got "999"'],
    [{ port: 1.5 }, 'port expected a whole number from 0 to 65535, got "1.5"'],
    [
      { dedupTtlMs: 60_000 },
      'dedupTtlMs expected a whole number from 3600000 to 31536000000, got "60000"',
    ],
    [
      { graphTimeoutMs: "5000" },
      'graphTimeoutMs expected a whole number from 100 to 600000, got "5000"',
    ],
    [{ graphApiVersion: "26" }, 'graphApiVersion expected a version like "v26.0"'],
    [{ graphApiBaseUrl: "ftp://x" }, "graphApiBaseUrl expected an http(s) URL"],
    [{ adminToken: "short" }, "adminToken must be at least 16 characters"],
    [{ logLevel: "loud" }, "logLevel expected one of debug, info, warn, error"],
    [{ echoReplies: "yes" }, 'echoReplies expected true or false, got "yes"'],
    [{ appSecrets: [] }, "appSecrets is required: the app secrets from Meta's App Dashboard"],
    [
      { verifyToken: " " },
      "verifyToken is required: the verify token typed into Meta's webhook settings",
    ],
    [
      { whatsappTokens: { "not-an-id": "SECRET" } },
      'whatsappTokens expected phone number ids (digits) with a token each; "not-an-id" is not one',
    ],
    [{ leaseMS: 30_000 }, 'unknown setting "leaseMS"'],
  ];
  for (const [overrides, reason] of cases) {
    assert.throws(
      () => resolveConfig({ ...SECRETS, ...overrides } as never),
      (error) =>
        error instanceof ConfigError && error.message === `Invalid configuration: ${reason}`,
      reason,
    );
  }
});

Deno.test("resolveConfig() applies loadConfig()'s cross-checks, naming the fields", () => {
  const placeholders = {
    appSecrets: [DEVELOPMENT_PLACEHOLDERS.APP_SECRET],
    verifyToken: DEVELOPMENT_PLACEHOLDERS.VERIFY_TOKEN,
  };
  assert.throws(
    () => resolveConfig(placeholders),
    (error) =>
      error instanceof ConfigError &&
      error.message === [
          "Invalid configuration: appSecrets is the development placeholder from .env.example; set a real value",
          "Invalid configuration: verifyToken is the development placeholder from .env.example; set a real value",
        ].join("\n"),
  );
  assert.match(
    resolveConfig(placeholders, { isDevelopment: true }).warnings.join("\n"),
    /^Development secrets in use \(appSecrets, verifyToken\)/,
  );
  assert.throws(
    () => resolveConfig({ ...SECRETS, retryBaseDelayMs: 60_000, retryMaxDelayMs: 30_000 }),
    (error) =>
      error instanceof ConfigError &&
      error.message ===
        'Invalid configuration: retryBaseDelayMs is "60000", above retryMaxDelayMs "30000": lower retryBaseDelayMs or raise retryMaxDelayMs',
  );
  assert.throws(
    () => resolveConfig({ ...SECRETS, echoReplies: true }),
    (error) =>
      error instanceof ConfigError &&
      error.message ===
        "Invalid configuration: echoReplies is true but neither whatsappToken nor whatsappTokens is set",
  );
  const development = resolveConfig({ ...SECRETS, echoReplies: true }, { isDevelopment: true });
  assert.equal(development.config.echoReplies, false);
  assert.deepEqual(development.warnings, [
    "echoReplies is on but neither whatsappToken nor whatsappTokens is set: echo replies are off",
  ]);
  const short = resolveConfig({ ...SECRETS, appSecrets: ["x"] });
  assert.match(short.warnings.join("\n"), /^appSecrets has a secret of 1 character, but Meta's/);
});

Deno.test("every task that runs the service has the start task's flags, written once per subcommand", async () => {
  const flags = (command: string): string[] =>
    command.split(/\s+/).filter((part) => /^--(allow-|v8-flags=)/.test(part)).sort();
  const start = await taskCommand("start");
  assert.deepEqual(flags(start), [
    "--allow-env=" + [...CONFIG_NAMES, ...RUNTIME_ENV_NAMES].join(","),
    "--allow-net",
    "--allow-read=./data",
    "--allow-write=./data",
    "--v8-flags=--max-semi-space-size=4",
  ]);
  for (const task of ["dev", "run", "compile", "compile-entry", "serve"]) {
    assert.deepEqual(flags(await taskCommand(task)), flags(start), `the ${task} task's flags`);
  }
  // start, dev and compile call the run and compile-entry tasks rather than repeat the list.
  const { tasks } = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.equal(tasks.start, "deno task run main.ts");
  assert.equal(tasks.compile, "deno task compile-entry main.ts");
  assert.match(tasks.dev, /; deno task run --watch .* main\.ts --dev$/);
  assert.doesNotMatch(start, /--env-file/);
});

Deno.test("loadConfig() reads STORE_URL (a PostgreSQL URL, or unset for Deno KV) and STORE_POOL_SIZE, never quoting the URL", () => {
  const env = { APP_SECRET: "a".repeat(32), VERIFY_TOKEN: "verify-token-0123" };
  const kv = loadConfig(env).config;
  assert.equal(kv.storeUrl, undefined, "unset keeps Deno KV");
  assert.equal(kv.storePoolSize, DEFAULTS.storePoolSize);
  assert.equal(loadConfig({ ...env, STORE_URL: "" }).config.storeUrl, undefined);
  const url = "postgresql://wa:s3cret-pw@db.internal:5433/wa?sslmode=require";
  const pg = loadConfig({ ...env, STORE_URL: url, STORE_POOL_SIZE: "25" }).config;
  assert.equal(pg.storeUrl, url);
  assert.equal(pg.storePoolSize, 25);
  const refusals: [Record<string, string>, RegExp][] = [
    [{ STORE_URL: "mysql://wa:s3cret-pw@db/wa" }, /STORE_URL must start with "postgres:\/\/"/],
    [{ STORE_URL: "postgres://db.internal/wa" }, /STORE_URL names no user/],
    [{ STORE_URL: "postgres://wa:s3cret-pw@db/wa?sslmode=sometimes" }, /sslmode "sometimes"/],
    [{ STORE_POOL_SIZE: "1" }, /STORE_POOL_SIZE expected a whole number from 2 to 200/],
  ];
  for (const [extra, reason] of refusals) {
    assert.throws(
      () => loadConfig({ ...env, ...extra }),
      (error) =>
        error instanceof ConfigError && reason.test(error.message) &&
        !error.message.includes("s3cret-pw"),
      JSON.stringify(extra),
    );
  }
});
