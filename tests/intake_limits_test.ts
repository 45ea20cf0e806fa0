/**
 * Signed deliveries built to hurt: a million bad items, a hundred thousand empty entries, bodies
 * nested thousands deep, bodies that are not JSON. Each is answered without a 5xx, costs one
 * warning line rather than one per item, and leaks no byte of the body into a response or a log.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MAX_DRIFT_SAMPLES, MAX_JSON_DEPTH } from "../src/events/events.ts";
import type { KvEventRecord as EventRecord } from "../src/store/kv/keys.ts";
import { readEvent } from "../src/store/kv/parts.ts";
import { signBody } from "../src/webhook/signature.ts";
import { serviceEnv, startService, withDataDir } from "./service_process.ts";
import { postDelivery, startTestServer, TEST_SECRET } from "./support.ts";
import { messagesDelivery } from "./deliveries.ts";

/** A text message every delivery below carries, so that losing it would show. */
const MESSAGE = {
  from: "5511999990000",
  id: "wamid.HARD01",
  timestamp: "1767225600",
  type: "text",
  text: { body: "hello" },
};

/** The 3 MB delivery of issue 13: `contacts` is 1.5 million zeros, then one message. */
function zerosDelivery(): string {
  const delivery = JSON.stringify(messagesDelivery({ contacts: [], messages: [MESSAGE] }));
  return delivery.replace(`"contacts":[]`, `"contacts":[${new Array(1_500_000).fill(0)}]`);
}

async function recordedEvents(kv: Deno.Kv): Promise<EventRecord[]> {
  const records: EventRecord[] = [];
  for await (const entry of kv.list<EventRecord>({ prefix: ["events"] })) records.push(entry.value);
  return records;
}

/** Posts `body` signed, expects 200, and returns its log lines from info up, access line aside. */
async function postAccepted(
  server: Awaited<ReturnType<typeof startTestServer>>,
  body: string,
): Promise<Record<string, unknown>[]> {
  const response = await postDelivery(server.origin, body);
  assert.equal(response.status, 200, await response.text());
  const requestId = response.headers.get("x-request-id");
  return server.logs.lines.filter((line) =>
    line.requestId === requestId && line.level !== "debug" && line.msg !== "request"
  );
}

Deno.test("a delivery of 1.5 million bad contacts is kept whole as one event, with one warning line", async () => {
  await using server = await startTestServer({ startWorker: false });
  const body = zerosDelivery();
  const lines = await postAccepted(server, body);

  const records = await recordedEvents(server.kv);
  assert.equal(records.length, 1);
  const event = await readEvent(server.kv, records[0] as EventRecord);
  assert.ok(event?.kind === "unknown");
  assert.match(event.reason, /^Delivery has more than \d+ array elements; kept whole$/);
  assert.deepEqual(event.raw, JSON.parse(body), "the message inside is kept, not lost");
  assert.deepEqual(lines.map((line) => line.msg), ["unknown event kept"]);
  assert.deepEqual(lines[0]?.samples, [{ eventId: event.id, reason: event.reason }]);
  assert.ok(server.logs.text().length < 10_000, "the log holds a few lines, not one per item");
});

Deno.test("a delivery of 100,000 empty entries is one unknown event and one warning line", async () => {
  await using server = await startTestServer({ startWorker: false });
  const body = JSON.stringify({
    object: "whatsapp_business_account",
    entry: new Array(100_000).fill({}),
  });
  const lines = await postAccepted(server, body);
  assert.equal((await recordedEvents(server.kv)).length, 1);
  assert.deepEqual(lines.map((line) => [line.msg, line.count]), [["unknown event kept", 1]]);
});

Deno.test("unknown events of a delivery share one warning line with their count and a few samples", async () => {
  await using server = await startTestServer({ startWorker: false });
  const entries = Array.from({ length: 50 }, (_, i) => ({ n: i }));
  const lines = await postAccepted(
    server,
    JSON.stringify({ object: "whatsapp_business_account", entry: entries }),
  );
  assert.equal((await recordedEvents(server.kv)).length, 50);
  assert.equal(lines.length, 1);
  const [line] = lines;
  assert.equal(line?.msg, "unknown event kept");
  assert.equal(line?.count, 50);
  const samples = line?.samples as { eventId: string; reason: string }[];
  assert.equal(samples.length, 5);
  assert.ok(samples.every((sample) => sample.reason === `Entry has no "id"`));
});

Deno.test("the schema drift of a delivery is one warning line with counts by type and samples", async () => {
  await using server = await startTestServer({ startWorker: false });
  const body = JSON.stringify(messagesDelivery({
    contacts: new Array(5_000).fill(0),
    messages: [MESSAGE],
  }));
  const lines = await postAccepted(server, body);

  assert.deepEqual((await recordedEvents(server.kv)).map((record) => record.id), [
    "message:wamid.HARD01",
  ]);
  assert.equal(lines.length, 1);
  const [line] = lines;
  assert.equal(line?.msg, "schema drift");
  assert.equal(line?.count, 5_000);
  assert.deepEqual(line?.byType, [{ field: "messages", type: "contact", count: 5_000 }]);
  const samples = line?.samples as { path: string }[];
  assert.equal(samples.length, MAX_DRIFT_SAMPLES);
  assert.equal(samples[0]?.path, "entry[0].changes[0].value.contacts[0]");
});

Deno.test("signed bodies nested thousands deep are answered 200 and kept as text, never 5xx", async () => {
  await using server = await startTestServer({ startWorker: false });
  const deepMessage = JSON.stringify(messagesDelivery({ messages: [MESSAGE] }))
    .replace(`"type":"text"`, `"type":"text","deep":${`{"a":`.repeat(6_000)}1${"}".repeat(6_000)}`);
  const bodies = ["[".repeat(10_000) + "]".repeat(10_000), deepMessage];
  for (const body of bodies) await postAccepted(server, body);

  const events = await Promise.all(
    (await recordedEvents(server.kv)).map((record) => readEvent(server.kv, record)),
  );
  assert.equal(events.length, 2);
  for (const event of events) {
    assert.ok(event?.kind === "unknown");
    assert.equal(
      event.reason,
      `Delivery nests deeper than ${MAX_JSON_DEPTH} levels; kept as text, unparsed`,
    );
    assert.ok(bodies.includes(event.raw as string), "the body, whole");
  }
  assert.ok(!server.logs.lines.some((line) => line.level === "error"), "no error logged");
});

Deno.test("a signed body that is not JSON gets a 400 that quotes none of it, nor does the log", async () => {
  await using server = await startTestServer({ startWorker: false });
  const cases: [string, string][] = [
    ["TOPSECRET4 and more", "Body is not valid JSON: unexpected character"],
    [`{"a":1 "TOPSECRET4"}`, "Body is not valid JSON: expected ',' or '}' (at byte 7)"],
  ];
  for (const [body, reason] of cases) {
    const response = await postDelivery(server.origin, body);
    assert.equal(response.status, 400);
    assert.deepEqual(await response.json(), { error: reason });
  }
  assert.ok(server.logs.lines.some((line) => line.status === 400), "the refusals are logged");
  assert.doesNotMatch(server.logs.text(), /TOPSECRET/);
});

Deno.test("the service process takes the 3 MB delivery of zeros with a few log lines and little memory", async () => {
  await withDataDir(async (kvPath) => {
    await using service = await startService(serviceEnv(kvPath));
    const body = new TextEncoder().encode(zerosDelivery());
    const signature = await signBody(TEST_SECRET, body);
    const linesBefore = service.output.length;
    const delivery = fetch(`${service.origin}/webhook/whatsapp`, {
      method: "POST",
      headers: { "X-Hub-Signature-256": signature },
      body,
    });
    const health = await fetch(`${service.origin}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    const response = await delivery;
    assert.equal(response.status, 200);
    await response.body?.cancel();

    const ready = await fetch(`${service.origin}/readyz`);
    assert.equal(ready.status, 200, "the worker took the one event without trouble");
    await ready.body?.cancel();
    const logged = service.output.slice(linesBefore);
    // Before: one "schema drift" line per zero, 405 MB of log, 1.15 GB of memory.
    assert.ok(logged.length < 10, logged.join("\n"));
    assert.equal(logged.filter((line) => line.includes('"unknown event kept"')).length, 1);
    if (Deno.build.os === "linux") {
      const status = await Deno.readTextFile(`/proc/${service.process.pid}/status`);
      const peakKb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
      assert.ok(peakKb < 300 * 1024, `peak RSS ${peakKb} kB`);
    }
  });
});
