/**
 * Events too large for one Deno KV value (64 KiB) are stored as chunks of their JSON beside their
 * record, written before it and read back joined.
 *
 * @module
 */
import type { WebhookEvent } from "../../events/events.ts";
import { commitWithRetry } from "./commit.ts";
import { getManyInBatches } from "./get_many.ts";
import { eventPartKey, type KvEventRecord } from "./keys.ts";

/** Events whose JSON is longer are stored in chunks: a KV value holds at most 64 KiB. */
export const MAX_INLINE_EVENT_CHARS = 24 * 1024;
/** Size of one chunk of a large event's JSON (UTF-8 bytes). */
const PART_BYTES = 60 * 1024;
/** Chunks written per commit. */
const PARTS_PER_COMMIT = 10;

/** An event's JSON in chunks of at most {@linkcode PART_BYTES}. */
export function chunkEvent(json: string): Uint8Array[] {
  return _chunk(new TextEncoder().encode(json), PART_BYTES);
}

/** Reads an event back whole, joining its chunks when it was stored in parts. */
export async function readEvent(kv: Deno.Kv, record: KvEventRecord): Promise<WebhookEvent> {
  if (record.event) return record.event;
  const keys = Array.from({ length: record.parts ?? 0 }, (_, n) => eventPartKey(record.id, n));
  const chunks: Uint8Array[] = [];
  for (const entry of await getManyInBatches<Uint8Array>(kv, keys)) {
    if (entry.value === null) {
      throw new Error(`Cannot read event "${record.id}": part ${String(entry.key[2])} is missing`);
    }
    chunks.push(entry.value);
  }
  const bytes = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0));
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** Writes the chunks of a large event (nothing for an inline one), before its record. */
export async function writeParts(
  kv: Deno.Kv,
  event: { id: string; parts: readonly Uint8Array[]; expireInMs: number },
): Promise<void> {
  for (let first = 0; first < event.parts.length; first += PARTS_PER_COMMIT) {
    const result = await commitWithRetry(() => {
      const atomic = kv.atomic();
      event.parts.slice(first, first + PARTS_PER_COMMIT).forEach((part, i) => {
        atomic.set(eventPartKey(event.id, first + i), part, { expireIn: event.expireInMs });
      });
      return atomic;
    });
    if (!result.ok) throw new Error(`Cannot store the parts of event "${event.id}"`);
  }
}

/**
 * Writes the chunks of a large event again, to live `expireInMs` from now, before its record is
 * stored with a longer life: a record must never outlive its parts. Returns the number of chunks,
 * for the record's `parts`.
 */
export async function renewParts(
  kv: Deno.Kv,
  event: WebhookEvent,
  expireInMs: number,
): Promise<number> {
  const parts = chunkEvent(JSON.stringify(event));
  await writeParts(kv, { id: event.id, parts, expireInMs });
  return parts.length;
}

function _chunk(bytes: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.slice(i, i + size));
  return chunks;
}
