import assert from "node:assert/strict";
import {
  CONFIG_NAMES,
  ConfigError,
  DEFAULT_MAX_BODY_BYTES,
  DEVELOPMENT_PLACEHOLDERS,
  loadConfig,
} from "../src/config.ts";

const REQUIRED = { APP_SECRET: "a-real-secret", VERIFY_TOKEN: "a-real-token" };

Deno.test("loadConfig() applies the documented defaults", () => {
  const { config, warnings } = loadConfig(REQUIRED);
  assert.equal(config.PORT, 3001);
  assert.equal(config.HOST, "0.0.0.0");
  assert.equal(config.KV_PATH, "./data/wa-webhook.kv");
  assert.equal(config.GRAPH_API_BASE_URL, "https://graph.facebook.com");
  assert.equal(config.GRAPH_API_VERSION, "v26.0");
  assert.equal(config.LOG_LEVEL, "info");
  assert.equal(config.MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES);
  assert.equal(config.MAX_BODY_BYTES, 3 * 1024 * 1024);
  assert.deepEqual(config.APP_SECRET, ["a-real-secret"]);
  assert.equal(config.ADMIN_TOKEN, undefined);
  assert.deepEqual(warnings, []);
});

Deno.test("loadConfig() reads a comma-separated list of app secrets for rotation", () => {
  const { config } = loadConfig({ ...REQUIRED, APP_SECRET: "old-secret, new-secret" });
  assert.deepEqual(config.APP_SECRET, ["old-secret", "new-secret"]);
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

Deno.test("loadConfig() names the variable and the reason for a bad value", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ PORT: "abc" }, /PORT expected a whole number from 0 to 65535, got "abc"/],
    [{ PORT: "70000" }, /PORT expected a whole number/],
    [{ LOG_LEVEL: "loud" }, /LOG_LEVEL expected one of debug, info, warn, error/],
    [{ MAX_BODY_BYTES: "-1" }, /MAX_BODY_BYTES expected a whole number/],
    [{ GRAPH_API_VERSION: "26" }, /GRAPH_API_VERSION expected a version like "v26.0"/],
    [{ GRAPH_API_BASE_URL: "ftp://x" }, /GRAPH_API_BASE_URL expected an http\(s\) URL/],
    [{ ADMIN_TOKEN: "short" }, /ADMIN_TOKEN must be at least 16 characters/],
  ];
  for (const [overrides, expected] of cases) {
    assert.throws(() => loadConfig({ ...REQUIRED, ...overrides }), expected);
  }
});

Deno.test("loadConfig() treats an empty value as unset", () => {
  const { config } = loadConfig({ ...REQUIRED, WHATSAPP_TOKEN: "", PORT: "" });
  assert.equal(config.WHATSAPP_TOKEN, undefined);
  assert.equal(config.PORT, 3001);
});

Deno.test("the start, dev and compile tasks allow exactly the configuration's variables", async () => {
  const { tasks } = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const permissions = (task: string): string[] =>
    task.split(" ").filter((part) => part.startsWith("--allow-")).sort();
  const start = permissions(tasks.start);
  assert.deepEqual(start, [
    "--allow-env=" + CONFIG_NAMES.join(","),
    "--allow-net",
    "--allow-read=./data",
    "--allow-write=./data",
  ]);
  assert.deepEqual(permissions(tasks.compile), start);
  assert.deepEqual(permissions(tasks.dev), start);
  assert.doesNotMatch(tasks.start, /--env-file/);
});
