/**
 * The Flows key at start, in real subprocesses with the start task's exact flags (what
 * `deno task start` and the compiled binary run): a passphrase-protected key file under `./data`
 * serves Meta's requests; a malformed key, or a key file the binary may not read, refuses the
 * start with one line that names the variable.
 *
 * @module
 */
import assert from "node:assert/strict";
import { flowsKeyPair, metaExchange } from "./flows_support.ts";
import { ROOT, runToExit, serviceEnv, startService, withDataDir } from "./service_process.ts";

/** The one "cannot start" reason of an output; fails on any other line. */
function onlyCannotStart(text: string): string {
  const lines = text.trim().split("\n").map((line) => JSON.parse(line));
  assert.equal(lines.length, 1, text);
  assert.equal(lines[0].msg, "cannot start", text);
  return String(lines[0].reason);
}

Deno.test("start with a passphrase-protected FLOWS_PRIVATE_KEY_FILE in ./data serves Meta's requests", async () => {
  await withDataDir(async (kvPath) => {
    const dir = kvPath.slice(0, kvPath.lastIndexOf("/"));
    await Deno.mkdir(new URL(dir, ROOT), { recursive: true });
    const pem = String(
      flowsKeyPair().privateKey.export({
        type: "pkcs8",
        format: "pem",
        cipher: "aes-256-cbc",
        passphrase: "correct horse",
      }),
    );
    await Deno.writeTextFile(new URL(`${dir}/flows_private_key.pem`, ROOT), pem);
    const env = serviceEnv(kvPath, {
      FLOWS_PRIVATE_KEY_FILE: `${dir}/flows_private_key.pem`,
      FLOWS_KEY_PASSPHRASE: "correct horse",
    });
    const service = await startService(env);
    try {
      const result = await metaExchange({
        url: `${service.origin}/flows`,
        request: { version: "3.0", action: "ping" },
      });
      assert.deepEqual(result.answer, { data: { status: "active" } });
      assert.doesNotMatch(service.output.join("\n"), /correct horse|PRIVATE KEY/);
    } finally {
      await service.stop("SIGTERM");
    }
  });
});

Deno.test("start with a malformed FLOWS_PRIVATE_KEY: one line naming it, exit 1", async () => {
  await withDataDir(async (kvPath) => {
    const { code, text } = await runToExit(serviceEnv(kvPath, {
      FLOWS_PRIVATE_KEY: "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
    }));
    assert.equal(code, 1);
    assert.equal(
      onlyCannotStart(text),
      "Invalid configuration: FLOWS_PRIVATE_KEY is not a readable PEM private key: its base64 body is damaged or cut short",
    );
  });
});

Deno.test("start with FLOWS_PRIVATE_KEY_FILE outside ./data: one line saying where it must be", async () => {
  await withDataDir(async (kvPath) => {
    const { code, text } = await runToExit(serviceEnv(kvPath, {
      FLOWS_PRIVATE_KEY_FILE: "./flows_private_key.pem",
    }));
    assert.equal(code, 1);
    assert.match(
      onlyCannotStart(text),
      /^Invalid configuration: FLOWS_PRIVATE_KEY_FILE "\.\/flows_private_key\.pem" is outside the directories this process may read .*"\.\/data\/flows_private_key\.pem"/,
    );
  });
});
