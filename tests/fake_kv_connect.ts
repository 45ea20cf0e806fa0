/**
 * A fake KV Connect server on 127.0.0.1, for tests: what a self-hosted `denokv` server or a Deno
 * Deploy database answers to `Deno.openKv("http://…")`, over an in-memory ordered map.
 *
 * It speaks the protocol of `denoland/denokv` (`proto/kv-connect.md`): the JSON metadata exchange
 * (checking `Authorization: Bearer <access token>`, answering protocol version 2), then the data
 * path, protobuf `SnapshotRead` and `AtomicWrite` (`proto/schema/datapath.proto`) with checks,
 * set, delete, sum, min, max and expiry, and `denokv`'s limits (10 checks and 1000 mutations per
 * atomic, 10 ranges per read). No watch and no queues: the service uses neither.
 *
 * @module
 */

/** `denokv`'s limits (`proto/limits.rs`), enforced so code that breaks them fails here too. */
const MAX_CHECKS = 10;
const MAX_MUTATIONS = 1_000;
const MAX_READ_RANGES = 10;
const MAX_READ_ENTRIES = 1_000;
const MAX_TOTAL_MUTATION_BYTES = 819_200;

/** `MutationType` of `datapath.proto`. */
const M_SET = 1, M_DELETE = 2, M_SUM = 3, M_MAX = 4, M_MIN = 5;
/** `ValueEncoding.VE_LE64`: a little-endian u64, the only encoding sum, min and max accept. */
const VE_LE64 = 2;
/** `AtomicWriteStatus` and `SnapshotReadStatus` values. */
const AW_SUCCESS = 1, AW_CHECK_FAILURE = 2, SR_SUCCESS = 1;

/** A running fake; dispose it to stop it. */
export interface FakeKvConnect extends AsyncDisposable {
  /** The URL to put in `KV_PATH`. */
  url: string;
  /** The bearer token of each metadata exchange, in order. */
  metadataTokens: string[];
  /** Data path requests served, by path (`/v2/snapshot_read`, `/v2/atomic_write`). */
  requests: Map<string, number>;
  /** How many live (unexpired) entries the database holds. */
  size(): number;
}

interface StoredEntry {
  key: Uint8Array;
  value: Uint8Array;
  encoding: number;
  versionstamp: Uint8Array;
  /** Milliseconds since the epoch; 0 never expires. */
  expireAtMs: number;
}

/** Starts a fake KV Connect server that accepts `accessToken`. */
export function startFakeKvConnect(accessToken: string): FakeKvConnect {
  const databaseId = crypto.randomUUID();
  const dataToken = crypto.randomUUID();
  const entries = new Map<string, StoredEntry>();
  const metadataTokens: string[] = [];
  const requests = new Map<string, number>();
  let version = 0n;

  const isLive = (entry: StoredEntry, now: number): boolean =>
    entry.expireAtMs === 0 || entry.expireAtMs > now;

  function snapshotRead(body: Uint8Array): Uint8Array<ArrayBuffer> {
    const ranges = _fields(body).filter((f) => f.field === 1).map((f) => _readRange(f.bytes!));
    if (ranges.length > MAX_READ_RANGES) throw new _BadRequest("too many ranges");
    const now = Date.now();
    const sorted = [...entries.entries()].filter(([, e]) => isLive(e, now)).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0
    );
    const output = new _Writer();
    for (const range of ranges) {
      const start = _hex(range.start), end = _hex(range.end);
      let found = sorted.filter(([hex]) => hex >= start && hex < end).map(([, e]) => e);
      if (range.reverse) found = found.reverse();
      const limit = Math.min(range.limit > 0 ? range.limit : MAX_READ_ENTRIES, MAX_READ_ENTRIES);
      const values = new _Writer();
      for (const entry of found.slice(0, limit)) {
        values.message(
          1,
          new _Writer().bytes(1, entry.key).bytes(2, entry.value).uint(3, entry.encoding)
            .bytes(4, entry.versionstamp),
        );
      }
      output.message(1, values);
    }
    return output.uint(4, 1).uint(8, SR_SUCCESS).finish();
  }

  function atomicWrite(body: Uint8Array): Uint8Array<ArrayBuffer> {
    const fields = _fields(body);
    if (fields.some((f) => f.field === 3)) throw new _BadRequest("queues are not supported");
    const checks = fields.filter((f) => f.field === 1).map((f) => _check(f.bytes!));
    const mutations = fields.filter((f) => f.field === 2).map((f) => _mutation(f.bytes!));
    if (checks.length > MAX_CHECKS) throw new _BadRequest("too many checks");
    if (mutations.length > MAX_MUTATIONS) throw new _BadRequest("too many mutations");
    const bytes = mutations.reduce((sum, m) => sum + m.key.length + m.value.length, 0);
    if (bytes > MAX_TOTAL_MUTATION_BYTES) throw new _BadRequest("total mutation size too large");
    const now = Date.now();
    const failed = checks.flatMap((check, index) => {
      const current = entries.get(_hex(check.key));
      const actual = current && isLive(current, now) ? _hex(current.versionstamp) : "";
      return actual === _hex(check.versionstamp) ? [] : [index];
    });
    if (failed.length > 0) {
      const output = new _Writer().uint(1, AW_CHECK_FAILURE);
      for (const index of failed) output.uint(4, index);
      return output.finish();
    }
    version++;
    const versionstamp = new Uint8Array(10);
    new DataView(versionstamp.buffer).setBigUint64(0, version);
    const before = new Map(entries); // an atomic applies all of its mutations or none
    try {
      for (const m of mutations) applyMutation(m, versionstamp, now);
    } catch (error) {
      entries.clear();
      for (const [hex, entry] of before) entries.set(hex, entry);
      throw error;
    }
    return new _Writer().uint(1, AW_SUCCESS).bytes(2, versionstamp).finish();
  }

  function applyMutation(m: _Mutation, versionstamp: Uint8Array, now: number): void {
    const hex = _hex(m.key);
    if (m.type === M_DELETE) {
      entries.delete(hex);
      return;
    }
    const encoding = m.encoding;
    let value = m.value;
    if (m.type === M_SUM || m.type === M_MIN || m.type === M_MAX) {
      if (encoding !== VE_LE64) throw new _BadRequest("sum, min and max need a u64 value");
      const current = entries.get(hex);
      if (current && isLive(current, now)) {
        if (current.encoding !== VE_LE64) throw new _BadRequest("the stored value is not a u64");
        const [a, b] = [_u64(current.value), _u64(m.value)];
        const result = m.type === M_SUM
          ? BigInt.asUintN(64, a + b)
          : m.type === M_MIN
          ? (a < b ? a : b)
          : (a > b ? a : b);
        value = new Uint8Array(8);
        new DataView(value.buffer).setBigUint64(0, result, true);
      }
    } else if (m.type !== M_SET) {
      throw new _BadRequest(`mutation type ${m.type} is not supported`);
    }
    entries.set(hex, { key: m.key, value, encoding, versionstamp, expireAtMs: m.expireAtMs });
  }

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    const authorization = req.headers.get("Authorization") ?? "";
    if (req.method !== "POST") return new Response("Method not allowed", { status: 405 });
    if (path === "/") {
      metadataTokens.push(authorization.replace(/^Bearer /, ""));
      await req.body?.cancel();
      if (authorization !== `Bearer ${accessToken}`) {
        return new Response("Invalid access token", { status: 401 });
      }
      return Response.json({
        version: 2,
        databaseId,
        endpoints: [{ url: "/v2", consistency: "strong" }],
        token: dataToken,
        expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      });
    }
    const body = new Uint8Array(await req.arrayBuffer());
    if (authorization !== `Bearer ${dataToken}`) return new Response("Bad token", { status: 401 });
    if (req.headers.get("x-denokv-database-id") !== databaseId) {
      return new Response("Unknown database", { status: 400 });
    }
    requests.set(path, (requests.get(path) ?? 0) + 1);
    try {
      const output = path === "/v2/snapshot_read"
        ? snapshotRead(body)
        : path === "/v2/atomic_write"
        ? atomicWrite(body)
        : undefined;
      if (!output) return new Response("Not found", { status: 404 });
      return new Response(output, { headers: { "Content-Type": "application/x-protobuf" } });
    } catch (error) {
      if (error instanceof _BadRequest) return new Response(error.message, { status: 400 });
      throw error;
    }
  });

  return {
    url: `http://127.0.0.1:${server.addr.port}/`,
    metadataTokens,
    requests,
    size: () => [...entries.values()].filter((e) => isLive(e, Date.now())).length,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

class _BadRequest extends Error {}

interface _Field {
  field: number;
  /** Varint fields. */
  number?: bigint;
  /** Length-delimited fields. */
  bytes?: Uint8Array;
}

/** Splits a protobuf message into its fields (varints and length-delimited; fixed ones skipped). */
function _fields(message: Uint8Array): _Field[] {
  const fields: _Field[] = [];
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n, shift = 0n;
    for (;;) {
      const byte = message[pos++];
      if (byte === undefined) throw new _BadRequest("truncated varint");
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (pos < message.length) {
    const tag = Number(varint());
    const field = tag >>> 3, wire = tag & 7;
    if (wire === 0) fields.push({ field, number: varint() });
    else if (wire === 2) {
      const length = Number(varint());
      fields.push({ field, bytes: message.subarray(pos, pos + length) });
      pos += length;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else throw new _BadRequest(`unsupported wire type ${wire}`);
  }
  return fields;
}

function _get(fields: _Field[], field: number): _Field | undefined {
  return fields.find((f) => f.field === field);
}

function _readRange(message: Uint8Array) {
  const f = _fields(message);
  return {
    start: _get(f, 1)?.bytes ?? new Uint8Array(),
    end: _get(f, 2)?.bytes ?? new Uint8Array(),
    limit: Number(BigInt.asIntN(32, _get(f, 3)?.number ?? 0n)),
    reverse: (_get(f, 4)?.number ?? 0n) !== 0n,
  };
}

function _check(message: Uint8Array) {
  const f = _fields(message);
  return {
    key: _get(f, 1)?.bytes ?? new Uint8Array(),
    versionstamp: _get(f, 2)?.bytes ?? new Uint8Array(),
  };
}

interface _Mutation {
  key: Uint8Array;
  value: Uint8Array;
  encoding: number;
  type: number;
  expireAtMs: number;
}

function _mutation(message: Uint8Array): _Mutation {
  const f = _fields(message);
  const value = _fields(_get(f, 2)?.bytes ?? new Uint8Array());
  return {
    key: (_get(f, 1)?.bytes ?? new Uint8Array()).slice(),
    value: (_get(value, 1)?.bytes ?? new Uint8Array()).slice(),
    encoding: Number(_get(value, 2)?.number ?? 0n),
    type: Number(_get(f, 3)?.number ?? 0n),
    expireAtMs: Number(BigInt.asIntN(64, _get(f, 4)?.number ?? 0n)),
  };
}

/** Hex of bytes: its string order is the bytes' order, which is Deno KV's key order. */
function _hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function _u64(bytes: Uint8Array): bigint {
  if (bytes.length !== 8) throw new _BadRequest("a u64 value has 8 bytes");
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
}

/** Writes a protobuf message. */
class _Writer {
  #bytes: number[] = [];

  #varint(value: bigint | number): void {
    let n = BigInt.asUintN(64, BigInt(value));
    while (n >= 0x80n) {
      this.#bytes.push(Number(n & 0x7fn) | 0x80);
      n >>= 7n;
    }
    this.#bytes.push(Number(n));
  }

  uint(field: number, value: number | bigint): this {
    this.#varint((field << 3) | 0);
    this.#varint(value);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.#varint((field << 3) | 2);
    this.#varint(value.length);
    for (const byte of value) this.#bytes.push(byte);
    return this;
  }

  message(field: number, value: _Writer): this {
    return this.bytes(field, value.finish());
  }

  finish(): Uint8Array<ArrayBuffer> {
    return new Uint8Array(this.#bytes);
  }
}
