/**
 * The contract every media store passes (`src/media/media_store.ts`): bytes in and out unchanged,
 * a failed put leaves nothing named as whole, failures recorded with their reason, ids checked,
 * and the purge. `tests/media_store_test.ts` runs it for the directory and the Deno KV stores.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  InvalidMediaIdError,
  type MediaStore,
  type PutMediaOptions,
} from "../src/media/media_store.ts";

/** A store on fresh storage, removed on dispose. */
export interface OpenedMediaStore extends AsyncDisposable {
  store: MediaStore;
}

const T0 = Date.UTC(2026, 0, 1);
const ABOUT: PutMediaOptions = {
  eventId: "message:wamid.MEDIA1",
  mimeType: "image/jpeg",
  sha256: "abc",
  now: T0,
};

/** `size` bytes of a pattern that differs per `seed`. */
export function patternBytes(size: number, seed = 1): Uint8Array<ArrayBuffer> {
  return Uint8Array.from({ length: size }, (_, i) => (i * seed + (i >> 8)) & 0xff);
}

/** `bytes` as a stream of chunks of `chunkBytes` (odd sizes cross every part boundary). */
export function streamOf(bytes: Uint8Array, chunkBytes = 10_007): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.byteLength) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + chunkBytes));
      offset += chunkBytes;
    },
  });
}

/** A stream that sends `bytes`, then fails with `error`. */
function failingAfter(bytes: Uint8Array, error: Error): ReadableStream<Uint8Array> {
  let isSent = false;
  return new ReadableStream({
    pull(controller) {
      if (isSent) return controller.error(error);
      isSent = true;
      controller.enqueue(bytes);
    },
  });
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Registers the contract's tests for the store `open` makes, named after `name`. */
export function testMediaStoreContract(
  name: string,
  open: () => Promise<OpenedMediaStore>,
): void {
  const test = (what: string, fn: (store: MediaStore) => Promise<void>): void => {
    Deno.test(`${name}: ${what}`, async () => {
      await using opened = await open();
      await fn(opened.store);
    });
  };

  test("put() keeps the bytes unchanged and get() streams them with type and size", async (store) => {
    for (const [id, size] of [["1001", 0], ["1002", 1], ["1003", 200 * 1024 + 13]] as const) {
      const bytes = patternBytes(size, size % 7 + 1);
      const record = await store.put(id, streamOf(bytes), ABOUT);
      assert.deepEqual(record, {
        id,
        eventId: ABOUT.eventId,
        mimeType: "image/jpeg",
        sha256: "abc",
        state: "stored",
        size,
        storedAt: T0,
      });
      assert.deepEqual(await store.getRecord(id), record);
      const stored = await store.get(id);
      assert.ok(stored);
      assert.equal(stored.contentType, "image/jpeg");
      assert.equal(stored.size, size);
      assert.deepEqual(await readAll(stored.body), bytes);
    }
  });

  test("put() replaces earlier bytes of the same id", async (store) => {
    await store.put("2001", streamOf(patternBytes(150_000, 3)), ABOUT);
    const shorter = patternBytes(70_000, 5);
    await store.put("2001", streamOf(shorter), { ...ABOUT, mimeType: "video/mp4", now: T0 + 1 });
    const stored = await store.get("2001");
    assert.equal(stored?.contentType, "video/mp4");
    assert.equal(stored?.size, 70_000);
    assert.deepEqual(await readAll(stored!.body), shorter);
  });

  test("put() of a stream that fails keeps nothing of it, and the earlier bytes stay whole", async (store) => {
    const cause = new Error("Stream cut off");
    await assert.rejects(
      store.put("3001", failingAfter(patternBytes(130_000), cause), ABOUT),
      cause,
    );
    assert.equal(await store.getRecord("3001"), null);
    assert.equal(await store.get("3001"), null);

    const earlier = patternBytes(90_000, 9);
    await store.put("3001", streamOf(earlier), ABOUT);
    await assert.rejects(store.put("3001", failingAfter(patternBytes(200_000), cause), ABOUT));
    const stored = await store.get("3001");
    assert.equal(stored?.size, 90_000);
    assert.deepEqual(await readAll(stored!.body), earlier);
  });

  test("fail() records the reason, and get() then serves nothing", async (store) => {
    await store.put("4001", streamOf(patternBytes(1000)), ABOUT);
    const reason = 'Cannot store media "4001": it is larger than MEDIA_MAX_BYTES';
    const record = await store.fail("4001", { ...ABOUT, reason, now: T0 + 5 });
    assert.deepEqual(record, {
      id: "4001",
      eventId: ABOUT.eventId,
      mimeType: "image/jpeg",
      sha256: "abc",
      state: "failed",
      reason,
      storedAt: T0 + 5,
    });
    assert.deepEqual(await store.getRecord("4001"), record);
    assert.equal(await store.get("4001"), null);
  });

  test("ids that are not media ids are refused by put() and unknown to get()", async (store) => {
    for (const id of ["../x", "a/b", "", "x.json", "x".repeat(129)]) {
      await assert.rejects(store.put(id, streamOf(new Uint8Array(1)), ABOUT), InvalidMediaIdError);
      assert.equal(await store.getRecord(id), null, id);
      assert.equal(await store.get(id), null, id);
    }
    assert.equal(await store.getRecord("999"), null);
  });

  test("purge() removes what was stored before the cut, bytes and record, up to the limit", async (store) => {
    for (const [id, at] of [["5001", T0], ["5002", T0 + 10], ["5003", T0 + 20]] as const) {
      await store.put(id, streamOf(patternBytes(70_000)), { ...ABOUT, now: at });
    }
    await store.fail("5004", { ...ABOUT, reason: "x", now: T0 + 5 });
    assert.equal(await store.purge(T0 + 11, 2), 2);
    assert.equal(await store.purge(T0 + 11, 10), 1);
    for (const id of ["5001", "5002", "5004"]) {
      assert.equal(await store.getRecord(id), null, id);
      assert.equal(await store.get(id), null, id);
    }
    const kept = await store.get("5003");
    assert.equal(kept?.size, 70_000);
    await kept?.body.cancel();
    assert.equal(await store.purge(T0 + 11, 10), 0);
  });
}
