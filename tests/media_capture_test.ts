/**
 * Media capture end to end: signed deliveries to the app on a real loopback server, the worker,
 * the media calls against the fake Graph API, the media store (directory and Deno KV), and the
 * admin API serving what was captured. Plus the streaming checks of `media/verify.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { EventRecord } from "../src/store/event_record.ts";
import { ManualClock } from "../src/ops/clock.ts";
import type { MediaStore } from "../src/media/media_store.ts";
import { createKvMediaStore } from "../src/store/kv/media.ts";
import {
  MediaHashMismatchError,
  MediaTooLargeError,
  sha256Matches,
  verifyingStream,
} from "../src/media/verify.ts";
import { messagesDelivery } from "./deliveries.ts";
import { FAKE_TOKEN, type FakeGraphApi, startFakeGraphApi } from "./fake_graph_api.ts";
import { patternBytes, streamOf } from "./media_store_contract.ts";
import {
  openTempKv,
  postDelivery,
  startTestServer,
  TEST_ADMIN_TOKEN,
  type TestServer,
  waitFor,
} from "./support.ts";

const AUTH = { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

interface Harness extends AsyncDisposable {
  fake: FakeGraphApi;
  server: TestServer;
  mediaDir: string;
}

type StoreKind = "dir" | "kv";

async function setup(kind: StoreKind, env: Record<string, string> = {}): Promise<Harness> {
  const fake = startFakeGraphApi();
  const temp = await Deno.makeTempDir({ prefix: "wa-webhook-media-e2e-" });
  const mediaDir = join(temp, "media");
  const kv = await openTempKv();
  let mediaStore: MediaStore | undefined;
  if (kind === "kv") mediaStore = createKvMediaStore(kv.kv);
  const server = await startTestServer({
    kv: kv.kv,
    random: () => 0,
    env: {
      MEDIA_CAPTURE: "on",
      MEDIA_DIR: mediaDir,
      WHATSAPP_TOKEN: FAKE_TOKEN,
      GRAPH_API_BASE_URL: fake.url,
      ...env,
    },
    ...(mediaStore ? { mediaStore } : {}),
  });
  return {
    fake,
    server,
    mediaDir,
    async [Symbol.asyncDispose]() {
      await server[Symbol.asyncDispose]();
      await fake.close();
      await kv[Symbol.asyncDispose]();
      await Deno.remove(temp, { recursive: true });
    },
  };
}

/** A delivery of one `type` message carrying media `mediaId`. */
function mediaDelivery(
  wamid: string,
  type: string,
  media: { id: string; mime_type: string; sha256: string },
): string {
  const message = {
    from: "5511999990000",
    id: wamid,
    timestamp: "1767225600",
    type,
    [type]: { ...media, ...(type === "document" ? { filename: "big.pdf" } : {}) },
  };
  return JSON.stringify(messagesDelivery({
    contacts: [{ profile: { name: "Ana" }, wa_id: "5511999990000" }],
    messages: [message],
  }));
}

async function post(t: Harness, body: string): Promise<void> {
  const response = await postDelivery(t.server.origin, body);
  assert.equal(response.status, 200);
  await response.body?.cancel();
}

async function untilSettled(t: Harness, wamid: string): Promise<EventRecord> {
  let record: EventRecord | undefined;
  await waitFor(async () => {
    record = (await t.server.store.getEvent(`message:${wamid}`))?.record;
    return record?.state === "done" || record?.state === "dead";
  }, `${wamid} settled`);
  return record!;
}

async function adminGet(t: Harness, path: string, headers: HeadersInit = AUTH) {
  return await fetch(`${t.server.origin}${path}`, { headers });
}

function base64Of(hex: string): string {
  return btoa(String.fromCharCode(...hex.match(/../g)!.map((pair) => parseInt(pair, 16))));
}

/** The fake's requests to the media endpoint and to download URLs, as `info` and `download`. */
function mediaCalls(fake: FakeGraphApi): string[] {
  return fake.requests.map((request) =>
    request.path.startsWith("/whatsapp_business/") ? "download" : "info"
  );
}

for (const kind of ["dir", "kv"] as const) {
  Deno.test(`${kind}: an image is captured byte for byte, named on its event and served to the admin`, async () => {
    await using t = await setup(kind);
    const bytes = patternBytes(150_000, 7);
    const hex = await t.fake.addMedia("3001", { mimeType: "image/jpeg", bytes });
    // Meta writes sha256 in base64 in webhooks and in hex elsewhere: both are taken.
    const sha256 = kind === "dir" ? base64Of(hex) : hex;
    await post(
      t,
      mediaDelivery("wamid.IMG1", "image", { id: "3001", mime_type: "image/jpeg", sha256 }),
    );
    const record = await untilSettled(t, "wamid.IMG1");
    assert.equal(record.state, "done", record.lastError);
    assert.ok(record.completedHandlers.includes("media-capture"));

    const info = t.fake.requests[0]!;
    assert.equal(info.path, "/v26.0/3001");
    assert.equal(info.headers.authorization, `Bearer ${FAKE_TOKEN}`);
    assert.equal(t.fake.requests[1]!.headers.authorization, `Bearer ${FAKE_TOKEN}`);

    const served = await adminGet(t, "/admin/media/3001");
    assert.equal(served.status, 200);
    assert.equal(served.headers.get("content-type"), "image/jpeg");
    assert.equal(served.headers.get("content-length"), "150000");
    assert.equal(served.headers.get("x-content-type-options"), "nosniff");
    assert.deepEqual(new Uint8Array(await served.arrayBuffer()), bytes);

    const event = await (await adminGet(t, "/admin/events/message%3Awamid.IMG1")).json();
    assert.deepEqual(event.media, [{
      id: "3001",
      state: "stored",
      size: 150_000,
      mimeType: "image/jpeg",
      route: "/admin/media/3001",
    }]);

    const refused = await adminGet(t, "/admin/media/3001", {});
    assert.equal(refused.status, 401);
    await refused.body?.cancel();
    const wrong = await adminGet(t, "/admin/media/3001", { Authorization: "Bearer nope" });
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    // No media bytes, URLs or tokens in the logs.
    const logs = t.server.logs.text();
    assert.doesNotMatch(logs, /whatsapp_business|fake-graph-token|hash=/);
    assert.match(logs, /"msg":"media stored"/);
  });

  Deno.test(`${kind}: an expired download URL is replaced by a new one`, async () => {
    await using t = await setup(kind);
    const bytes = patternBytes(70_000, 3);
    const hex = await t.fake.addMedia("3002", { mimeType: "audio/ogg", bytes, expiredUrls: 1 });
    await post(
      t,
      mediaDelivery("wamid.AUD1", "audio", { id: "3002", mime_type: "audio/ogg", sha256: hex }),
    );
    const record = await untilSettled(t, "wamid.AUD1");
    assert.equal(record.state, "done", record.lastError);
    assert.equal(record.attempts, 1, "within one run");
    assert.deepEqual(mediaCalls(t.fake), ["info", "download", "info", "download"]);
    const served = await adminGet(t, "/admin/media/3002");
    assert.equal(served.headers.get("content-type"), "audio/ogg");
    assert.deepEqual(new Uint8Array(await served.arrayBuffer()), bytes);
  });

  Deno.test(`${kind}: bytes whose hash is not the webhook's sha256 are refused, with the reason`, async () => {
    await using t = await setup(kind);
    await t.fake.addMedia("3003", { mimeType: "video/mp4", bytes: patternBytes(90_000) });
    const wrong = "0".repeat(64);
    await post(
      t,
      mediaDelivery("wamid.VID1", "video", { id: "3003", mime_type: "video/mp4", sha256: wrong }),
    );
    const record = await untilSettled(t, "wamid.VID1");
    assert.equal(record.state, "dead", "a hash mismatch is not retried");
    assert.match(
      record.lastError ?? "",
      /^media-capture: Cannot store media "3003": its bytes hash to "[0-9a-f]{64}", not to the sha256 "0{64}"/,
    );
    const event = await (await adminGet(t, "/admin/events/message%3Awamid.VID1")).json();
    assert.equal(event.media[0].state, "failed");
    assert.match(event.media[0].reason, /hash to/);
    const served = await adminGet(t, "/admin/media/3003");
    assert.equal(served.status, 404);
    const { error } = await served.json();
    assert.match(error, /^Media "3003" was not stored: Cannot store media "3003": its bytes hash/);
  });

  Deno.test(`${kind}: media over MEDIA_MAX_BYTES are refused, with the reason, before downloading`, async () => {
    await using t = await setup(kind, { MEDIA_MAX_BYTES: "65536" });
    const hex = await t.fake.addMedia("3004", { mimeType: "application/pdf", size: 70_000 });
    await post(
      t,
      mediaDelivery("wamid.DOC1", "document", {
        id: "3004",
        mime_type: "application/pdf",
        sha256: hex,
      }),
    );
    const record = await untilSettled(t, "wamid.DOC1");
    assert.equal(record.state, "dead");
    assert.match(
      record.lastError ?? "",
      /it is 70000 bytes, larger than MEDIA_MAX_BYTES \(65536 bytes\); raise MEDIA_MAX_BYTES/,
    );
    assert.deepEqual(mediaCalls(t.fake), ["info"]);
    const event = await (await adminGet(t, "/admin/events/message%3Awamid.DOC1")).json();
    assert.equal(event.media[0].state, "failed");
  });

  Deno.test(`${kind}: a failing download is retried with backoff, and a replay does not fetch stored media again`, async () => {
    await using t = await setup(kind);
    const bytes = patternBytes(5_000, 11);
    const hex = await t.fake.addMedia("3005", { mimeType: "image/webp", bytes });
    // The media endpoint answers as Meta would, then the download fails with a bare 502.
    t.fake.script({ delayMs: 0 }, { status: 502 });
    await post(
      t,
      mediaDelivery("wamid.STK1", "sticker", { id: "3005", mime_type: "image/webp", sha256: hex }),
    );
    const record = await untilSettled(t, "wamid.STK1");
    assert.equal(record.state, "done", record.lastError);
    assert.deepEqual(mediaCalls(t.fake), ["info", "download", "info", "download"]);
    const before = t.fake.requests.length;
    const replay = await fetch(`${t.server.origin}/admin/events/message%3Awamid.STK1/replay`, {
      method: "POST",
      headers: AUTH,
    });
    assert.equal(replay.status, 202);
    await replay.body?.cancel();
    await waitFor(
      async () =>
        (await t.server.store.getEvent("message:wamid.STK1"))?.record.attempts === 1 &&
        (await t.server.store.getEvent("message:wamid.STK1"))?.record.state === "done",
      "the replay ran",
    );
    assert.equal(t.fake.requests.length, before, "stored media are not fetched again");
  });
}

Deno.test("verifyingStream() passes the bytes and accepts Meta's sha256 in hex or base64", async () => {
  const bytes = patternBytes(100_000);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  const base64 = btoa(String.fromCharCode(...digest));
  const urlSafe = base64.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  for (const sha256 of [hex, hex.toUpperCase(), base64, urlSafe]) {
    const out = streamOf(bytes).pipeThrough(
      verifyingStream({ id: "1", maxBytes: 100_000, capName: "CAP", sha256 }),
    );
    assert.deepEqual(new Uint8Array(await new Response(out).arrayBuffer()), bytes, sha256);
  }
  assert.equal(sha256Matches("not a hash", digest), false);
});

Deno.test("verifyingStream() fails past the cap, before the end, and on a hash that differs", async () => {
  let pulled = 0;
  const endless = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled++;
      controller.enqueue(new Uint8Array(1024));
    },
  });
  const capped = endless.pipeThrough(
    verifyingStream({ id: "9", maxBytes: 10_000, capName: "MEDIA_MAX_BYTES", sha256: "x" }),
  );
  await assert.rejects(new Response(capped).arrayBuffer(), MediaTooLargeError);
  assert.ok(pulled < 20, `read ${pulled} KiB of an endless body`);
  const mismatched = streamOf(patternBytes(10)).pipeThrough(
    verifyingStream({ id: "9", maxBytes: 100, capName: "C", sha256: "0".repeat(64) }),
  );
  await assert.rejects(new Response(mismatched).arrayBuffer(), MediaHashMismatchError);
});

Deno.test("the worker's purge removes media stored longer ago than the event retention", async () => {
  await using kv = await openTempKv();
  const clock = new ManualClock();
  const mediaStore = createKvMediaStore(kv.kv);
  const about = { eventId: "message:wamid.OLD", mimeType: "image/png", sha256: "x" };
  const weekMs = 7 * 24 * 3_600_000;
  await mediaStore.put("6001", streamOf(patternBytes(1000)), {
    ...about,
    now: clock.now() - weekMs - 1,
  });
  await mediaStore.put("6002", streamOf(patternBytes(1000)), { ...about, now: clock.now() - 1 });
  await using _server = await startTestServer({
    kv: kv.kv,
    clock,
    mediaStore,
    env: { MEDIA_CAPTURE: "on", WHATSAPP_TOKEN: FAKE_TOKEN, EVENT_RETENTION_HOURS: "168" },
  });
  await waitFor(async () => (await mediaStore.getRecord("6001")) === null, "6001 purged");
  assert.equal((await mediaStore.getRecord("6002"))?.state, "stored");
});
