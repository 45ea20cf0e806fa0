/**
 * Deno KV's due-order entries of delivery jobs across versions: intake marks the entry of a job
 * it wrote alone, so a claim reads no record for it; an entry the previous version wrote (the
 * event id, for a job with or without a record) is still claimed as what it stands for.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseDelivery } from "../src/events/events.ts";
import { jobKey, jobReadyKey } from "../src/store/kv/keys.ts";
import { UNWRITTEN_JOB_ENTRY } from "../src/store/kv/job_records.ts";
import { createKvStore } from "../src/store/kv/store.ts";
import type { JobOutcome } from "../src/store/job_record.ts";
import type { Store } from "../src/store/store.ts";
import { textsDelivery } from "./deliveries.ts";
import { RETENTION } from "./kv_records.ts";

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

Deno.test("intake marks a new job's entry; a claim writes the job's record and an entry of the event id", async () => {
  await withKv(async (kv, store) => {
    const { events } = parseDelivery(JSON.parse(textsDelivery(["wamid.A"])));
    await store.recordEvents(events, { now: T0, destinationsFor: () => ["crm"] });
    const id = events[0]!.id;
    assert.equal((await kv.get(jobReadyKey("crm", T0, id))).value, UNWRITTEN_JOB_ENTRY);
    assert.equal((await kv.get(jobKey("crm", id))).value, null, "no record yet");
    const [claim] = await store.claimJobs("crm", claimAt(T0));
    assert.equal(claim?.job.state, "delivering");
    assert.equal((await kv.get(jobReadyKey("crm", T0 + LEASE_MS, id))).value, id);
    assert.equal((await kv.get(jobReadyKey("crm", T0, id))).versionstamp, null);
  });
});

Deno.test("an entry the previous version wrote for a job without a record is claimed as pending", async () => {
  await withKv(async (kv, store) => {
    const { events } = parseDelivery(JSON.parse(textsDelivery(["wamid.B"])));
    await store.recordEvents(events, { now: T0, destinationsFor: () => ["crm"] });
    const id = events[0]!.id;
    await kv.set(jobReadyKey("crm", T0, id), id); // what intake wrote before the marker
    const [claim] = await store.claimJobs("crm", claimAt(T0));
    assert.equal(claim?.event.id, id);
    assert.equal(claim?.job.attempts, 0);
    assert.deepEqual((await store.getJobs(id)).map((job) => job.state), ["delivering"]);
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
