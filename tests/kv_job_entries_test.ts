/**
 * Deno KV's due-order entries of delivery jobs: intake lists a commit's new jobs in one entry per
 * destination, which claims, replays and purges take them out of one by one; entries older
 * versions wrote (one per job, marked or holding the event id) are still claimed as what they
 * stand for.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseDelivery } from "../src/events/events.ts";
import {
  eventKey,
  jobKey,
  jobReadyKey,
  jobReadyPrefix,
  type KvEventRecord,
} from "../src/store/kv/keys.ts";
import { UNWRITTEN_JOB_ENTRY } from "../src/store/kv/job_records.ts";
import { createKvStore } from "../src/store/kv/store.ts";
import type { JobOutcome } from "../src/store/job_record.ts";
import type { Store } from "../src/store/store.ts";
import { textsDelivery } from "./deliveries.ts";
import { RETENTION } from "./kv_records.ts";
import { recordLifeMs } from "../src/store/event_record.ts";

const T0 = Date.UTC(2026, 0, 1);
const LEASE_MS = 30_000;

async function withKv(run: (kv: Deno.Kv, store: Store) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "wa-webhook-job-entries-" });
  const kv = await Deno.openKv(`${dir}/store.kv`);
  const store = createKvStore(kv, { ...RETENTION, leaseMs: LEASE_MS, checksPerAtomic: 100 });
  try {
    await run(kv, store);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const claimAt = (now: number) => ({ now, limit: 10, leaseUntil: now + LEASE_MS });

/** The due-order entries of `destination`, in due order, as stored. */
async function dueEntries(kv: Deno.Kv, destination: string): Promise<Deno.KvEntry<unknown>[]> {
  const entries: Deno.KvEntry<unknown>[] = [];
  for await (const entry of kv.list({ prefix: jobReadyPrefix(destination) })) entries.push(entry);
  return entries;
}

/** Records one delivery of `count` texts with a job each to `destinations`, at `T0`. */
async function recordShared(
  store: Store,
  count: number,
  tag: string,
  destinations = ["crm", "erp"],
): Promise<string[]> {
  const wamids = Array.from({ length: count }, (_, i) => `wamid.${tag}${i}`);
  const { events } = parseDelivery(JSON.parse(textsDelivery(wamids)));
  await store.recordEvents(events, { now: T0, destinationsFor: () => destinations });
  return events.map((event) => event.id);
}

/** Rewrites the stored record of event `id` with `change`. */
async function changeRecord(
  kv: Deno.Kv,
  id: string,
  change: (record: KvEventRecord) => KvEventRecord,
): Promise<void> {
  const key = eventKey(id);
  await kv.set(key, change((await kv.get<KvEventRecord>(key)).value!));
}

Deno.test("intake lists a commit's new jobs in one entry per destination; a claim gives each its record and entry", async () => {
  await withKv(async (kv, store) => {
    const ids = await recordShared(store, 3, "A");
    for (const destination of ["crm", "erp"]) {
      const [shared, ...others] = await dueEntries(kv, destination);
      assert.deepEqual(others, [], `one entry for ${destination}`);
      assert.equal(shared!.key[2], T0);
      assert.deepEqual((shared!.value as { ids: string[] }).ids, ids);
    }
    assert.equal((await kv.get(jobKey("crm", ids[0]!))).value, null, "no record yet");
    const claims = await store.claimJobs("crm", claimAt(T0));
    assert.deepEqual(claims.map((claim) => claim.job.state), [
      "delivering",
      "delivering",
      "delivering",
    ]);
    assert.deepEqual(
      (await dueEntries(kv, "crm")).map((entry) => [entry.key[2], entry.key[3], entry.value]),
      ids.map((id) => [T0 + LEASE_MS, id, id]),
      "each claimed job in an entry of its own at the lease's end",
    );
    assert.equal(
      (await dueEntries(kv, "erp")).length,
      1,
      "the other destination's entry untouched",
    );
  });
});

Deno.test("a claim's limit takes a shared entry's first jobs and leaves the rest pending in it", async () => {
  await withKv(async (kv, store) => {
    const ids = await recordShared(store, 5, "B");
    const first = await store.claimJobs("crm", { now: T0, limit: 2, leaseUntil: T0 + LEASE_MS });
    assert.deepEqual(first.map((claim) => claim.event.id), ids.slice(0, 2));
    const shared = (await dueEntries(kv, "crm")).find((entry) => entry.key[2] === T0);
    assert.deepEqual((shared!.value as { ids: string[] }).ids, ids.slice(2));
    assert.deepEqual(await store.jobFigures("crm", { now: T0, limit: 100 }), {
      due: 3,
      later: 2,
      oldestDueAgeMs: 0,
    });
    assert.deepEqual(
      (await store.getJobs(ids[4]!)).map((job) => [job.destination, job.state]),
      [["crm", "pending"], ["erp", "pending"]],
    );
    const rest = await store.claimJobs("crm", claimAt(T0));
    assert.deepEqual(rest.map((claim) => claim.event.id), ids.slice(2));
    assert.equal((await dueEntries(kv, "crm")).filter((e) => e.key[2] === T0).length, 0, "gone");
  });
});

Deno.test("replaying one pending job of a shared entry moves it alone; the others stay pending in it", async () => {
  await withKv(async (kv, store) => {
    const ids = await recordShared(store, 3, "C");
    const later = T0 + 60_000;
    const result = await store.replayJob("crm", ids[1]!, later);
    assert.equal(result.status, "replayed");
    const entries = await dueEntries(kv, "crm");
    assert.deepEqual(entries.map((entry) => entry.key[2]), [T0, later]);
    assert.deepEqual((entries[0]!.value as { ids: string[] }).ids, [ids[0], ids[2]]);
    const claims = await store.claimJobs("crm", claimAt(T0));
    assert.deepEqual(
      claims.map((claim) => claim.event.id),
      [ids[0], ids[2]],
      "the replayed one is due later",
    );
  });
});

Deno.test("purging an expired event takes its id out of the entry it shares, whose other jobs stay", async () => {
  await withKv(async (kv, store) => {
    const ids = await recordShared(store, 3, "D");
    // Only the middle event has expired by then: the records say so.
    const now = T0 + recordLifeMs(RETENTION) + 1;
    for (const id of ids) {
      await changeRecord(kv, id, (record) => ({
        ...record,
        expiresAt: id === ids[1] ? T0 + 1 : now + 60_000,
      }));
    }
    const purged = await store.purgeExpired(now, 100);
    assert.equal(purged, 1);
    const [shared] = await dueEntries(kv, "erp");
    assert.deepEqual((shared!.value as { ids: string[] }).ids, [ids[0], ids[2]]);
    const claims = await store.claimJobs("erp", claimAt(T0));
    assert.deepEqual(claims.map((claim) => claim.event.id), [ids[0], ids[2]]);
  });
});

Deno.test("an entry an older intake wrote alone, marked, for a job without a record is claimed as pending", async () => {
  await withKv(async (kv, store) => {
    const [id] = await recordShared(store, 1, "E", ["crm"]);
    // What a version before the shared entries wrote: no `jobsEntry`, one marked entry per job.
    await changeRecord(kv, id!, ({ jobsEntry: _shared, ...record }) => record);
    for (const entry of await dueEntries(kv, "crm")) await kv.delete(entry.key);
    await kv.set(jobReadyKey("crm", T0, id!), UNWRITTEN_JOB_ENTRY);
    assert.deepEqual((await store.getJobs(id!)).map((job) => job.state), ["pending"]);
    const [claim] = await store.claimJobs("crm", claimAt(T0));
    assert.equal(claim?.event.id, id);
    assert.equal(claim?.job.attempts, 0);
    assert.equal((await kv.get(jobReadyKey("crm", T0, id!))).versionstamp, null, "moved");
  });
});

Deno.test("an entry the previous version wrote for a job without a record is claimed as pending", async () => {
  await withKv(async (kv, store) => {
    const [id] = await recordShared(store, 1, "F", ["crm"]);
    await changeRecord(kv, id!, ({ jobsEntry: _shared, ...record }) => record);
    for (const entry of await dueEntries(kv, "crm")) await kv.delete(entry.key);
    await kv.set(jobReadyKey("crm", T0, id!), id); // what intake wrote before the marker
    const [claim] = await store.claimJobs("crm", claimAt(T0));
    assert.equal(claim?.event.id, id);
    assert.equal(claim?.job.attempts, 0);
    assert.deepEqual((await store.getJobs(id!)).map((job) => job.state), ["delivering"]);
  });
});

Deno.test("an entry of the event id is claimed with its record: attempts and history kept", async () => {
  await withKv(async (_kv, store) => {
    const { events } = parseDelivery(JSON.parse(textsDelivery(["wamid.C"])));
    await store.recordEvents(events, { now: T0, destinationsFor: () => ["crm"] });
    const [first] = await store.claimJobs("crm", claimAt(T0));
    const retryAt = T0 + 5_000;
    const outcome: JobOutcome = {
      state: "retrying",
      startedAt: T0,
      endedAt: T0 + 10,
      error: "503",
      retryAt,
    };
    assert.equal(await store.settleJob(first!, outcome), true);
    const [again] = await store.claimJobs("crm", claimAt(retryAt));
    assert.equal(again?.job.attempts, 1, "the retry's record was read, not made anew");
    assert.equal(again?.job.history.length, 1);
  });
});

Deno.test("a hundred jobs with full histories of long errors are claimed and settled within Deno KV's commit size", async () => {
  await withKv(async (_kv, store) => {
    const wamids = Array.from({ length: 100 }, (_, i) => `wamid.H${i}`);
    const { events } = parseDelivery(JSON.parse(textsDelivery(wamids)));
    await store.recordEvents(events, { now: T0, destinationsFor: () => ["crm"] });
    // The longest reason a consumer's answer can give, in characters stored two bytes each.
    const error = `Destination answered HTTP 500: ${"é".repeat(800)}`;
    let now = T0;
    for (let attempt = 1; attempt <= 21; attempt++) {
      const claims = await store.claimJobs("crm", { now, limit: 100, leaseUntil: now + LEASE_MS });
      assert.equal(claims.length, 100, `attempt ${attempt}: every job claimed`);
      const outcome: JobOutcome = {
        state: "retrying",
        startedAt: now,
        endedAt: now + 1,
        error,
        retryAt: now + 2,
      };
      const settled = await Promise.all(claims.map((claim) => store.settleJob(claim, outcome)));
      assert.ok(settled.every(Boolean), `attempt ${attempt}: every result stored`);
      now += 2;
    }
    const [job] = await store.getJobs(events[0]!.id);
    assert.equal(job?.attempts, 21);
    assert.equal(job?.history.length, 20, "the history is full");
  });
});
