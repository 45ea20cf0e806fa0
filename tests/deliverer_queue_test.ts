/**
 * The deliverer's claiming ahead, over a real Deno KV store and a consumer on 127.0.0.1: jobs are
 * claimed beyond the free slots and held under their leases; one that waited so long in the queue
 * that its lease would end during its attempt has the lease extended before it is sent.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseDestinations } from "../src/destinations/declarations.ts";
import { createDeliveries } from "../src/destinations/deliveries.ts";
import { ManualClock } from "../src/ops/clock.ts";
import { textsDelivery } from "./deliveries.ts";
import { parseDelivery } from "../src/events/events.ts";
import { captureLogs, kvStore, openTempKv, waitFor } from "./support.ts";

const SECRET = `whsec_${btoa("0123456789abcdef0123456789abcdef")}`;
const TIMEOUT_MS = 60_000;

Deno.test("jobs claimed ahead wait under their leases; one whose lease would end during its attempt is extended first", async () => {
  const requests: string[] = [];
  const releases: (() => void)[] = [];
  await using consumer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const { data } = await req.json() as { data: { id: string } };
      requests.push(data.id);
      await new Promise<void>((resolve) => releases.push(resolve));
      return new Response(null, { status: 204 });
    },
  );
  await using temp = await openTempKv();
  const store = kvStore(temp.kv);
  const clock = new ManualClock();
  const start = clock.now();
  const { events } = parseDelivery(JSON.parse(textsDelivery(["wamid.Q1", "wamid.Q2", "wamid.Q3"])));
  await store.recordEvents(events, { now: start, destinationsFor: () => ["slow"] });
  const destinations = parseDestinations(
    JSON.stringify([{
      name: "slow",
      url: `http://127.0.0.1:${consumer.addr.port}/`,
      secrets: [SECRET],
      concurrency: 1,
      timeoutMs: TIMEOUT_MS,
    }]),
    "DESTINATIONS",
  );
  const deliveries = createDeliveries({
    destinations,
    store,
    clock,
    logger: captureLogs().logger,
    retry: { maxAttempts: 3, baseDelayMs: 1_000, maxDelayMs: 60_000 },
    leaseMs: 15_000,
  });
  // Disposed before the consumer, whose shutdown waits for its handlers.
  await using _stop = {
    [Symbol.asyncDispose]: async () => {
      releases.forEach((release) => release());
      await deliveries.stop(1_000);
    },
  };
  deliveries.start();
  await waitFor(() => requests.length === 1, "the first request in flight");
  const jobsOf = async () =>
    await Promise.all(events.map(async (e) => (await store.getJobs(e.id))[0]!));
  const held = await jobsOf();
  assert.deepEqual(
    held.map((job) => job.state),
    ["delivering", "delivering", "delivering"],
    "claimed ahead of the one slot",
  );
  const claimedUntil = held[1]!.dueAt!;

  // The first attempt takes long on the deliverer's clock: the second's lease would end mid-attempt.
  await clock.advance(claimedUntil - start - TIMEOUT_MS + 500);
  releases.shift()!();
  await waitFor(() => requests.length === 2, "the second request in flight");
  const second = (await store.getJobs(events[1]!.id))[0]!;
  assert.equal(second.state, "delivering");
  assert.ok(
    second.dueAt! >= clock.now() + TIMEOUT_MS,
    `its lease covers the attempt: ${second.dueAt! - clock.now()} ms left, timeout ${TIMEOUT_MS}`,
  );
  assert.equal((await store.getJobs(events[0]!.id))[0]!.state, "delivered");
});
