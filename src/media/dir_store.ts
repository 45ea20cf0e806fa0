/**
 * The media store in a local directory (`MEDIA_DIR`, `./data/media` by default: the tasks may
 * write `./data` only). Media `id` is two files: `<id>.bin`, its bytes, and `<id>.json`, its
 * record. Both are written to a temporary name, flushed to disk and renamed, the bytes before the
 * record: a crash leaves a temporary file (removed by the purge) or bytes without a record (not
 * served), never a half file named as whole.
 *
 * @module
 */
import { join } from "node:path";
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
} from "./media_store.ts";

/** Marks a file being written; the purge removes those left behind by a crash. */
const TEMP_MARK = ".tmp-";
/** The suffixes of a media id's two files. */
const BYTES_SUFFIX = ".bin";
const RECORD_SUFFIX = ".json";

/** Creates the directory store over `dir`; the directory is created on the first write. */
export function createDirMediaStore(dir: string): MediaStore {
  const bytesPath = (id: string): string => join(dir, `${id}${BYTES_SUFFIX}`);
  const recordPath = (id: string): string => join(dir, `${id}${RECORD_SUFFIX}`);
  const tempPath = (path: string): string => `${path}${TEMP_MARK}${crypto.randomUUID()}`;

  async function writeRecord(record: MediaRecord): Promise<void> {
    const temp = tempPath(recordPath(record.id));
    await Deno.writeTextFile(temp, JSON.stringify(record));
    await Deno.rename(temp, recordPath(record.id));
  }

  async function getRecord(id: string): Promise<MediaRecord | null> {
    if (!isMediaId(id)) return null;
    try {
      return JSON.parse(await Deno.readTextFile(recordPath(id)));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
  }

  async function removeIfPresent(path: string): Promise<void> {
    try {
      await Deno.remove(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }

  return {
    name: "directory",
    async put(id: string, body: ReadableStream<Uint8Array>, options: PutMediaOptions) {
      assertMediaId(id);
      await Deno.mkdir(dir, { recursive: true });
      const temp = tempPath(bytesPath(id));
      const file = await Deno.open(temp, { write: true, createNew: true });
      let size = 0;
      try {
        for await (const chunk of body) {
          for (let written = 0; written < chunk.byteLength;) {
            written += await file.write(chunk.subarray(written));
          }
          size += chunk.byteLength;
        }
        await file.syncData();
      } catch (error) {
        file.close();
        await removeIfPresent(temp);
        throw error;
      }
      file.close();
      await Deno.rename(temp, bytesPath(id));
      const record = storedRecord(id, size, options);
      await writeRecord(record);
      return record;
    },
    async fail(id: string, options: FailMediaOptions) {
      assertMediaId(id);
      await Deno.mkdir(dir, { recursive: true });
      const record = failedRecord(id, options);
      await writeRecord(record);
      await removeIfPresent(bytesPath(id));
      return record;
    },
    getRecord,
    async get(id: string): Promise<StoredMedia | null> {
      const record = await getRecord(id);
      if (record?.state !== "stored") return null;
      let file: Deno.FsFile;
      try {
        file = await Deno.open(bytesPath(id), { read: true });
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return null;
        throw error;
      }
      const { size } = await file.stat();
      return { record, body: file.readable, contentType: record.mimeType, size };
    },
    async purge(before: number, limit: number): Promise<number> {
      let purged = 0;
      let entries: Deno.DirEntry[];
      try {
        entries = await Array.fromAsync(Deno.readDir(dir));
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return 0;
        throw error;
      }
      for (const entry of entries) {
        if (purged >= limit) break;
        const path = join(dir, entry.name);
        const isOrphan = entry.name.includes(TEMP_MARK) ||
          (entry.name.endsWith(BYTES_SUFFIX) &&
            await getRecord(entry.name.slice(0, -BYTES_SUFFIX.length)) === null);
        if (isOrphan) {
          // A write a crash cut short, old enough that no write still goes on.
          const { mtime } = await Deno.stat(path);
          if (mtime !== null && mtime.getTime() < before) await removeIfPresent(path);
          continue;
        }
        if (!entry.name.endsWith(RECORD_SUFFIX)) continue;
        const id = entry.name.slice(0, -RECORD_SUFFIX.length);
        const record = await getRecord(id);
        if (record === null || record.storedAt >= before) continue;
        await removeIfPresent(bytesPath(id));
        await removeIfPresent(recordPath(id));
        purged++;
      }
      return purged;
    },
  };
}
