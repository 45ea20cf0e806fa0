/**
 * Group commit at the record step, on a real Deno KV file: concurrent deliveries share atomics, a
 * duplicate never fails or double-records its neighbours, and a failed commit fails only the
 * deliveries whose events it held.
 */
import assert from "node:assert/strict";
import { createInbox, type Inbox, MAX_EVENTS_PER_COMMIT } from "../src/store/kv/record.ts";
import { eventKey, idsOfEntry } from "../src/store/kv/keys.ts";
import { textMessageEvent } from "./fixtures/catalog.ts";
import { expirationMs, recordAll, RETENTION } from "./kv_records.ts";
import { openTempKv } from "./support.ts";

const NOW = Date.UTC(2026, 0, 1);

/** What the inbox did to Deno KV: the event ids each commit checked, and the reads. */
interface Watched {
  kv: Deno.Kv;
  commits: string[][];
  reads: number;
}

/**
 * Wraps `kv` to see each commit's events (by their dedup checks) and count reads. A commit
 * holding an event for which `failWhen` says yes throws, as a full disk would.
 */
function watch(kv: Deno.Kv, failWhen: (ids: string[]) => boolean = () => false): Watched {
  const watched: Watched = { kv, commits: [], reads: 0 };
  watched.kv = new Proxy(kv, {
    get(target, property) {
      if (property === "getMany") {
        return (...args: Parameters<Deno.Kv["getMany"]>) => {
          watched.reads++;
          return target.getMany(...args);
        };
      }
      if (property !== "atomic") return Reflect.get(target, property, target);
      return () => {
        const atomic = target.atomic();
        const ids: string[] = [];
        const wrapped: Deno.AtomicOperation = new Proxy(atomic, {
          get(op, name) {
            if (name === "check") {
              return (...checks: Deno.AtomicCheck[]) => {
                for (const { key } of checks) if (key[0] === "events") ids.push(String(key[1]));
                op.check(...checks);
                return wrapped;
              };
            }
            if (name === "commit") {
              return () => {
                watched.commits.push(ids);
                if (failWhen(ids)) return Promise.reject(new Error("disk I/O error"));
                return op.commit();
              };
            }
            const value = Reflect.get(op, name, op);
            if (typeof value !== "function") return value;
            return (...args: unknown[]) => {
              const result = value.apply(op, args);
              return result === op ? wrapped : result;
            };
          },
        });
        return wrapped;
      };
    },
  });
  return watched;
}

function inboxOn(kv: Deno.Kv): Inbox {
  return createInbox(kv, RETENTION, MAX_EVENTS_PER_COMMIT);
}

/** Records one single-message delivery per wamid, all at once, as concurrent requests do. */
function recordConcurrently(inbox: Inbox, wamids: string[]) {
  return wamids.map((wamid) => inbox.record([textMessageEvent(wamid)], { now: NOW }));
}

Deno.test("concurrent deliveries share atomic commits, and nothing is read first", async () => {
  await using temp = await openTempKv();
  const watched = watch(temp.kv);
  const wamids = Array.from({ length: 12 }, (_, i) => `wamid.SHARE${i}`);

  const outcomes = await Promise.all(recordConcurrently(inboxOn(watched.kv), wamids));

  assert.deepEqual(outcomes.map((o) => o.recorded), wamids.map((w) => [`message:${w}`]));
  assert.ok(watched.commits.length < wamids.length, `${watched.commits.length} commits`);
  const shared = watched.commits.find((ids) => ids.length > 1);
  assert.ok(shared, "one commit held the events of several deliveries");
  assert.ok(
    watched.commits.every((ids) => ids.length <= MAX_EVENTS_PER_COMMIT),
    "at most ten checks a commit",
  );
  assert.equal(watched.reads, 0);
  for (const wamid of wamids) {
    assert.notEqual((await temp.kv.get(eventKey(`message:${wamid}`))).versionstamp, null);
  }
});

Deno.test("a duplicate in a group neither fails nor double-records its neighbours", async () => {
  await using temp = await openTempKv();
  const old = textMessageEvent("wamid.OLD", "recorded before");
  await recordAll(temp.kv, [old], NOW - 60_000);
  const before = await temp.kv.get(eventKey(old.id));
  const watched = watch(temp.kv);
  const inbox = inboxOn(watched.kv);

  // The first two commits are in flight at once; the next deliveries gather into one group.
  const [first, second, ...grouped] = await Promise.all([
    ...recordConcurrently(inbox, ["wamid.A", "wamid.B"]),
    inbox.record([textMessageEvent("wamid.OLD", "Meta's retry")], { now: NOW }),
    ...recordConcurrently(inbox, ["wamid.C", "wamid.D"]),
    inbox.record([textMessageEvent("wamid.E"), textMessageEvent("wamid.E")], { now: NOW }),
  ]);

  assert.deepEqual([first!.recorded, second!.recorded], [["message:wamid.A"], [
    "message:wamid.B",
  ]]);
  const [retry, c, d, twice] = grouped;
  assert.deepEqual(retry, { recorded: [], duplicates: [old.id], leased: [] });
  assert.deepEqual([c!.recorded, d!.recorded], [["message:wamid.C"], ["message:wamid.D"]]);
  assert.deepEqual(twice, {
    recorded: ["message:wamid.E"],
    duplicates: ["message:wamid.E"],
    leased: [],
  });
  // The group failed its check once, was read once, and its new events committed again.
  const withOld = watched.commits.filter((ids) => ids.includes(old.id));
  assert.equal(withOld.length, 1);
  const neighbours = ["message:wamid.C", "message:wamid.D", "message:wamid.E"];
  assert.deepEqual(withOld[0]!.toSorted(), [...neighbours, old.id].toSorted());
  assert.ok(watched.commits.some((ids) => ids.toSorted().join() === neighbours.join()));
  assert.equal(watched.reads, 1);
  const after = await temp.kv.get(eventKey(old.id));
  assert.equal(after.versionstamp, before.versionstamp, "the old record was not written again");
});

Deno.test("a failed commit fails only the deliveries whose events it held", async () => {
  await using temp = await openTempKv();
  const watched = watch(temp.kv, (ids) => ids.includes("message:wamid.BAD"));
  const inbox = inboxOn(watched.kv);

  const settled = await Promise.allSettled([
    ...recordConcurrently(inbox, ["wamid.A", "wamid.B", "wamid.BAD", "wamid.C"]),
  ]);

  const byWamid = new Map(["A", "B", "BAD", "C"].map((w, i) => [w, settled[i]!]));
  const bad = watched.commits.find((ids) => ids.includes("message:wamid.BAD"))!;
  for (const [wamid, result] of byWamid) {
    const id = `message:wamid.${wamid}`;
    const stored = (await temp.kv.get(eventKey(id))).versionstamp !== null;
    if (bad.includes(id)) {
      assert.equal(result.status, "rejected", `${wamid} shared the failed commit`);
      assert.equal(stored, false);
    } else {
      assert.equal(result.status, "fulfilled", `${wamid} was in another commit`);
      assert.equal(stored, true);
    }
  }
  assert.ok(bad.length < 4, "some deliveries were committed apart from the failed one");

  // Meta retries the failed deliveries: they are recorded now, the others are duplicates.
  const retried = await Promise.all(recordConcurrently(inboxOn(temp.kv), ["wamid.BAD", "wamid.A"]));
  assert.deepEqual(retried.map((o) => o.recorded.length), [1, 0]);
});

Deno.test("a delivery split over several commits fails whole, and its retry records the rest", async () => {
  await using temp = await openTempKv();
  const events = Array.from({ length: 15 }, (_, i) => textMessageEvent(`wamid.BIG${i}`));
  const watched = watch(temp.kv, (ids) => ids.includes("message:wamid.BIG12"));

  await assert.rejects(inboxOn(watched.kv).record(events, { now: NOW }), /disk I\/O error/);
  const failed = watched.commits.find((ids) => ids.includes("message:wamid.BIG12"))!;
  assert.ok(watched.commits.length > 1 && failed.length < events.length);

  const retried = await inboxOn(temp.kv).record(events, { now: NOW + 1_000 });
  assert.deepEqual(retried.recorded.toSorted(), failed.toSorted());
  assert.equal(retried.duplicates.length, events.length - failed.length);
});

Deno.test("events of concurrent deliveries recorded leased share one ready entry per commit", async () => {
  await using temp = await openTempKv();
  const watched = watch(temp.kv);
  const inbox = inboxOn(watched.kv);
  const until = NOW + 15_000;
  const wamids = Array.from({ length: 12 }, (_, i) => `wamid.LEASED${i}`);

  const outcomes = await Promise.all(
    wamids.map((wamid) =>
      inbox.record([textMessageEvent(wamid)], { now: NOW, lease: { count: 1, until } })
    ),
  );

  const leases = new Set(outcomes.flatMap((outcome) => outcome.leased.map((l) => l.lease)));
  assert.equal(leases.size, watched.commits.length, "one lease per commit");
  const entries: Deno.KvEntry<unknown>[] = [];
  for await (const entry of temp.kv.list({ prefix: ["ready"] })) entries.push(entry);
  assert.equal(entries.length, leases.size, "one ready entry per lease");
  for (const lease of leases) {
    const entry = entries.find((e) => e.key.join() === lease.key.join());
    assert.ok(entry, "the lease names its entry");
    assert.equal(entry.versionstamp, lease.versionstamp);
    assert.deepEqual(idsOfEntry(entry.value), lease.ids);
    assert.equal(lease.key[1], until);
  }
  assert.ok([...leases].some((lease) => lease.ids.length > 1));
});

Deno.test("a record recorded leased lives its whole life after the lease ends", async () => {
  await using temp = await openTempKv();
  // Real time: Deno KV counts `expireIn` from its own clock.
  const now = Date.now();
  const lifeMs = 3_600_000; // DEDUP_TTL_HOURS = EVENT_RETENTION_HOURS = 1: the least allowed
  const until = now + 3_600_000; // LEASE_MS: the most allowed
  const inbox = createInbox(
    temp.kv,
    { dedupTtlMs: lifeMs, retentionMs: lifeMs },
    MAX_EVENTS_PER_COMMIT,
  );
  const event = textMessageEvent("wamid.LEASEDLIFE");

  const outcome = await inbox.record([event], { now, lease: { count: 1, until } });
  const [leased] = outcome.leased;
  assert.equal(leased?.record.expiresAt, until + lifeMs, "a life after the lease, not at its end");
  const expiration = expirationMs(temp.path, ["events", event.id])!;
  assert.ok(expiration >= until + lifeMs, `expires ${expiration - until} ms after the lease`);
});
