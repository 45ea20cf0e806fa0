/**
 * How many jobs a deliverer holds ahead of its slots (`hold.ts`): what the slots send in
 * `HOLD_MS` at the recent pace, at least `CLAIM_AHEAD` rounds, at most `MAX_HELD`. Over a real
 * Deno KV store and a consumer on 127.0.0.1, a consumer answering at once gets more than
 * `CLAIM_AHEAD` rounds held; a slow one never more.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseDestinations } from "../src/destinations/declarations.ts";
import { CLAIM_AHEAD, HOLD_MS, jobsToHold, MAX_HELD, nextPace } from "../src/destinations/hold.ts";
import { createDeliveries } from "../src/destinations/deliveries.ts";
import { parseDelivery } from "../src/events/events.ts";
import { ManualClock } from "../src/ops/clock.ts";
import type { Store } from "../src/store/store.ts";
import { textsDelivery } from "./deliveries.ts";
import { captureLogs, kvStore, openTempKv, waitFor } from "./support.ts";

const SECRET = `whsec_${btoa("0123456789abcdef0123456789abcdef")}`;

Deno.test("jobsToHold() is CLAIM_AHEAD rounds until the pace is known and for slow attempts, HOLD_MS of attempts for fast ones, at most MAX_HELD", () => {
  const cases: { concurrency: number; attemptMs: number | undefined; held: number }[] = [
    { concurrency: 4, attemptMs: undefined, held: 4 * CLAIM_AHEAD },
    { concurrency: 4, attemptMs: 2_000, held: 4 * CLAIM_AHEAD },
    { concurrency: 4, attemptMs: HOLD_MS, held: 4 * CLAIM_AHEAD },
    { concurrency: 4, attemptMs: 4, held: 4 * (HOLD_MS / 4) },
    { concurrency: 16, attemptMs: 8, held: 16 * (HOLD_MS / 8) },
    { concurrency: 16, attemptMs: 1, held: MAX_HELD },
    { concurrency: 4, attemptMs: 0, held: MAX_HELD },
    // More slots than MAX_HELD allows for still get their CLAIM_AHEAD rounds.
    { concurrency: 128, attemptMs: 1, held: 128 * CLAIM_AHEAD },
  ];
  for (const { concurrency, attemptMs, held } of cases) {
    assert.equal(jobsToHold(concurrency, attemptMs), held, `${concurrency} slots, ${attemptMs} ms`);
  }
});

Deno.test("nextPace() starts at the first attempt and moves a fifth of the way to each next one", () => {
  assert.equal(nextPace(undefined, 40), 40);
  assert.equal(nextPace(40, 140), 60);
  // After a slow spell, a run of fast attempts brings the pace, and the jobs held, back.
  let pace: number | undefined = 5_000;
  for (let i = 0; i < 60; i++) pace = nextPace(pace, 1);
  assert.ok(pace < 2, `pace ${pace} ms`);
  assert.equal(jobsToHold(16, pace), MAX_HELD);
});

/**
 * Runs a one-slot destination over `count` recorded jobs whose consumer answers each request
 * after `answer` (given how many came before) and holds the request that makes `until` true;
 * returns the most jobs a claim asked for by then (the store is watched) and the requests made.
 */
async function mostHeld(
  count: number,
  answer: (n: number, clock: ManualClock) => Promise<void>,
  until: (requests: number) => boolean,
): Promise<{ mostAsked: number; requests: number }> {
  let requests = 0;
  const releases: (() => void)[] = [];
  const clock = new ManualClock();
  await using consumer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      await req.arrayBuffer();
      const n = requests++;
      await answer(n, clock);
      if (until(requests)) await new Promise<void>((resolve) => releases.push(resolve));
      return new Response(null, { status: 204 });
    },
  );
  await using temp = await openTempKv();
  const store = kvStore(temp.kv);
  const wamids = Array.from({ length: count }, (_, i) => `wamid.HOLD${i}`);
  const { events } = parseDelivery(JSON.parse(textsDelivery(wamids)));
  await store.recordEvents(events, { now: clock.now(), destinationsFor: () => ["one"] });
  let mostAsked = 0;
  const watched: Store = {
    ...store,
    claimJobs: (destination, options) => {
      mostAsked = Math.max(mostAsked, options.limit);
      return store.claimJobs(destination, options);
    },
  };
  const deliveries = createDeliveries({
    destinations: parseDestinations(
      JSON.stringify([{
        name: "one",
        url: `http://127.0.0.1:${consumer.addr.port}/`,
        secrets: [SECRET],
        concurrency: 1,
        timeoutMs: 30_000,
      }]),
      "DESTINATIONS",
    ),
    store: watched,
    clock,
    logger: captureLogs().logger,
    retry: { maxAttempts: 3, baseDelayMs: 1_000, maxDelayMs: 60_000 },
    leaseMs: 60_000,
  });
  // Stopped before the consumer, whose shutdown waits for its handlers.
  await using _stop = {
    [Symbol.asyncDispose]: async () => {
      releases.forEach((release) => release());
      await deliveries.stop(1_000);
    },
  };
  deliveries.start();
  await waitFor(() => releases.length > 0, "the consumer holding a request");
  return { mostAsked, requests };
}

Deno.test("a consumer answering at once gets more than CLAIM_AHEAD rounds of jobs held", async () => {
  // Attempts take no time on the deliverer's clock: the fastest pace.
  const { mostAsked, requests } = await mostHeld(400, () => Promise.resolve(), (n) => n === 30);
  assert.equal(requests, 30);
  assert.ok(
    mostAsked > CLAIM_AHEAD && mostAsked <= MAX_HELD,
    `a claim asked for ${mostAsked} jobs for one slot`,
  );
});

Deno.test("a slow consumer never gets more than CLAIM_AHEAD rounds of jobs held", async () => {
  // Each attempt takes 5 s on the deliverer's clock: 100 ms hold nothing.
  const { mostAsked, requests } = await mostHeld(
    40,
    (_, clock) => clock.advance(5_000),
    (n) => n === 20,
  );
  assert.equal(requests, 20);
  assert.ok(mostAsked <= CLAIM_AHEAD, `a claim asked for ${mostAsked} jobs for one slot`);
});
