/**
 * A fake Graph API for tests: a real HTTP server on 127.0.0.1 that answers
 * `POST /{version}/{phoneNumberId}/messages` the way Meta does. It checks the bearer token (190,
 * HTTP 401), the path and the body shape (100, HTTP 400), answers Meta's success shapes, records
 * every request, and can be scripted to answer the next requests with Meta's errors (130429,
 * 131056, 131047, …), `Retry-After`, bare 5xx or slow answers, or told to accept every request at
 * once but answer it late (a slow Graph API that still sends every message it was given).
 *
 * Media too (reference §8.6): `GET /{version}/{media-id}` answers Meta's `{url, mime_type, sha256,
 * file_size, id}` for media added with {@linkcode FakeGraphApi.addMedia}, with a URL on the fake
 * itself that serves the bytes only with the same bearer token and can be made to expire
 * ({@linkcode FakeMedia.expiredUrls}, {@linkcode FakeGraphApi.expireMediaUrls}); bytes can be
 * generated on the fly ({@linkcode generatedMedia}), so a 100 MB body is never held.
 *
 * {@linkcode startDroppingGraphApi} is the other misbehaviour: a server that reads each request
 * whole and closes the connection without a word (a reset after the request was written).
 *
 * @module
 */
import { answerDoctorRequest, type FakeDoctorAccount } from "./fake_graph_doctor.ts";

/** The token the fake accepts unless told otherwise. */
export const FAKE_TOKEN = "fake-graph-token";

/** How long {@linkcode FakeGraphApi.waitForRequests} waits before failing the test, in real ms. */
const WAIT_FOR_REQUESTS_MS = 5_000;

/** Message types the fake accepts, each with an object of the same name. */
const MESSAGE_TYPES = new Set([
  "text",
  "image",
  "audio",
  "video",
  "document",
  "sticker",
  "reaction",
  "location",
  "contacts",
  "interactive",
  "template",
]);

/** Meta's limit on `text.body`. */
const MAX_TEXT_BODY_CHARS = 4096;

/** A business-scoped user id, as Meta formats it. */
const BSUID_PATTERN = /^[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}$/;

/** Meta's HTTP status for the codes that are not answered with 400 (reference §9.2). */
const HTTP_STATUS_BY_CODE: ReadonlyMap<number, number> = new Map([
  [0, 401],
  [190, 401],
  [10, 403],
  [368, 403],
  [130497, 403],
  [131005, 403],
  [131031, 403],
  [3, 500],
  [131000, 500],
  [131016, 500],
  [131045, 500],
  [131057, 500],
  [133000, 500],
  [2, 503],
  [133004, 503],
]);

/** Meta's messages for the codes tests use most. */
const MESSAGE_BY_CODE: ReadonlyMap<number, string> = new Map([
  [100, "(#100) Invalid parameter"],
  [190, "Error validating access token: Session has expired"],
  [130429, "(#130429) Rate limit hit"],
  [131026, "(#131026) Message Undeliverable"],
  [131047, "(#131047) Re-engagement message"],
  [131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit"],
]);

/** A scripted Meta error answer; `status` defaults to Meta's status for the code. */
export interface FakeErrorAnswer {
  error: number;
  status?: number;
  subcode?: number;
  message?: string;
  details?: string;
  /** Sent as the `Retry-After` header. */
  retryAfter?: string;
}

/** A scripted raw answer, e.g. a bare 502 from a gateway. */
export interface FakeRawAnswer {
  status: number;
  body?: string;
  headers?: Record<string, string>;
}

/**
 * A scripted slow answer: waits `delayMs` of real time (`Infinity`: until the fake closes), then
 * answers `then` or, by default, as Meta would.
 */
export interface FakeSlowAnswer {
  delayMs: number;
  then?: FakeErrorAnswer | FakeRawAnswer;
}

/** What the fake answers to one upcoming request, instead of its normal answer. */
export type FakeAnswer = FakeErrorAnswer | FakeRawAnswer | FakeSlowAnswer;

/** A request as the fake received it. */
export interface RecordedRequest {
  method: string;
  /** The URL path, e.g. `/v26.0/1234/messages`. */
  path: string;
  /** Every header, names in lower case. */
  headers: Record<string, string>;
  /** The parsed JSON body, or the raw text when it was not JSON. */
  body: unknown;
}

/** Media the fake serves. */
export interface FakeMedia {
  mimeType: string;
  /** The bytes; or leave them out and give `size`. */
  bytes?: Uint8Array;
  /** Serve {@linkcode generatedMedia} of this many bytes, made while sent, never held whole. */
  size?: number;
  /** The `sha256` the media endpoint answers; the bytes' own (hex) by default. */
  sha256?: string;
  /** The first this many URLs issued for it have expired by the time they are fetched. */
  expiredUrls?: number;
}

/** Where the fake's download URLs are, like Meta's `lookaside.fbsbx.com` links. */
const MEDIA_DOWNLOAD_PATH = "/whatsapp_business/attachments/";
/** The chunk size of generated media. */
const GENERATED_CHUNK_BYTES = 64 * 1024;

/** `size` bytes of a fixed pattern, made one 64 KiB chunk at a time as they are read. */
export function generatedMedia(size: number): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= size) return controller.close();
      const length = Math.min(GENERATED_CHUNK_BYTES, size - offset);
      const chunk = new Uint8Array(length);
      for (let i = 0; i < length; i++) chunk[i] = ((offset + i) * 31 + (offset >> 16)) & 0xff;
      offset += length;
      controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
}

/** The hex SHA-256 of a stream, read chunk by chunk. */
export async function sha256Hex(stream: ReadableStream<Uint8Array>): Promise<string> {
  const { createHash } = await import("node:crypto");
  const hash = createHash("sha256");
  for await (const chunk of stream) hash.update(chunk);
  return hash.digest("hex");
}

/** Options for {@linkcode startFakeGraphApi}. */
export interface FakeGraphApiOptions {
  /** The token accepted for every phone number id; defaults to {@linkcode FAKE_TOKEN}. */
  token?: string;
  /** Tokens that only one phone number id accepts. */
  tokensByPhoneNumberId?: Record<string, string>;
  /** Answers the doctor's reads from this account (`fake_graph_doctor.ts`); changes apply at once. */
  doctor?: FakeDoctorAccount;
}

/** A running fake; close it (or use `await using`) before the test ends. */
export interface FakeGraphApi extends AsyncDisposable {
  /** The base URL to give the client, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Every request received, in order. */
  requests: RecordedRequest[];
  /**
   * The ids of the messages the fake accepted (not read receipts), in order: a message answered
   * late counts from the moment it arrived, as at Meta, which sends it whether or not the caller
   * is still waiting for the answer.
   */
  accepted: string[];
  /** Queues answers for the next requests, one each, before the fake's normal behaviour. */
  script(...answers: FakeAnswer[]): void;
  /**
   * From now on, accepts every unscripted request at once (as Meta would answer it) but sends
   * the answer only after `delayMs` of real time (`Infinity`: when the fake closes); `0` answers
   * at once again.
   */
  answerLate(delayMs: number): void;
  /** Resolves once `count` requests have arrived; fails after 5 s of real time. */
  waitForRequests(count: number): Promise<void>;
  /** Serves media `id` from now on; resolves with the hex SHA-256 of its bytes. */
  addMedia(id: string, media: FakeMedia): Promise<string>;
  /** Expires every download URL issued so far. */
  expireMediaUrls(): void;
  /** Ends slow answers and stops the server. */
  close(): Promise<void>;
}

/** Starts a fake Graph API on 127.0.0.1 with a free port. */
export function startFakeGraphApi(options: FakeGraphApiOptions = {}): FakeGraphApi {
  const token = options.token ?? FAKE_TOKEN;
  const requests: RecordedRequest[] = [];
  const scripted: FakeAnswer[] = [];
  const waiters = new Set<() => void>();
  const closing = new AbortController();
  const accepted: string[] = [];
  let lateAnswerMs = 0;
  const media = new Map<string, FakeMedia & { sha256Hex: string; issued: number }>();
  /** Download URLs issued, by their `hash` parameter: the media and the token that got it. */
  const issuedUrls = new Map<string, { id: string; token: string; isExpired: boolean }>();

  async function handle(request: Request): Promise<Response> {
    const text = await request.text();
    const body = _parseJson(text) ?? text;
    const path = new URL(request.url).pathname;
    requests.push({
      method: request.method,
      path,
      headers: Object.fromEntries(request.headers),
      body,
    });
    for (const wake of waiters) wake();

    const answer = scripted.shift();
    if (answer && "delayMs" in answer) {
      await _delay(answer.delayMs, closing.signal);
      if (answer.then) return _answer(answer.then);
      return answerDoctor(request) ?? answerMedia(request) ?? answerAsMeta(request, path, body);
    }
    if (answer) return _answer(answer);
    const response = answerDoctor(request) ?? answerMedia(request) ??
      answerAsMeta(request, path, body);
    if (lateAnswerMs > 0) await _delay(lateAnswerMs, closing.signal);
    return response;
  }

  /** The doctor's reads (`fake_graph_doctor.ts`); `undefined` for any other request. */
  function answerDoctor(request: Request): Response | undefined {
    return (options.doctor && answerDoctorRequest(options.doctor, request, token)) || undefined;
  }

  function answerAsMeta(request: Request, path: string, body: unknown): Response {
    const match = /^\/(v\d+\.\d+)\/([^/]+)\/messages$/.exec(path);
    if (!match) return _metaError({ error: 100, message: "Unknown path components" });
    const phoneNumberId = match[2]!;
    const expected = options.tokensByPhoneNumberId?.[phoneNumberId] ?? token;
    if (request.headers.get("authorization") !== `Bearer ${expected}`) {
      return _metaError({ error: 190, message: "Invalid OAuth access token" });
    }
    if (request.method !== "POST") {
      return _metaError({ error: 100, message: `Unsupported ${request.method} request` });
    }
    const problem = _problemWith(body);
    if (problem) return _metaError({ error: 100, details: problem });
    const message = body as Record<string, unknown>;
    if (message.status === "read") return Response.json({ success: true });
    const id = `wamid.FAKE${String(accepted.length + 1).padStart(6, "0")}`;
    accepted.push(id);
    const input = String(message.to ?? message.recipient);
    return Response.json({
      messaging_product: "whatsapp",
      contacts: [message.to === undefined ? { input, user_id: input } : { input, wa_id: input }],
      messages: [{ id }],
    });
  }

  /** The media endpoint and the download URLs; `undefined` for any other request. */
  function answerMedia(request: Request): Response | undefined {
    const url = new URL(request.url);
    const authorization = request.headers.get("authorization") ?? "";
    if (url.pathname === MEDIA_DOWNLOAD_PATH) {
      const issued = issuedUrls.get(url.searchParams.get("hash") ?? "");
      const served = issued && media.get(issued.id);
      if (!issued || !served || issued.isExpired) {
        return new Response("URL signature expired", { status: 404 });
      }
      if (authorization !== `Bearer ${issued.token}`) {
        return _metaError({ error: 190, message: "Invalid OAuth access token" });
      }
      const body = served.bytes ? served.bytes.slice() : generatedMedia(served.size ?? 0);
      const size = served.bytes?.byteLength ?? served.size ?? 0;
      return new Response(body, {
        headers: { "Content-Type": served.mimeType, "Content-Length": String(size) },
      });
    }
    const match = /^\/v\d+\.\d+\/([^/]+)$/.exec(url.pathname);
    if (request.method !== "GET" || !match) return undefined;
    const phoneNumberId = url.searchParams.get("phone_number_id") ?? "";
    const expected = options.tokensByPhoneNumberId?.[phoneNumberId] ?? token;
    if (authorization !== `Bearer ${expected}`) {
      return _metaError({ error: 190, message: "Invalid OAuth access token" });
    }
    const id = decodeURIComponent(match[1]!);
    const served = media.get(id);
    if (!served) return _metaError({ error: 100, details: "Unsupported get request" });
    const hash = crypto.randomUUID();
    issuedUrls.set(hash, {
      id,
      token: expected,
      isExpired: served.issued++ < (served.expiredUrls ?? 0),
    });
    return Response.json({
      messaging_product: "whatsapp",
      url: `${url.origin}${MEDIA_DOWNLOAD_PATH}?mid=${encodeURIComponent(id)}&hash=${hash}`,
      mime_type: served.mimeType,
      sha256: served.sha256 ?? served.sha256Hex,
      file_size: served.bytes?.byteLength ?? served.size ?? 0,
      id,
    });
  }

  async function addMedia(id: string, served: FakeMedia): Promise<string> {
    const hex = await sha256Hex(
      served.bytes ? new Blob([served.bytes.slice()]).stream() : generatedMedia(served.size ?? 0),
    );
    media.set(id, { ...served, sha256Hex: hex, issued: 0 });
    return hex;
  }

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handle);

  async function close(): Promise<void> {
    closing.abort();
    await server.shutdown();
  }

  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    accepted,
    script: (...answers) => void scripted.push(...answers),
    answerLate: (delayMs) => void (lateAnswerMs = delayMs),
    waitForRequests: (count) => _waitUntil(() => requests.length >= count, waiters),
    addMedia,
    expireMediaUrls: () => issuedUrls.forEach((issued) => void (issued.isExpired = true)),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A running {@linkcode startDroppingGraphApi}; close it before the test ends. */
export interface DroppingGraphApi extends AsyncDisposable {
  /** The base URL to give the client. */
  url: string;
  /** Every request read whole before its connection was closed, in order. */
  requests: RecordedRequest[];
  /**
   * The messages (not read receipts) among them: each counts as accepted, since a reset after the
   * request was written cannot tell the caller whether Meta took it.
   */
  accepted: string[];
  /** Resolves once `count` requests have been read; fails after 5 s of real time. */
  waitForRequests(count: number): Promise<void>;
  /** Stops listening and closes the connections still open. */
  close(): Promise<void>;
}

/**
 * Starts a server on 127.0.0.1 that reads each HTTP request whole (headers, then
 * `Content-Length` bytes of body), records it, and closes the connection without answering: the
 * client sees its connection lost after writing the request.
 */
export function startDroppingGraphApi(): DroppingGraphApi {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const requests: RecordedRequest[] = [];
  const accepted: string[] = [];
  const waiters = new Set<() => void>();
  const open = new Set<Deno.Conn>();

  async function drop(conn: Deno.Conn): Promise<void> {
    open.add(conn);
    try {
      const request = await _readRequest(conn);
      if (request) {
        requests.push(request);
        const body = request.body as Record<string, unknown> | undefined;
        if (body?.status !== "read") accepted.push(`wamid.DROPPED${accepted.length + 1}`);
        for (const wake of waiters) wake();
      }
    } catch {
      // The client gave up first: nothing to record.
    } finally {
      open.delete(conn);
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }

  const serving = (async () => {
    try {
      for await (const conn of listener) void drop(conn);
    } catch {
      // The listener was closed.
    }
  })();

  async function close(): Promise<void> {
    listener.close();
    for (const conn of open) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    await serving;
  }

  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    requests,
    accepted,
    waitForRequests: (count) => _waitUntil(() => requests.length >= count, waiters),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Reads one HTTP/1.1 request with a `Content-Length` body; `undefined` if the peer closed first. */
async function _readRequest(conn: Deno.Conn): Promise<RecordedRequest | undefined> {
  const decoder = new TextDecoder();
  let bytes = new Uint8Array(0);
  const chunk = new Uint8Array(16 * 1024);
  for (;;) {
    const text = decoder.decode(bytes);
    const headerEnd = text.indexOf("\r\n\r\n");
    if (headerEnd >= 0) {
      const [requestLine = "", ...headerLines] = text.slice(0, headerEnd).split("\r\n");
      const headers = Object.fromEntries(headerLines.map((line) => {
        const colon = line.indexOf(":");
        return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
      }));
      const length = Number(headers["content-length"] ?? 0);
      const headerBytes = new TextEncoder().encode(text.slice(0, headerEnd + 4)).length;
      if (bytes.length >= headerBytes + length) {
        const bodyText = decoder.decode(bytes.slice(headerBytes, headerBytes + length));
        const [method = "", path = ""] = requestLine.split(" ");
        return { method, path, headers, body: _parseJson(bodyText) ?? bodyText };
      }
    }
    const read = await conn.read(chunk);
    if (read === null) return undefined;
    const joined = new Uint8Array(bytes.length + read);
    joined.set(bytes);
    joined.set(chunk.subarray(0, read), bytes.length);
    bytes = joined;
  }
}

/** Why Meta would refuse this body with error 100, or `undefined` if it would accept it. */
function _problemWith(body: unknown): string | undefined {
  if (typeof body !== "object" || body === null) return "The request body must be a JSON object";
  const message = body as Record<string, unknown>;
  if (message.messaging_product !== "whatsapp") {
    return 'The parameter messaging_product must be "whatsapp"';
  }
  if (message.status !== undefined) {
    if (message.status !== "read") return 'The parameter status must be "read"';
    if (typeof message.message_id !== "string") return "The parameter message_id is required";
    const indicator = message.typing_indicator as { type?: unknown } | undefined;
    if (indicator !== undefined && indicator?.type !== "text") {
      return 'The parameter typing_indicator.type must be "text"';
    }
    return undefined;
  }
  const hasTo = typeof message.to === "string" && message.to !== "";
  const hasRecipient = typeof message.recipient === "string";
  if (hasTo === hasRecipient) return "Exactly one of the parameters to and recipient is required";
  if (hasRecipient && !BSUID_PATTERN.test(message.recipient as string)) {
    return "The parameter recipient must be a business-scoped user id";
  }
  const type = message.type;
  if (typeof type !== "string" || !MESSAGE_TYPES.has(type)) return "Unsupported message type";
  const content = message[type];
  if (typeof content !== "object" || content === null) return `The parameter ${type} is required`;
  if (type === "text") {
    const text = (content as { body?: unknown }).body;
    if (typeof text !== "string" || text === "") return "The parameter text.body is required";
    if ([...text].length > MAX_TEXT_BODY_CHARS) return "The parameter text.body is too long";
  }
  return undefined;
}

function _answer(answer: FakeErrorAnswer | FakeRawAnswer): Response {
  if ("error" in answer) return _metaError(answer);
  return new Response(answer.body ?? null, {
    status: answer.status,
    ...(answer.headers ? { headers: answer.headers } : {}),
  });
}

/** Meta's error body and status for a code. */
function _metaError(answer: FakeErrorAnswer): Response {
  const code = answer.error;
  const status = answer.status ?? HTTP_STATUS_BY_CODE.get(code) ?? 400;
  const message = answer.message ?? MESSAGE_BY_CODE.get(code) ?? `(#${code}) Error`;
  const headers: Record<string, string> = answer.retryAfter === undefined
    ? {}
    : { "Retry-After": answer.retryAfter };
  return Response.json({
    error: {
      message,
      type: "OAuthException",
      code,
      ...(answer.subcode === undefined ? {} : { error_subcode: answer.subcode }),
      error_data: { messaging_product: "whatsapp", details: answer.details ?? message },
      fbtrace_id: `Fake${crypto.randomUUID().slice(0, 8)}`,
    },
  }, { status, headers });
}

/** Waits `ms` of real time, or until `signal` aborts (then resolves too). */
function _delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = Number.isFinite(ms) ? setTimeout(done, ms) : undefined;
    signal.addEventListener("abort", done, { once: true });
  });
}

function _waitUntil(isDone: () => boolean, waiters: Set<() => void>): Promise<void> {
  if (isDone()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const wake = (): void => {
      if (!isDone()) return;
      clearTimeout(timer);
      waiters.delete(wake);
      resolve();
    };
    const timer = setTimeout(() => {
      waiters.delete(wake);
      reject(
        new Error(
          `Fake Graph API: expected requests did not arrive within ${WAIT_FOR_REQUESTS_MS} ms`,
        ),
      );
    }, WAIT_FOR_REQUESTS_MS);
    waiters.add(wake);
  });
}

function _parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
