/**
 * How much one Deno KV commit holds, by the checks the backend allows (`checksPerAtomicAt`): on a
 * local file a hundred new events share an intake commit (one dedup check each) and a claim takes
 * a hundred ready entries at once, and a commit of results changes up to a hundred leases; with KV
 * Connect's ten, ten. Counted from what the commits leave: one timeline entry per intake commit,
 * one lease per claim commit, one versionstamp per commit of results.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseDelivery } from "../src/events/events.ts";
import { eventKey, TIMELINE_PREFIX } from "../src/store/kv/keys.ts";
import { KV_CONNECT_CHECKS_PER_ATOMIC, LOCAL_CHECKS_PER_ATOMIC } from "../src/store/kv/location.ts";
import { createKvStore } from "../src/store/kv/store.ts";
import type { RunOutcome, Store } from "../src/store/store.ts";
import { textsDelivery } from "./deliveries.ts";
import { RETENTION } from "./kv_records.ts";

const T0 = Date.UTC(2026, 0, 1);

async function withStore(
  checksPerAtomic: number,
  run: (kv: Deno.Kv, store: Store) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "wa-webhook-commit-sizes-" });
  const kv = await Deno.openKv(`${dir}/store.kv`);
  const store = createKvStore(kv, { ...RETENTION, leaseMs: 30_000, checksPerAtomic });
  try {
    await run(kv, store);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const wamids = (tag: string, count: number): string[] =>
  Array.from({ length: count }, (_, i) => `wamid.${tag}${i}`);

for (
  const [name, checks] of [
    ["a local file", LOCAL_CHECKS_PER_ATOMIC],
    ["KV Connect", KV_CONNECT_CHECKS_PER_ATOMIC],
  ] as const
) {
  Deno.test(`with ${name}'s ${checks} checks, a delivery's events share commits of ${checks}`, async () => {
    await withStore(checks, async (kv, store) => {
      const { events } = parseDelivery(JSON.parse(textsDelivery(wamids("C", 100))));
      const outcome = await store.recordEvents(events, { now: T0 });
      assert.equal(outcome.recorded.length, 100);
      let commits = 0;
      for await (const _ of kv.list({ prefix: TIMELINE_PREFIX })) commits++;
      assert.equal(commits, 100 / checks, "one timeline entry per intake commit");
    });
  });

  Deno.test(`with ${name}'s ${checks} checks, a claim takes up to ${checks} ready entries in one commit`, async () => {
    await withStore(checks, async (_kv, store) => {
      // One delivery at a time: each event is its own commit, with a ready entry of its own.
      for (const wamid of wamids("R", 30)) {
        const { events } = parseDelivery(JSON.parse(textsDelivery([wamid])));
        await store.recordEvents(events, { now: T0 });
      }
      const claims = await store.claimDue({ now: T0, limit: 30, leaseUntil: T0 + 30_000 });
      assert.equal(claims.length, 30);
      const leases = new Set(claims.map((claim) => claim.lease));
      assert.equal(leases.size, Math.ceil(30 / checks), "one lease per claim commit");
    });
  });
}

for (
  const [name, checks] of [
    ["a local file", LOCAL_CHECKS_PER_ATOMIC],
    ["KV Connect", KV_CONNECT_CHECKS_PER_ATOMIC],
  ] as const
) {
  Deno.test(`with ${name}'s ${checks} checks, results of 30 leases settle in commits of up to ${checks} leases`, async () => {
    await withStore(checks, async (kv, store) => {
      const leaseUntil = T0 + 30_000;
      const claims = [];
      for (const wamid of wamids("S", 30)) {
        const { events } = parseDelivery(JSON.parse(textsDelivery([wamid])));
        await store.recordEvents(events, { now: T0 });
        claims.push(...await store.claimDue({ now: T0, limit: 1, leaseUntil }));
      }
      assert.equal(new Set(claims.map((claim) => claim.lease)).size, 30, "30 leases");
      const done: RunOutcome = {
        state: "done",
        startedAt: T0,
        endedAt: T0 + 1,
        completedHandlers: [],
      };
      const settled = await Promise.all(claims.map((claim) => store.settle(claim, done)));
      assert.ok(settled.every(Boolean));
      const records = await Promise.all(claims.map((claim) => kv.get(eventKey(claim.event.id))));
      const commits = new Set(records.map((record) => record.versionstamp)).size;
      // Thirty leases take at least three commits of ten; two commits (the first result may go
      // alone, the rest gather behind it) mean one held more than ten.
      if (checks === KV_CONNECT_CHECKS_PER_ATOMIC) assert.ok(commits >= 3, `${commits} commits`);
      else assert.ok(commits <= 2, `${commits} commits`);
    });
  });
}
