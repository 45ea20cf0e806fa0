/**
 * The media-store interface: where captured media (images, audio, video, documents, stickers a user
 * sent) are kept once their bytes are fetched from the Graph API, and the record of each media id,
 * stored or failed, with the reason. Two implementations pass one contract suite
 * (`tests/media_store_contract.ts`): a local directory (`dir_store.ts`) and Deno KV in parts
 * (`store/kv/media.ts`, for Deno Deploy, which has no disk).
 *
 * Bytes go in and come out as streams: a store never holds a whole file in memory. A put whose
 * stream fails (too large, a hash that does not match, a lost connection) leaves nothing behind
 * named as that media: a reader sees the earlier state or none.
 *
 * @module
 */

/** Whether a media id's bytes are kept (`stored`) or could not be had (`failed`, with a reason). */
export type MediaState = "stored" | "failed";

/** What a store keeps about one media id. */
export interface MediaRecord {
  /** Meta's media id, from the webhook. */
  id: string;
  /** The event whose message carried it. */
  eventId: string;
  /** The MIME type Meta gave (`image/jpeg`, `audio/ogg; codecs=opus`, …). */
  mimeType: string;
  /** The SHA-256 the webhook gave, as Meta wrote it (hex or base64). */
  sha256?: string;
  state: MediaState;
  /** Bytes stored; absent for a failed one. */
  size?: number;
  /** Why it failed; absent for a stored one. */
  reason?: string;
  /** When this record was written, ms since the epoch: retention counts from it. */
  storedAt: number;
}

/** The stored bytes of a media id. */
export interface StoredMedia {
  record: MediaRecord;
  /** The bytes, read as they are consumed; cancel it when not read to the end. */
  body: ReadableStream<Uint8Array>;
  /** The record's MIME type, for `Content-Type`. */
  contentType: string;
  /** The number of bytes `body` holds, for `Content-Length`. */
  size: number;
}

/** What {@linkcode MediaStore.put} keeps beside the bytes. */
export interface PutMediaOptions {
  eventId: string;
  mimeType: string;
  sha256?: string;
  /** When it is stored, ms since the epoch. */
  now: number;
}

/** What {@linkcode MediaStore.fail} keeps about media that could not be stored. */
export interface FailMediaOptions extends PutMediaOptions {
  /** Why, for the operator: sentence case, values quoted. */
  reason: string;
}

/** Where captured media live; see the module doc. */
export interface MediaStore {
  /** A name for log lines (`"directory"`, `"Deno KV"`). */
  readonly name: string;
  /**
   * Stores the bytes of `body` as media `id`, replacing what was there, and returns the stored
   * record. The bytes are named `id` only once `body` ended without error; if it fails, the error
   * is rethrown and the earlier state (or none) stays.
   *
   * @throws {InvalidMediaIdError} for an id that is not a media id
   */
  put(id: string, body: ReadableStream<Uint8Array>, options: PutMediaOptions): Promise<MediaRecord>;
  /** Records that media `id` could not be stored, and why; bytes stored earlier are removed. */
  fail(id: string, options: FailMediaOptions): Promise<MediaRecord>;
  /** The record of media `id`, stored or failed; `null` when unknown (or not a media id). */
  getRecord(id: string): Promise<MediaRecord | null>;
  /** The bytes of media `id`; `null` unless its record says `stored`. */
  get(id: string): Promise<StoredMedia | null>;
  /**
   * Removes the media whose records were written before `before` (ms since the epoch), bytes and
   * record, at most `limit`; returns how many.
   */
  purge(before: number, limit: number): Promise<number>;
}

/**
 * Meta's media ids are digits; letters, `_` and `-` are allowed too. Anything else (a path, a
 * dot) is refused: the directory store names files by the id.
 */
const MEDIA_ID_PATTERN = /^[0-9A-Za-z_-]{1,128}$/;

/** Whether `id` can name media: 1 to 128 letters, digits, `_` or `-`. */
export function isMediaId(id: string): boolean {
  return MEDIA_ID_PATTERN.test(id);
}

/** Raised for an id that cannot name media; the message quotes it, clipped. */
export class InvalidMediaIdError extends Error {
  override readonly name = "InvalidMediaIdError";
  /** Builds the error for `id`. */
  constructor(id: string) {
    super(
      `Cannot store media "${id.slice(0, 64)}": a media id is 1 to 128 letters, digits, "_" or "-"`,
    );
  }
}

/** Throws {@linkcode InvalidMediaIdError} unless `id` is a media id. */
export function assertMediaId(id: string): void {
  if (!isMediaId(id)) throw new InvalidMediaIdError(id);
}

/** The record of media `id` stored with `size` bytes. */
export function storedRecord(id: string, size: number, options: PutMediaOptions): MediaRecord {
  return {
    id,
    eventId: options.eventId,
    mimeType: options.mimeType,
    ...(options.sha256 === undefined ? {} : { sha256: options.sha256 }),
    state: "stored",
    size,
    storedAt: options.now,
  };
}

/** The record of media `id` that could not be stored. */
export function failedRecord(id: string, options: FailMediaOptions): MediaRecord {
  return {
    id,
    eventId: options.eventId,
    mimeType: options.mimeType,
    ...(options.sha256 === undefined ? {} : { sha256: options.sha256 }),
    state: "failed",
    reason: options.reason,
    storedAt: options.now,
  };
}
