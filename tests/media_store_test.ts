/**
 * The media stores: the contract (`media_store_contract.ts`) for the directory store and the
 * Deno KV store, and what each promises on its own (files renamed whole, parts within KV's value
 * limit).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createDirMediaStore } from "../src/media/dir_store.ts";
import { createKvMediaStore, MEDIA_PART_BYTES } from "../src/store/kv/media.ts";
import { patternBytes, streamOf, testMediaStoreContract } from "./media_store_contract.ts";
import { openTempKv } from "./support.ts";

const ABOUT = { eventId: "message:wamid.X", mimeType: "audio/ogg", sha256: "x", now: 1 };

async function openDirStore() {
  const dir = await Deno.makeTempDir({ prefix: "wa-webhook-media-" });
  return {
    dir,
    store: createDirMediaStore(join(dir, "media")),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

async function openKvStore() {
  const temp = await openTempKv();
  return {
    kv: temp.kv,
    store: createKvMediaStore(temp.kv),
    [Symbol.asyncDispose]: () => temp[Symbol.asyncDispose](),
  };
}

testMediaStoreContract("directory store", openDirStore);
testMediaStoreContract("Deno KV store", openKvStore);

Deno.test("directory store: a put cut short leaves no file named as the media's", async () => {
  await using opened = await openDirStore();
  const failing = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(patternBytes(50_000));
    },
    pull(controller) {
      controller.error(new Error("Connection lost"));
    },
  });
  await assert.rejects(opened.store.put("7001", failing, ABOUT), /Connection lost/);
  assert.deepEqual(await Array.fromAsync(Deno.readDir(join(opened.dir, "media"))), []);
  await opened.store.put("7001", streamOf(patternBytes(10)), ABOUT);
  const names = (await Array.fromAsync(Deno.readDir(join(opened.dir, "media"))))
    .map((entry) => entry.name).sort();
  assert.deepEqual(names, ["7001.bin", "7001.json"]);
});

Deno.test("Deno KV store: parts fit a KV value, and a failed put leaves none behind", async () => {
  await using opened = await openKvStore();
  await opened.store.put("8001", streamOf(patternBytes(1024 * 1024 + 5), 65_537), ABOUT);
  const parts = await Array.fromAsync(opened.kv.list<Uint8Array>({ prefix: ["media_parts"] }));
  assert.equal(parts.length, Math.ceil((1024 * 1024 + 5) / MEDIA_PART_BYTES));
  assert.ok(parts.every((part) => part.value.byteLength <= MEDIA_PART_BYTES));

  const failing = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(patternBytes(900_000));
    },
    pull(controller) {
      controller.error(new Error("Connection lost"));
    },
  });
  await assert.rejects(opened.store.put("8002", failing, ABOUT), /Connection lost/);
  const after = await Array.fromAsync(opened.kv.list({ prefix: ["media_parts"] }));
  assert.equal(after.length, parts.length, "only 8001's parts");
});
