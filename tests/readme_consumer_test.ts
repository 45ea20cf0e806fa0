/**
 * The README's consumers, run as written with the libraries they name: the Node one with
 * `express` and `standardwebhooks` installed from npm into a temp directory, as a reader would;
 * the Python one with Debian's Flask (`.ci/run` installs `python3-flask`) and the reference
 * `standardwebhooks` vendored in `tests/vendor/` (PyPI is out of reach here). Each verifies the
 * service's deliveries, prints each event, and refuses a request whose signature is forged. Only
 * where the Node one listens changes: on 127.0.0.1, on a free port.
 *
 * @module
 */
import assert from "node:assert/strict";
import { messageEventId } from "../src/events/event_ids.ts";
import { textsDelivery } from "./deliveries.ts";
import { postDelivery, startTestServer, waitFor } from "./support.ts";

/** What `npm install` gave for the libraries the snippet names when this test was written. */
const PACKAGES = ["express@5.3.0", "standardwebhooks@1.3.0"];

/** The snippet's listen line, and what the test runs instead. */
const LISTEN = "app.listen(process.env.PORT ?? 3000);";
const LISTEN_ON_LOOPBACK = 'app.listen(Number(process.env.PORT), "127.0.0.1");';

/** The Python the README's Python consumer runs with: Debian's, where `python3-flask` goes. */
const PYTHON = "/usr/bin/python3";

/** The vendored reference library, put on `PYTHONPATH` as `pip install` would. */
const PYTHON_LIBRARY = new URL("./vendor/standardwebhooks-python", import.meta.url).pathname;

/** The README's code block in `language` that follows `heading`. */
async function readmeSnippet(heading: string, language: "js" | "python"): Promise<string> {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const after = readme.slice(readme.indexOf(heading));
  const match = after.match(new RegExp(`\`\`\`${language}\n([\\s\\S]*?)\`\`\``));
  assert.ok(match, `a ${language} block after "${heading}"`);
  return match[1]!;
}

async function run(command: string, args: string[], cwd: string): Promise<void> {
  const { code, stderr } = await new Deno.Command(command, {
    args,
    cwd,
    stdout: "null",
    stderr: "piped",
  })
    .output();
  assert.equal(code, 0, `${command} ${args.join(" ")}: ${new TextDecoder().decode(stderr)}`);
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/** A consumer process and what it printed so far. */
interface Consumer {
  printed(): string;
  stop(): Promise<void>;
}

/** Spawns `command` in `cwd`, keeping what it prints. */
function spawnConsumer(
  command: string,
  args: string[],
  cwd: string,
  env: Record<string, string>,
): Consumer {
  const child = new Deno.Command(command, { args, cwd, env, stdout: "piped", stderr: "piped" })
    .spawn();
  let printed = "";
  const reading = child.stdout.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void (printed += chunk) }),
  );
  return {
    printed: () => printed,
    async stop() {
      child.kill();
      await child.status;
      await child.stderr.cancel();
      await reading;
    },
  };
}

/**
 * Checks the consumer listening at `url` with `secret`: the service delivers two events to it,
 * which it verifies (the jobs end delivered: it answered 2xx) and prints as `type id`; a request
 * signed with another secret gets 400 and is not printed.
 */
async function assertVerifiesDeliveries(url: string, secret: string, consumer: Consumer) {
  await waitFor(
    async () => {
      try {
        await (await fetch(url, { method: "GET" })).body?.cancel();
        return true;
      } catch {
        return false;
      }
    },
    "the consumer listening",
    10_000,
  );

  await using server = await startTestServer({
    env: { DESTINATIONS: JSON.stringify([{ name: "crm", url, secrets: [secret] }]) },
  });
  const wamids = ["wamid.N1", "wamid.N2"];
  assert.equal((await postDelivery(server.origin, textsDelivery(wamids))).status, 200);
  const eventIds = wamids.map(messageEventId);
  await waitFor(async () => {
    const jobs = await Promise.all(eventIds.map((id) => server.store.getJobs(id)));
    return jobs.every((list) => list[0]?.state === "delivered");
  }, "both events delivered (the consumer answered 2xx)");
  for (const id of eventIds) {
    assert.ok(
      consumer.printed().includes(`whatsapp.message.text ${id}`),
      `printed: ${consumer.printed()}`,
    );
  }

  // The same body with a signature made with another secret is refused, and not printed.
  const body = JSON.stringify({
    type: "whatsapp.message.text",
    timestamp: "",
    data: { id: "x" },
  });
  const forged = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "webhook-id": "msg_forged",
      "webhook-timestamp": String(Math.floor(Date.now() / 1000)),
      "webhook-signature": `v1,${crypto.getRandomValues(new Uint8Array(32)).toBase64()}`,
    },
    body,
  });
  await forged.body?.cancel();
  assert.equal(forged.status, 400);
  assert.ok(!consumer.printed().includes(" x\n"), "the forged event is not printed");
}

/**
 * Writes a consumer into a temp directory with `setUp`, starts it with what `command` gives for a
 * free port and a new secret, and checks it ({@linkcode assertVerifiesDeliveries}).
 */
async function checkConsumer(
  language: string,
  setUp: (dir: string) => Promise<void>,
  command: (port: number, secret: string) => {
    command: string;
    args: string[];
    env: Record<string, string>;
  },
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `wa-webhook-${language}-consumer-` });
  try {
    await setUp(dir);
    const secret = `whsec_${crypto.getRandomValues(new Uint8Array(32)).toBase64()}`;
    const port = freePort();
    const spawned = command(port, secret);
    const consumer = spawnConsumer(spawned.command, spawned.args, dir, spawned.env);
    try {
      await assertVerifiesDeliveries(`http://127.0.0.1:${port}/hooks/whatsapp`, secret, consumer);
    } finally {
      await consumer.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the README's Node consumer verifies every delivery with standardwebhooks and refuses a forged one", async () => {
  const snippet = await readmeSnippet("in Node", "js");
  assert.ok(snippet.includes(LISTEN), `the snippet listens with "${LISTEN}"`);
  await checkConsumer("node", async (dir) => {
    await Deno.writeTextFile(`${dir}/package.json`, JSON.stringify({ type: "module" }));
    await Deno.writeTextFile(`${dir}/consumer.js`, snippet.replace(LISTEN, LISTEN_ON_LOOPBACK));
    await run("npm", ["install", "--no-audit", "--no-fund", "--silent", ...PACKAGES], dir);
  }, (port, secret) => ({
    command: "node",
    args: ["consumer.js"],
    env: { WHATSAPP_EVENTS_SECRET: secret, PORT: String(port) },
  }));
});

Deno.test("the README's Python consumer verifies every delivery with standardwebhooks and refuses a forged one", async () => {
  const snippet = await readmeSnippet("in Python", "python");
  await checkConsumer("python", async (dir) => {
    await Deno.writeTextFile(`${dir}/app.py`, snippet);
  }, (port, secret) => ({
    // Flask's own runner serves the snippet's `app` as written, one request at a time: on its
    // threads two deliveries' `print`s, each written in pieces, interleave in the output read.
    command: PYTHON,
    args: [
      "-m",
      "flask",
      "--app",
      "app",
      "run",
      "--without-threads",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
    ],
    env: { WHATSAPP_EVENTS_SECRET: secret, PYTHONPATH: PYTHON_LIBRARY, PYTHONUNBUFFERED: "1" },
  }));
});
