/**
 * The media store in Deno KV, for Deno Deploy, which has no disk: the bytes of media `id` are
 * parts of at most 60 KiB (a KV value holds 64 KiB) under a key prefix of their own, written ten
 * to an atomic commit (600 KiB, within KV's 800 KiB per commit) as the stream arrives, so no more
 * than one commit's worth is held in memory.
 *
 * Layout:
 * - `["media", id]`: the record (`MediaRecord`), plus the generation and count of its parts.
 * - `["media_parts", id, generation, n]`: part `n` of the bytes of one put. A put writes a new
 *   generation, then swaps the record to it in one atomic, then deletes the old generation: a
 *   reader sees the old bytes or the new, never a mix, and a put cut short leaves parts that no
 *   record names (deleted by the put that failed, or by the purge).
 * - `["media_time", storedAt, id]`: records by age, for the purge.
 *
 * With a retention, every entry also expires a day after it (`expireIn`): the purge removes
 * records on time, and KV itself removes the parts a crash left without a record.
 *
 * @module
 */
import { commitWithRetry } from "./commit.ts";
import { GET_MANY_MAX_KEYS } from "./get_many.ts";
import {
  assertMediaId,
  failedRecord,
  type FailMediaOptions,
  isMediaId,
  type MediaRecord,
  type MediaStore,
  type PutMediaOptions,
  type StoredMedia,
  storedRecord,
} from "../../media/media_store.ts";

/** One part's bytes: under KV's 64 KiB value limit, with room for the key. */
export const MEDIA_PART_BYTES = 60 * 1024;
/** Parts per atomic commit: 600 KiB, within KV's 800 KiB of mutations per commit. */
const PARTS_PER_COMMIT = 10;
/** Deletes per atomic commit, within KV's 1000 mutations. */
const DELETES_PER_COMMIT = 500;
/** How long after the retention KV expires an entry by itself: the purge comes first. */
const EXPIRY_AFTER_RETENTION_MS = 24 * 60 * 60_000;
/** Tries of a record swap that met a concurrent write, before giving up. */
const SWAP_ATTEMPTS = 5;

/** The record of media `id`. */
export function mediaKey(id: string): Deno.KvKey {
  return ["media", id];
}

/** Part `n` of the bytes of generation `generation` of media `id`. */
export function mediaPartKey(id: string, generation: string, n: number): Deno.KvKey {
  return ["media_parts", id, generation, n];
}

/** Every part of one generation of media `id`. */
function _mediaPartsPrefix(id: string, generation: string): Deno.KvKey {
  return ["media_parts", id, generation];
}

/** The age index entry of the record of media `id` written at `storedAt`. */
function _mediaTimeKey(storedAt: number, id: string): Deno.KvKey {
  return ["media_time", storedAt, id];
}

const MEDIA_TIME_PREFIX: Deno.KvKey = ["media_time"];

/** The record as KV keeps it: where its parts are. */
interface _KvMediaRecord extends MediaRecord {
  generation?: string;
  parts?: number;
}

/** Options for {@linkcode createKvMediaStore}. */
export interface KvMediaStoreOptions {
  /** How long media are kept (the purge's); entries then expire by themselves a day later. */
  retentionMs?: number;
}

/** Creates the media store over `kv`. It does not close `kv`. */
export function createKvMediaStore(kv: Deno.Kv, options: KvMediaStoreOptions = {}): MediaStore {
  const expiry = options.retentionMs === undefined
    ? {}
    : { expireIn: options.retentionMs + EXPIRY_AFTER_RETENTION_MS };
  async function deleteParts(id: string, generation: string): Promise<void> {
    let keys: Deno.KvKey[] = [];
    const flush = async (): Promise<void> => {
      const batch = keys;
      keys = [];
      await commitWithRetry(() => {
        const atomic = kv.atomic();
        for (const key of batch) atomic.delete(key);
        return atomic;
      });
    };
    for await (const entry of kv.list({ prefix: _mediaPartsPrefix(id, generation) })) {
      keys.push(entry.key);
      if (keys.length >= DELETES_PER_COMMIT) await flush();
    }
    if (keys.length > 0) await flush();
  }

  /** Writes `next` as the record of its id, replacing the one there; returns the one replaced. */
  async function swapRecord(next: _KvMediaRecord): Promise<_KvMediaRecord | null> {
    for (let attempt = 1; attempt <= SWAP_ATTEMPTS; attempt++) {
      const current = await kv.get<_KvMediaRecord>(mediaKey(next.id));
      const result = await commitWithRetry(() => {
        const atomic = kv.atomic().check(current).set(mediaKey(next.id), next, expiry)
          .set(_mediaTimeKey(next.storedAt, next.id), next.id, expiry);
        if (current.value !== null && current.value.storedAt !== next.storedAt) {
          atomic.delete(_mediaTimeKey(current.value.storedAt, next.id));
        }
        return atomic;
      });
      if (result.ok) return current.value;
    }
    throw new Error(`Cannot store the record of media "${next.id}": it kept changing`);
  }

  async function replaceRecord(next: _KvMediaRecord): Promise<void> {
    const replaced = await swapRecord(next);
    if (replaced?.generation !== undefined && replaced.generation !== next.generation) {
      await deleteParts(next.id, replaced.generation);
    }
  }

  async function getRecord(id: string): Promise<MediaRecord | null> {
    if (!isMediaId(id)) return null;
    const stored = (await kv.get<_KvMediaRecord>(mediaKey(id))).value;
    if (stored === null) return null;
    const { generation: _generation, parts: _parts, ...record } = stored;
    return record;
  }

  return {
    name: "Deno KV",
    async put(id: string, body: ReadableStream<Uint8Array>, options: PutMediaOptions) {
      assertMediaId(id);
      const generation = crypto.randomUUID();
      let part = new Uint8Array(MEDIA_PART_BYTES);
      let filled = 0;
      let pending: Uint8Array[] = [];
      let parts = 0;
      let size = 0;
      const commitPending = async (): Promise<void> => {
        const batch = pending;
        const first = parts;
        pending = [];
        const result = await commitWithRetry(() => {
          const atomic = kv.atomic();
          batch.forEach((bytes, i) =>
            atomic.set(mediaPartKey(id, generation, first + i), bytes, expiry)
          );
          return atomic;
        });
        if (!result.ok) throw new Error(`Cannot store the parts of media "${id}"`);
        parts += batch.length;
      };
      try {
        for await (const chunk of body) {
          size += chunk.byteLength;
          for (let offset = 0; offset < chunk.byteLength;) {
            const taken = Math.min(MEDIA_PART_BYTES - filled, chunk.byteLength - offset);
            part.set(chunk.subarray(offset, offset + taken), filled);
            filled += taken;
            offset += taken;
            if (filled === MEDIA_PART_BYTES) {
              pending.push(part);
              part = new Uint8Array(MEDIA_PART_BYTES);
              filled = 0;
              if (pending.length >= PARTS_PER_COMMIT) await commitPending();
            }
          }
        }
        if (filled > 0) pending.push(part.slice(0, filled));
        if (pending.length > 0) await commitPending();
      } catch (error) {
        await deleteParts(id, generation);
        throw error;
      }
      const record = storedRecord(id, size, options);
      await replaceRecord({ ...record, generation, parts });
      return record;
    },
    async fail(id: string, options: FailMediaOptions) {
      assertMediaId(id);
      const record = failedRecord(id, options);
      await replaceRecord(record);
      return record;
    },
    getRecord,
    async get(id: string): Promise<StoredMedia | null> {
      if (!isMediaId(id)) return null;
      const stored = (await kv.get<_KvMediaRecord>(mediaKey(id))).value;
      if (stored?.state !== "stored" || stored.generation === undefined) return null;
      const { generation, parts = 0, ...record } = stored;
      let next = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (next >= parts) return controller.close();
          const keys = [];
          for (; next < parts && keys.length < GET_MANY_MAX_KEYS; next++) {
            keys.push(mediaPartKey(id, generation, next));
          }
          for (const entry of await kv.getMany<Uint8Array[]>(keys)) {
            if (entry.value === null) {
              throw new Error(`Cannot read media "${id}": part ${String(entry.key[3])} is missing`);
            }
            controller.enqueue(entry.value);
          }
        },
      }, { highWaterMark: 0 });
      return { record, body, contentType: record.mimeType, size: record.size ?? 0 };
    },
    async purge(before: number, limit: number): Promise<number> {
      let purged = 0;
      const end = _mediaTimeKey(before, "");
      for await (const entry of kv.list<string>({ start: MEDIA_TIME_PREFIX, end }, { limit })) {
        const id = entry.value;
        const stored = await kv.get<_KvMediaRecord>(mediaKey(id));
        const isThisRecord = stored.value !== null && stored.value.storedAt === entry.key[1];
        const result = await commitWithRetry(() => {
          const atomic = kv.atomic().check(entry).delete(entry.key);
          return isThisRecord ? atomic.check(stored).delete(stored.key) : atomic;
        });
        if (!result.ok || !isThisRecord) continue;
        if (stored.value!.generation !== undefined) {
          await deleteParts(id, stored.value!.generation);
        }
        purged++;
      }
      return purged;
    },
  };
}
