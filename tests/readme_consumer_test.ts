/**
 * The README's Node consumer, run as written with Node and the libraries it names (`express` and
 * `standardwebhooks`, installed from npm into a temp directory, as a reader would): it verifies
 * the service's deliveries, prints each event, and refuses a request whose signature is forged.
 * Only where it listens changes: on 127.0.0.1, on a free port.
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

/** The README's JavaScript block that follows `heading`. */
async function readmeSnippet(heading: string): Promise<string> {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const after = readme.slice(readme.indexOf(heading));
  const match = after.match(/```js\n([\s\S]*?)```/);
  assert.ok(match, `a js block after "${heading}"`);
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

Deno.test("the README's Node consumer verifies every delivery with standardwebhooks and refuses a forged one", async () => {
  const snippet = await readmeSnippet("in Node");
  assert.ok(snippet.includes(LISTEN), `the snippet listens with "${LISTEN}"`);
  const dir = await Deno.makeTempDir({ prefix: "wa-webhook-node-consumer-" });
  try {
    await Deno.writeTextFile(`${dir}/package.json`, JSON.stringify({ type: "module" }));
    await Deno.writeTextFile(`${dir}/consumer.js`, snippet.replace(LISTEN, LISTEN_ON_LOOPBACK));
    await run("npm", ["install", "--no-audit", "--no-fund", "--silent", ...PACKAGES], dir);

    const secret = `whsec_${crypto.getRandomValues(new Uint8Array(32)).toBase64()}`;
    const port = freePort();
    const consumer = new Deno.Command("node", {
      args: ["consumer.js"],
      cwd: dir,
      env: { WHATSAPP_EVENTS_SECRET: secret, PORT: String(port) },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let printed = "";
    const reading = consumer.stdout.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (chunk) => void (printed += chunk) }),
    );
    const url = `http://127.0.0.1:${port}/hooks/whatsapp`;
    try {
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
        assert.ok(printed.includes(`whatsapp.message.text ${id}`), `printed: ${printed}`);
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
      assert.ok(!printed.includes(" x\n"), "the forged event is not printed");
    } finally {
      consumer.kill();
      await consumer.status;
      await consumer.stderr.cancel();
      await reading;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
