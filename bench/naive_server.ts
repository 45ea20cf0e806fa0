/**
 * The naive durable design the group commit is measured against: verify, parse, then one Deno KV
 * commit per request (the events of that request only), then 200; with the same worker and no-op
 * handler in the process as the service, so only the recording differs.
 * Usage: `deno run -A bench/naive_server.ts <port> <kv path> <app secret>`.
 *
 * @module
 */
import { systemClock } from "../src/ops/clock.ts";
import { Dispatcher } from "../src/dispatch/dispatcher.ts";
import { createWorker } from "../src/dispatch/worker.ts";
import { parseDelivery, type WebhookEvent } from "../src/events/events.ts";
import { createLogger } from "../src/ops/log.ts";
import { writeParts } from "../src/store/kv/parts.ts";
import { commitGroup, groupForCommit, prepareEvent } from "../src/store/kv/record.ts";
import { createKvStore } from "../src/store/kv/store.ts";
import { createSignatureVerifier } from "../src/webhook/signature.ts";

const [port, kvPath, secret] = Deno.args;
const kv = await Deno.openKv(kvPath);
const verifier = await createSignatureVerifier([secret ?? ""]);
const DAY_MS = 86_400_000;
/** The service's default retention. */
const RETENTION = { dedupTtlMs: 8 * DAY_MS, retentionMs: 7 * DAY_MS };
const logger = createLogger({ level: "warn" });
const worker = createWorker({
  // The service's default lease.
  store: createKvStore(kv, { ...RETENTION, leaseMs: 15_000, logger }),
  dispatcher: new Dispatcher().on("message", () => {}),
  logger,
  clock: systemClock,
});
worker.start();

Deno.serve({ hostname: "127.0.0.1", port: Number(port), onListen: () => {} }, async (request) => {
  const body = new Uint8Array(await request.arrayBuffer());
  const check = await verifier.verify(request.headers.get("X-Hub-Signature-256"), body);
  if (!check.valid) return new Response(check.reason, { status: 401 });
  const { events } = parseDelivery(JSON.parse(new TextDecoder().decode(body)));
  const now = Date.now();
  await recordAlone(events, now);
  worker.wake();
  return new Response("OK");
});

/**
 * Records one request's events in commits of their own (ten events each at most), never shared
 * with another request's as the store's group commit does: the naive design.
 */
async function recordAlone(events: readonly WebhookEvent[], now: number): Promise<void> {
  const prepared = events.map((event) => prepareEvent(event, { ...RETENTION, now }));
  await Promise.all(prepared.map((event) => writeParts(kv, event)));
  await Promise.all(groupForCommit(prepared).map((group) => commitGroup(kv, group)));
}
