/**
 * Start-up failures a new user meets, as real subprocesses with the tasks' exact flags: each ends
 * in one "cannot start" line that names the setting to change, exit code 1, and nothing logged as
 * started before the port is bound. And `deno task dev` on a checkout without `.env`.
 */
import assert from "node:assert/strict";
import { freshCheckout } from "./fresh_checkout.ts";
import {
  ROOT,
  type RunningService,
  runToExit,
  serveArgs,
  serviceEnv,
  startService,
  withDataDir,
  withoutIsolatePrefix,
} from "./service_process.ts";
import { TEST_VERIFY_TOKEN, waitFor } from "./support.ts";

/** The output's lines, parsed; fails on a line that is not JSON (a stack trace, a warning). */
function jsonLines(text: string): Record<string, unknown>[] {
  return text.trim().split("\n").map((line) => {
    try {
      return JSON.parse(withoutIsolatePrefix(line));
    } catch {
      throw new Error(`not a log line: ${line}\n--- whole output:\n${text}`);
    }
  });
}

/** Asserts one "cannot start" line, nothing else, and returns its reason. */
function onlyCannotStart(text: string): string {
  const lines = jsonLines(text);
  assert.equal(lines.length, 1, text);
  assert.equal(lines[0]!.msg, "cannot start", text);
  assert.equal(lines[0]!.level, "error");
  return String(lines[0]!.reason);
}

/** A port on 127.0.0.1 that another process holds until disposed. */
function takenPort(): Deno.TcpListener & { port: number } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return Object.assign(listener, { port: (listener.addr as Deno.NetAddr).port });
}

Deno.test("start with PORT in use: one line naming PORT, exit 1, nothing said started", async () => {
  using taken = takenPort();
  await withDataDir(async (kvPath) => {
    const { code, text } = await runToExit(serviceEnv(kvPath, { PORT: String(taken.port) }));
    assert.equal(code, 1);
    assert.match(
      onlyCannotStart(text),
      new RegExp(
        `^PORT "${taken.port}" is in use by another process \\(.+\\): stop that process or set PORT to a free port$`,
      ),
    );
  });
});

Deno.test("start with a HOST that does not resolve: one line naming HOST, exit 1", async () => {
  await withDataDir(async (kvPath) => {
    const { code, text } = await runToExit(
      serviceEnv(kvPath, { HOST: "no-such-host.invalid" }),
    );
    assert.equal(code, 1);
    assert.match(
      onlyCannotStart(text),
      /^HOST "no-such-host\.invalid" does not resolve \(.+\): set HOST to an address of this machine, or "0\.0\.0\.0" for all of them$/,
    );
  });
});

Deno.test("deno serve on a port in use: one line naming PORT, exit 1, nothing said started", async () => {
  using taken = takenPort();
  await withDataDir(async (kvPath) => {
    const args = await serveArgs({ entry: "serve.ts", port: taken.port });
    const { code, text } = await runToExit(
      serviceEnv(kvPath, { PORT: String(taken.port) }),
      args,
    );
    assert.equal(code, 1);
    assert.match(onlyCannotStart(text), new RegExp(`^PORT "${taken.port}" is in use`));
  });
});

Deno.test("start with KV_PATH outside ./data: one line saying which KV_PATH to set", async () => {
  const outside = await Deno.makeTempDir({ prefix: "wa-webhook-kv-" });
  try {
    const kvPath = `${outside}/wa-webhook.kv`;
    const { code, text } = await runToExit(serviceEnv(kvPath));
    assert.equal(code, 1);
    const reason = onlyCannotStart(text);
    assert.equal(
      reason,
      `KV_PATH "${kvPath}" is outside the directories this process may write (the tasks and the compiled binary allow "./data" only): set KV_PATH to a file in it, such as "./data/wa-webhook.kv"`,
    );
    assert.doesNotMatch(reason, /--allow-write/);
  } finally {
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("start with KV_PATH a directory: one line saying to name a file inside it", async () => {
  await withDataDir(async (kvPath) => {
    const directory = kvPath.slice(0, kvPath.lastIndexOf("/"));
    await Deno.mkdir(new URL(directory, ROOT), { recursive: true });
    for (const path of [directory, `${directory}/`]) {
      const { code, text } = await runToExit(serviceEnv(path));
      assert.equal(code, 1);
      assert.equal(
        onlyCannotStart(text),
        `KV_PATH "${path}" is a directory: set it to a file inside it, such as "${directory}/wa-webhook.kv"`,
      );
    }
  });
});

/**
 * Stops `deno task dev`: the first SIGTERM stops the service, after which `--watch` waits for a
 * file change; a second one, once it says so, ends the watcher and the task. (A SIGKILL would end
 * only the task and leave the watcher running.)
 */
async function stopDevTask(service: RunningService): Promise<void> {
  service.process.kill("SIGTERM");
  await waitFor(
    () => service.output.some((line) => line.includes("Process finished")),
    "the watcher to report the service stopped",
    10_000,
  ).catch((error) => {
    throw new Error(`${error.message}; output:\n${service.output.join("\n")}`);
  });
  await service.stop("SIGTERM"); // the watcher ends with the signal's code
}

Deno.test("deno task dev on a checkout without .env: no env-file warning; a .env is still read", async () => {
  await using checkout = await freshCheckout();
  const env = { PORT: "0", HOST: "127.0.0.1", KV_PATH: "./data/wa-webhook.kv", LOG_LEVEL: "info" };
  const fresh = await startService(env, ["task", "dev"], { cwd: checkout.path });
  await stopDevTask(fresh);
  const text = fresh.output.join("\n");
  assert.doesNotMatch(text, /^Warning|was not found/m);
  assert.match(text, /Development secrets in use/, "the .env.example placeholders were read");

  // A .env overrides .env.example: its verify token is the one the handshake accepts.
  const verifyToken = `${TEST_VERIFY_TOKEN}-from-dot-env`;
  await Deno.writeTextFile(`${checkout.path}/.env`, `VERIFY_TOKEN=${verifyToken}\n`);
  const service = await startService(env, ["task", "dev"], { cwd: checkout.path });
  try {
    const handshake = await fetch(
      `${service.origin}/webhook/whatsapp?hub.mode=subscribe&hub.verify_token=${verifyToken}&hub.challenge=c`,
    );
    assert.equal(handshake.status, 200);
    assert.equal(await handshake.text(), "c");
  } finally {
    await stopDevTask(service);
  }
  assert.doesNotMatch(service.output.join("\n"), /^Warning|was not found/m);
});
