/**
 * The least a durable intake can do, to show in each run how close the targets are to what this
 * machine allows: verify, parse, then one dedup check and one write per event, shared by
 * concurrent requests in commits of at most ten (the service's group committer), then 200. No
 * ready set, no timeline, no worker, no logs or metrics: nothing could ever run what it records.
 * With the KV path `none` it only verifies and parses.
 *
 * Usage: `deno run -A bench/floor_server.ts <port> <kv path | none> <app secret>`.
 *
 * @module
 */
import { parseDelivery, type WebhookEvent } from "../src/events/events.ts";
import { createGroupCommitter } from "../src/store/group_commit.ts";
import { LOCAL_CHECKS_PER_ATOMIC } from "../src/store/kv/location.ts";
import { eventKey } from "../src/store/kv/keys.ts";
import { createSignatureVerifier } from "../src/webhook/signature.ts";

const [port, kvPath, secret] = Deno.args;
const verifier = await createSignatureVerifier([secret ?? ""]);
const kv = kvPath === "none" ? undefined : await Deno.openKv(kvPath);
const EXPIRE_IN_MS = 8 * 86_400_000;

const committer = kv && createGroupCommitter<WebhookEvent, void>({
  maxGroupSize: LOCAL_CHECKS_PER_ATOMIC,
  commit: async (events) => {
    const atomic = kv.atomic();
    for (const event of events) {
      atomic.check({ key: eventKey(event.id), versionstamp: null })
        .set(eventKey(event.id), event, { expireIn: EXPIRE_IN_MS });
    }
    // The bench never repeats an event, so a failed check is a bug here, not a duplicate.
    if (!(await atomic.commit()).ok) throw new Error("a dedup check failed");
    return events.map(() => undefined);
  },
});

Deno.serve({ hostname: "127.0.0.1", port: Number(port), onListen: () => {} }, async (request) => {
  const body = new Uint8Array(await request.arrayBuffer());
  const check = await verifier.verify(request.headers.get("X-Hub-Signature-256"), body);
  if (!check.valid) return new Response(check.reason, { status: 401 });
  const { events } = parseDelivery(JSON.parse(new TextDecoder().decode(body)));
  if (committer) await Promise.all(events.map((event) => committer.submit(event)));
  return new Response("OK");
});
