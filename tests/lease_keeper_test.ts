/**
 * The lease keeper alone, over a recording fake of the store's `extendLease` and a manual clock:
 * which leases it extends and when, who hears of a lost lease, and that it stops when nothing is
 * held.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createLeaseKeeper } from "../src/dispatch/lease_keeper.ts";
import { ManualClock } from "../src/ops/clock.ts";
import type { Lease } from "../src/store/store.ts";
import { captureLogs } from "./support.ts";

const LEASE_MS = 6_000;

/** A lease whose end moves when extended, and a store that extends it (or reports it lost). */
function _setup(clock: ManualClock) {
  const extended: { lease: Lease; until: number }[] = [];
  const lost = new Set<Lease>();
  const store = {
    extendLease(lease: Lease, until: number): Promise<boolean> {
      extended.push({ lease, until });
      if (lost.has(lease)) return Promise.resolve(false);
      (lease as { until: number }).until = until;
      return Promise.resolve(true);
    },
  };
  const logs = captureLogs();
  const keeper = createLeaseKeeper({ store, clock, logger: logs.logger, leaseMs: LEASE_MS });
  return { keeper, extended, lost, logs };
}

Deno.test("lease keeper: extends a held lease once two thirds or less of it is left, by a whole lease", async () => {
  const clock = new ManualClock();
  const { keeper, extended } = _setup(clock);
  const lease = { until: clock.now() + LEASE_MS };
  const release = keeper.hold(lease, () => assert.fail("not lost"));
  await clock.advance(LEASE_MS / 6); // 5/6 left: not yet
  assert.deepEqual(extended, []);
  await clock.advance(LEASE_MS / 6); // 2/3 left: extended
  assert.deepEqual(extended, [{ lease, until: clock.now() + LEASE_MS }]);
  assert.equal(lease.until, clock.now() + LEASE_MS);
  await release();
  await clock.advance(LEASE_MS);
  assert.equal(extended.length, 1, "a released lease is not extended");
  assert.deepEqual(clock.pendingSleeps(), [], "no loop left behind");
});

Deno.test("lease keeper: a lease two runs hold is extended once for both", async () => {
  const clock = new ManualClock();
  const { keeper, extended } = _setup(clock);
  const lease = { until: clock.now() + LEASE_MS };
  const releases = [keeper.hold(lease, () => {}), keeper.hold(lease, () => {})];
  await clock.advance(LEASE_MS / 3);
  assert.equal(extended.length, 1);
  await Promise.all(releases.map((release) => release()));
});

Deno.test("lease keeper: a lost extension tells every holder of that lease and only them", async () => {
  const clock = new ManualClock();
  const { keeper, lost } = _setup(clock);
  const gone = { until: clock.now() + LEASE_MS };
  const kept = { until: clock.now() + LEASE_MS };
  lost.add(gone);
  const told: string[] = [];
  keeper.hold(gone, () => told.push("first"));
  keeper.hold(gone, () => told.push("second"));
  const release = keeper.hold(kept, () => told.push("kept"));
  await clock.advance(LEASE_MS / 3);
  assert.deepEqual(told, ["first", "second"]);
  await release();
  assert.deepEqual(clock.pendingSleeps(), [], "the lost lease's holders are let go");
});

Deno.test("lease keeper: lose() tells the holders of a lease a result found lost", async () => {
  const clock = new ManualClock();
  const { keeper } = _setup(clock);
  const lease = { until: clock.now() + LEASE_MS };
  let told = 0;
  keeper.hold(lease, () => told++);
  keeper.lose(lease);
  keeper.lose(lease);
  assert.equal(told, 1, "once");
  await clock.advance(0);
  assert.deepEqual(clock.pendingSleeps(), []);
});

Deno.test("lease keeper: release waits for the extension under way", async () => {
  const clock = new ManualClock();
  let finish: (held: boolean) => void = () => {};
  const store = {
    extendLease: () => new Promise<boolean>((resolve) => (finish = resolve)),
  };
  const keeper = createLeaseKeeper({
    store,
    clock,
    logger: captureLogs().logger,
    leaseMs: LEASE_MS,
  });
  const release = keeper.hold({ until: clock.now() + LEASE_MS }, () => {});
  await clock.advance(LEASE_MS / 3);
  let isReleased = false;
  const releasing = release().then(() => (isReleased = true));
  await clock.advance(0);
  assert.equal(isReleased, false, "the extension has not landed");
  finish(true);
  await releasing;
  assert.equal(isReleased, true);
});

Deno.test("lease keeper: an extension that throws is logged and the lease kept", async () => {
  const clock = new ManualClock();
  const logs = captureLogs();
  const store = { extendLease: () => Promise.reject(new Error("store down")) };
  const keeper = createLeaseKeeper({ store, clock, logger: logs.logger, leaseMs: LEASE_MS });
  const release = keeper.hold({ until: clock.now() + LEASE_MS }, () => assert.fail("not lost"));
  await clock.advance(LEASE_MS / 3);
  assert.ok(logs.lines.some((line) => line.msg === "cannot extend a lease"));
  await release();
});
