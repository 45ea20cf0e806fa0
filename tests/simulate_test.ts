import assert from "node:assert/strict";
import { parseDelivery } from "../src/events/events.ts";
import { buildSample, SAMPLE_KINDS } from "../tools/simulate.ts";
import { startTestServer, TEST_ADMIN_TOKEN, TEST_SECRET } from "./support.ts";
import { freshCheckout } from "./fresh_checkout.ts";

const SIMULATOR = new URL("../tools/simulate.ts", import.meta.url).pathname;
const REPO = new URL("..", import.meta.url).pathname;
const TEXT_FIXTURE = new URL("./fixtures/message_text.json", import.meta.url).pathname;

/** Runs the simulator as `deno task simulate` would, with the permissions of its usage line. */
async function simulate(
  args: string[],
  env: Record<string, string> = { APP_SECRET: TEST_SECRET, ADMIN_TOKEN: TEST_ADMIN_TOKEN },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "--allow-read", SIMULATOR, ...args],
    cwd: REPO,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** The event ids the simulator listed (lines `  <id>  <kind> …`). */
function listedIds(stdout: string): string[] {
  return stdout.split("\n")
    .map((line) => /^ {2}((?:message|status|change|unknown):\S+) {2}/.exec(line)?.[1])
    .filter((id): id is string => id !== undefined);
}

Deno.test("simulate text: posts a signed delivery, prints 200 and the recorded event", async () => {
  await using server = await startTestServer();
  const url = `${server.origin}/webhook/whatsapp`;
  const result = await simulate(["text", "--url", url]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, new RegExp(`^POST ${url} \\(text sample, \\d+ bytes\\)$`, "m"));
  assert.match(result.stdout, /^200 OK$/m);
  assert.match(result.stdout, /^1 event:$/m);
  const ids = listedIds(result.stdout);
  assert.equal(ids.length, 1);
  assert.match(ids[0]!, /^message:wamid\.SIM/);
  assert.match(result.stdout, /message text {2}recorded, state \w+, attempts \d+$/m);
  const stored = await server.store.getEvent(ids[0]!);
  assert.equal(stored?.record.kind, "message");
});

Deno.test("simulate batch: every message and status of several entries is recorded", async () => {
  await using server = await startTestServer();
  const result = await simulate(["batch", "--url", `${server.origin}/webhook/whatsapp`]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /^200 OK$/m);
  const ids = listedIds(result.stdout);
  assert.equal(ids.filter((id) => id.startsWith("message:")).length, 3);
  assert.equal(ids.filter((id) => id.startsWith("status:")).length, 3);
  for (const id of ids) {
    assert.ok(await server.store.getEvent(id), `${id} is recorded`);
  }
  assert.doesNotMatch(result.stdout, /admin API/);
});

Deno.test("simulate runs twice make new events: fresh wamids each time", async () => {
  await using server = await startTestServer();
  const url = `${server.origin}/webhook/whatsapp`;
  const first = listedIds((await simulate(["status", "--url", url])).stdout);
  const second = listedIds((await simulate(["status", "--url", url])).stdout);
  assert.equal(first.length, 1);
  assert.equal(second.length, 1);
  assert.notEqual(first[0], second[0]);
  assert.match(first[0]!, /^status:wamid\.SIM.*:delivered:\d+$/);
});

Deno.test("simulate <file>: posts the file byte for byte", async () => {
  await using server = await startTestServer();
  const url = `${server.origin}/webhook/whatsapp`;
  const result = await simulate([TEXT_FIXTURE, `--url=${url}`]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  const expected = parseDelivery(JSON.parse(await Deno.readTextFile(TEXT_FIXTURE))).events;
  assert.deepEqual(listedIds(result.stdout), expected.map((event) => event.id));
  // The signature covered the exact bytes, or the server would have answered 401.
  const stored = await server.store.getEvent(expected[0]!.id);
  assert.deepEqual(stored?.event, expected[0]);
  // The same file again is Meta's retry: acknowledged, nothing new.
  const again = await simulate([TEXT_FIXTURE, "--url", url]);
  assert.equal(again.code, 0);
  assert.match(again.stdout, /^200 OK$/m);
});

Deno.test("simulate with another APP_SECRET: prints 401 and exits 1", async () => {
  await using server = await startTestServer();
  const result = await simulate(["text", "--url", `${server.origin}/webhook/whatsapp`], {
    APP_SECRET: "another-secret-0123456789",
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
  });
  assert.equal(result.code, 1);
  assert.match(result.stdout, /^401 Unauthorized$/m);
  assert.match(result.stdout, /set APP_SECRET/);
});

Deno.test("simulate signs with the first APP_SECRET of a rotation list", async () => {
  await using server = await startTestServer();
  const result = await simulate(["image", "--url", `${server.origin}/webhook/whatsapp`], {
    APP_SECRET: `${TEST_SECRET},next-secret-0123456789`,
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
  });
  assert.equal(result.code, 0, result.stdout);
  assert.match(result.stdout, /message image {2}recorded/);
});

Deno.test("simulate with a wrong ADMIN_TOKEN: the delivery succeeds, the 401 is explained", async () => {
  await using server = await startTestServer();
  const result = await simulate(["unknown", "--url", `${server.origin}/webhook/whatsapp`], {
    APP_SECRET: TEST_SECRET,
    ADMIN_TOKEN: "wrong-admin-token-9876543210",
  });
  assert.equal(result.code, 0);
  assert.match(result.stdout, /^200 OK$/m);
  assert.match(
    result.stdout,
    /message unknown {2}admin API refused the token \(401: .*set ADMIN_TOKEN$/m,
  );
  assert.equal(listedIds(result.stdout).length, 1);
});

Deno.test("simulate against a closed port: says it cannot reach the service, exits 1", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const result = await simulate(["text"], {
    APP_SECRET: TEST_SECRET,
    PORT: String(port),
  });
  assert.equal(result.code, 1);
  assert.match(
    result.stdout,
    new RegExp(
      `^Cannot reach http://127\\.0\\.0\\.1:${port}/webhook/whatsapp: .*deno task dev`,
      "m",
    ),
  );
});

Deno.test("simulate with neither a sample nor a file: a usage error, exit 2", async () => {
  const result = await simulate(["no-such-sample"]);
  assert.equal(result.code, 2);
  assert.match(result.stdout, /^Cannot read "no-such-sample": it is neither a sample/m);
  assert.equal((await simulate([])).code, 2);
  assert.equal((await simulate(["text", "--verbose"])).code, 2);
});

/** Runs `deno task simulate` in `cwd` with `args`. */
async function simulateTask(cwd: string, args: string[]): Promise<{ code: number; text: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "simulate", ...args],
    cwd,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: output.code, text: decoder.decode(output.stdout) + decoder.decode(output.stderr) };
}

Deno.test("deno task simulate on a checkout without .env: usage without a warning; a .env is read", async () => {
  await using checkout = await freshCheckout();
  const bare = await simulateTask(checkout.path, []);
  assert.equal(bare.code, 2, bare.text);
  assert.doesNotMatch(bare.text, /^Warning|was not found/m);
  assert.match(bare.text, /^Missing what to post: a sample or a file$/m);
  assert.match(
    bare.text,
    /^Usage: deno task simulate <text\|image\|status\|batch\|unknown\|file\.json>/m,
  );

  // The port and secrets of .env win over .env.example's: the delivery reaches this server.
  await using server = await startTestServer();
  const port = new URL(server.origin).port;
  await Deno.writeTextFile(
    `${checkout.path}/.env`,
    `PORT=${port}\nAPP_SECRET=${TEST_SECRET}\nADMIN_TOKEN=${TEST_ADMIN_TOKEN}\n`,
  );
  const posted = await simulateTask(checkout.path, ["text"]);
  assert.equal(posted.code, 0, posted.text);
  assert.match(posted.text, /^200 OK$/m);
  assert.match(posted.text, /message text {2}recorded, state/);
  assert.doesNotMatch(posted.text, /^Warning/m);
});

for (const kind of SAMPLE_KINDS) {
  Deno.test(`buildSample("${kind}") parses without drift into messages and statuses`, () => {
    const { events, drift } = parseDelivery(buildSample(kind));
    assert.deepEqual(drift, []);
    assert.ok(events.length > 0);
    assert.ok(events.every((event) => event.kind === "message" || event.kind === "status"));
  });
}

Deno.test("buildSample() makes the advertised events, with fresh wamids each time", () => {
  const kinds = (kind: (typeof SAMPLE_KINDS)[number]) =>
    parseDelivery(buildSample(kind)).events.map((event) =>
      event.kind === "message"
        ? `message/${event.message.type}`
        : event.kind === "status"
        ? `status/${event.status.status}`
        : event.kind
    );
  assert.deepEqual(kinds("text"), ["message/text"]);
  assert.deepEqual(kinds("image"), ["message/image"]);
  assert.deepEqual(kinds("status"), ["status/delivered"]);
  assert.deepEqual(kinds("unknown"), ["message/unknown"]);
  assert.deepEqual(kinds("batch"), [
    "message/text",
    "message/text",
    "status/sent",
    "status/delivered",
    "message/text",
    "status/read",
  ]);
  const ids = () => parseDelivery(buildSample("batch")).events.map((event) => event.id);
  const first = new Set(ids());
  assert.ok(ids().every((id) => !first.has(id)));
});
