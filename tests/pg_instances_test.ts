/**
 * Several service processes on one PostgreSQL database, started with the start task's exact flags
 * (`tests/service_process.ts`) and `STORE_URL`: every event stored once, each handler run once
 * (the counting handler of `counting_dispatcher.ts`, which counts in a KV file of its own), each
 * delivery job delivered once to a real consumer on loopback; one instance killed with SIGKILL
 * mid-run; the database stopped and started during a burst. The store is read back through the
 * `Store` interface only.
 *
 * @module
 */
import assert from "node:assert/strict";
import { signBody } from "../src/webhook/signature.ts";
import { openPgStore } from "../src/store/pg/open.ts";
import type { EventState, JobState } from "../src/store/store.ts";
import { readCounts } from "./counting_dispatcher.ts";
import { textsDelivery } from "./deliveries.ts";
import { createTestDatabase, startCluster } from "./pg_cluster.ts";
import {
  ROOT,
  type RunningService,
  serviceEnv,
  startService,
  startTaskArgsFor,
  withDataDir,
} from "./service_process.ts";
import { postSigned, type SignedDelivery } from "./signed_deliveries.ts";
import { TEST_SECRET, waitFor } from "./support.ts";

/** Events per delivery, as Meta batches them under load. */
const EVENTS_PER_DELIVERY = 10;
/** Concurrent connections posting, like Meta's. */
const SENDERS = 8;
/** The destination every event goes to. */
const DESTINATION = "crm";

/** A signed delivery of `EVENTS_PER_DELIVERY` text messages, and their event ids. */
interface BatchDelivery extends SignedDelivery {
  ids: string[];
}

async function batchDelivery(n: number, tag: string): Promise<BatchDelivery> {
  const wamids = Array.from(
    { length: EVENTS_PER_DELIVERY },
    (_, i) => `wamid.${tag}${String(n * EVENTS_PER_DELIVERY + i).padStart(6, "0")}`,
  );
  const body = new TextEncoder().encode(textsDelivery(wamids));
  const ids = wamids.map((wamid) => `message:${wamid}`);
  return { id: ids[0]!, ids, body, signature: await signBody(TEST_SECRET, body) };
}

/** A destination's consumer on 127.0.0.1: every POST counted by the event it carries. */
interface Consumer extends AsyncDisposable {
  url: string;
  secret: string;
  /** POSTs received per event id. */
  received: Map<string, number>;
}

function startConsumer(): Consumer {
  const received = new Map<string, number>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const { data } = JSON.parse(await req.text()) as { data: { id: string } };
    received.set(data.id, (received.get(data.id) ?? 0) + 1);
    return new Response(null, { status: 204 });
  });
  const secret = `whsec_${crypto.getRandomValues(new Uint8Array(32)).toBase64()}`;
  return {
    url: `http://127.0.0.1:${server.addr.port}/hooks`,
    secret,
    received,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/**
 * The directory of the counting handler's KV file: with `STORE_URL` set, the service opens no KV
 * file, so nothing else creates it.
 */
async function makeCountsDir(kvPath: string): Promise<void> {
  await Deno.mkdir(new URL(kvPath.slice(0, kvPath.lastIndexOf("/")), ROOT), { recursive: true });
}

/** The environment of a service on `storeUrl`, counting into `kvPath`, delivering to `consumer`. */
function pgEnv(
  kvPath: string,
  storeUrl: string,
  consumer: Consumer | undefined,
  extra: Record<string, string> = {},
): Record<string, string> {
  return serviceEnv(kvPath, {
    STORE_URL: storeUrl,
    STORE_POOL_SIZE: "6",
    WORKER_CONCURRENCY: "16",
    ...(consumer
      ? {
        DESTINATIONS: JSON.stringify([
          { name: DESTINATION, url: consumer.url, secrets: [consumer.secret] },
        ]),
      }
      : {}),
    ...extra,
  });
}

/** Every event's listed state and its job's state, read through the store's interface. */
async function readStore(
  url: string,
): Promise<{ events: Map<string, EventState>; jobs: Map<string, JobState> }> {
  const store = await openPgStore(url, { poolSize: 2 });
  try {
    const events = new Map<string, EventState>();
    let cursor: string | undefined;
    do {
      const page = await store.listEvents({ limit: 1000, ...(cursor ? { cursor } : {}) });
      for (const event of page.events) {
        assert.ok(!events.has(event.id), `"${event.id}" is stored once`);
        events.set(event.id, event.state);
      }
      cursor = page.cursor;
    } while (cursor);
    const jobs = new Map<string, JobState>();
    cursor = undefined;
    do {
      const page = await store.listJobs(DESTINATION, {
        limit: 1000,
        ...(cursor ? { cursor } : {}),
      });
      for (const job of page.jobs) jobs.set(job.eventId, job.state);
      cursor = page.cursor;
    } while (cursor);
    return { events, jobs };
  } finally {
    await store.end();
  }
}

/** Waits until every one of `ids` is done and, with jobs, delivered; fails with what is not. */
async function waitUntilAllDone(
  url: string,
  ids: readonly string[],
  { hasJobs, timeoutMs }: { hasJobs: boolean; timeoutMs: number },
): Promise<void> {
  let seen = "";
  try {
    await waitFor(
      async () => {
        const { events, jobs } = await readStore(url);
        const count = (states: Map<string, string>) =>
          JSON.stringify(
            Object.groupBy(ids, (id) => states.get(id) ?? "absent"),
            (_, v) => Array.isArray(v) ? v.length : v,
          );
        seen = `events ${count(events)}${hasJobs ? `, jobs ${count(jobs)}` : ""}`;
        return ids.every((id) =>
          events.get(id) === "done" && (!hasJobs || jobs.get(id) === "delivered")
        );
      },
      `all ${ids.length} events done`,
      timeoutMs,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}: ${seen}`);
  }
}

/** Posts each delivery to instances chosen by `pick`, `SENDERS` at a time; returns the statuses. */
async function postAll(
  deliveries: readonly BatchDelivery[],
  pick: () => RunningService,
  onAnswer: (delivery: BatchDelivery, status: number) => void = () => {},
): Promise<number[]> {
  const statuses: number[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: SENDERS }, async () => {
    while (next < deliveries.length) {
      const delivery = deliveries[next++]!;
      const status = await postSigned(pick().origin, delivery);
      statuses.push(status);
      onAnswer(delivery, status);
    }
  }));
  return statuses;
}

Deno.test({
  name: "three processes on one PostgreSQL database: 2,000 events posted twice to random " +
    "instances are stored once, handled once and delivered once",
  async fn() {
    // An empty database: the three instances migrate it at once, under the advisory lock.
    const database = await createTestDatabase({ isEmpty: true });
    await using consumer = startConsumer();
    try {
      await withDataDir(async (kvPath) => {
        await makeCountsDir(kvPath);
        const args = await startTaskArgsFor("tests/counting_service.ts");
        const env = pgEnv(kvPath, database.url, consumer);
        const services = await Promise.all([1, 2, 3].map(() => startService(env, args)));
        await using _stop = { [Symbol.asyncDispose]: () => _killAll(services) };
        const deliveries = await Promise.all(
          Array.from({ length: 200 }, (_, n) => batchDelivery(n, "PGI")),
        );
        const ids = deliveries.flatMap((d) => d.ids);
        assert.equal(ids.length, 2_000);
        // Every delivery twice, each copy to a random instance, as Meta's retries would land.
        const twice = [...deliveries, ...deliveries].sort(() => Math.random() - 0.5);
        const random = () => services[Math.floor(Math.random() * services.length)]!;
        const statuses = await postAll(twice, random);
        assert.deepEqual([...new Set(statuses)], [200], "every copy acknowledged");

        await waitUntilAllDone(database.url, ids, { hasJobs: true, timeoutMs: 60_000 });
        for (const service of services) assert.equal((await service.stop("SIGTERM")).code, 0);

        const { events, jobs } = await readStore(database.url);
        assert.equal(events.size, 2_000, "each event stored once");
        assert.equal(jobs.size, 2_000, "one job per event");
        const { runs, effects } = await readCounts(new URL(kvPath, ROOT).pathname);
        assert.equal(effects.size, 2_000);
        const ranTwice = ids.filter((id) => runs.get(id) !== 1n);
        assert.deepEqual(
          ranTwice,
          [],
          `each handler ran once; the runs of those that did not: ${await _historyOf(
            database.url,
            ranTwice,
          )}`,
        );
        const deliveredTwice = ids.filter((id) => consumer.received.get(id) !== 1);
        assert.deepEqual(deliveredTwice, [], "each job delivered once");
        const handlers = new Set(effects.values());
        assert.equal(handlers.size, 3, "all three instances ran handlers");
      });
    } finally {
      await database.drop();
    }
  },
});

Deno.test({
  name: "SIGKILL of one of three PostgreSQL instances mid-run: its leased events are taken " +
    "over after their lease, nothing acknowledged is lost, repeats bounded by what was running",
  async fn() {
    const database = await createTestDatabase();
    try {
      await withDataDir(async (kvPath) => {
        await makeCountsDir(kvPath);
        const concurrency = 16;
        const args = await startTaskArgsFor("tests/counting_service.ts", ["--handler-ms=50"]);
        // A short lease, so the take-over comes soon; not the shortest (1 s): on two loaded cores
        // a lease ran out under a survivor's run before its keeper extended it, which repeats a
        // run that was not the victim's.
        const env = pgEnv(kvPath, database.url, undefined, {
          LEASE_MS: "2500",
          WORKER_CONCURRENCY: String(concurrency),
        });
        const services = await Promise.all([1, 2, 3].map(() => startService(env, args)));
        await using _stop = { [Symbol.asyncDispose]: () => _killAll(services) };
        const [victim, ...survivors] = services as [RunningService, ...RunningService[]];
        const deliveries = await Promise.all(
          Array.from({ length: 120 }, (_, n) => batchDelivery(n, "PGK")),
        );
        const acknowledged = new Set<string>();
        let isKilled = false;
        let turn = 0;
        // Round robin over the live instances; the victim takes a third until it is killed.
        const pick = () => {
          const live = isKilled ? survivors : services;
          return live[turn++ % live.length]!;
        };
        const sending = postAll(deliveries, pick, (delivery, status) => {
          if (status === 200) { for (const id of delivery.ids) acknowledged.add(id); }
        });
        const kvFile = new URL(kvPath, ROOT).pathname;
        // Kill once the victim has run handlers: its later runs are in flight or leased to it.
        await waitFor(
          async () => {
            const { effects } = await readCounts(kvFile);
            return [...effects.values()].some((pid) => pid === victim.process.pid);
          },
          "the victim running handlers",
          15_000,
        );
        await victim.stop("SIGKILL");
        isKilled = true;
        // A run counts itself before its handler does anything, and its result is stored with the
        // event's state: a run counted whose event is not done was in flight at the kill (its
        // handler running, or its result not yet stored), read before any lease ran out.
        const atKill = await readCounts(kvFile);
        const storeAtKill = await readStore(database.url);
        const inFlightAtKill = [...atKill.runs.keys()].filter((id) =>
          storeAtKill.events.get(id) !== "done"
        );
        await sending;
        // Meta resends what was not acknowledged (a copy the victim took when it died).
        const unacknowledged = deliveries.filter((d) => !d.ids.every((id) => acknowledged.has(id)));
        const resent = await postAll(unacknowledged, pick);
        assert.ok(resent.every((status) => status === 200), `resent: ${resent}`);

        const ids = deliveries.flatMap((d) => d.ids);
        const startedWaiting = performance.now();
        await waitUntilAllDone(database.url, ids, { hasJobs: false, timeoutMs: 30_000 });
        const { runs, effects } = await readCounts(kvFile);
        assert.equal(effects.size, ids.length, "every event handled: nothing acknowledged lost");
        const repeated = ids.filter((id) => (runs.get(id) ?? 0n) > 1n);
        for (const id of repeated) {
          assert.equal(runs.get(id), 2n, `${id} ran at most twice`);
          assert.ok(
            inFlightAtKill.includes(id),
            `${id} ran twice but was not in flight at the kill; its runs: ${await _historyOf(
              database.url,
              [id],
            )}`,
          );
        }
        assert.ok(
          repeated.length <= concurrency * 3,
          `${repeated.length} repeats, more than could run at once`,
        );
        const takenOver = inFlightAtKill.filter((id) => effects.get(id) !== victim.process.pid);
        // deno-lint-ignore no-console
        console.log(
          `pg kill test: ${inFlightAtKill.length} runs in flight at the kill, ` +
            `${takenOver.length} finished by a survivor, ${repeated.length} repeated; ` +
            `all done ${Math.round(performance.now() - startedWaiting)} ms after the sends`,
        );
        assert.ok(inFlightAtKill.length > 0, "the kill interrupted runs");
        for (const survivor of survivors) assert.equal((await survivor.stop("SIGTERM")).code, 0);
      });
    } finally {
      await database.drop();
    }
  },
});

Deno.test({
  name: "PostgreSQL stopped and started during a burst: 503s only while it is down, /readyz " +
    "says so, serving again within seconds, no acknowledged event lost",
  async fn() {
    // A cluster of its own: the test stops it.
    const server = await startCluster();
    const cluster = server.cluster!;
    try {
      await withDataDir(async (kvPath) => {
        await makeCountsDir(kvPath);
        const args = await startTaskArgsFor("tests/counting_service.ts");
        const env = pgEnv(kvPath, server.adminUrl, undefined, { ADMIN_TOKEN: "x".repeat(24) });
        const services = await Promise.all([1, 2].map(() => startService(env, args)));
        await using _stop = { [Symbol.asyncDispose]: () => _killAll(services) };
        const deliveries = await Promise.all(
          Array.from({ length: 150 }, (_, n) => batchDelivery(n, "PGD")),
        );
        const answers: { at: number; status: number }[] = [];
        const acknowledged = new Set<string>();
        let turn = 0;
        const pick = () => services[turn++ % services.length]!;
        let stoppedAt = Infinity;
        let startedAt = Infinity;
        // Meta's retries: a delivery answered otherwise than 200 is posted again until it is.
        const pending = [...deliveries];
        const sending = Promise.all(Array.from({ length: SENDERS }, async () => {
          while (pending.length > 0) {
            const delivery = pending.shift()!;
            const status = await postSigned(pick().origin, delivery);
            answers.push({ at: performance.now(), status });
            if (status === 200) { for (const id of delivery.ids) acknowledged.add(id); }
            else {
              pending.push(delivery);
              await new Promise((resolve) => setTimeout(resolve, 50)); // Meta backs off too
            }
          }
        }));
        await waitFor(() => acknowledged.size >= 300, "300 events acknowledged");
        stoppedAt = performance.now();
        await cluster.stop("immediate"); // connections cut mid-commit, as a crash does
        await waitFor(
          () => answers.some((a) => a.at > stoppedAt && a.status === 503),
          "a 503 while the database is down",
        );
        const ready = await fetch(`${services[0]!.origin}/readyz`);
        assert.equal(ready.status, 503, "not ready while the database is down");
        assert.match(await ready.text(), /PostgreSQL/);
        await cluster.start();
        startedAt = performance.now();
        await sending;
        const firstServedAt = answers.find((a) => a.at > startedAt && a.status === 200)?.at;
        assert.ok(firstServedAt !== undefined, "served after the restart");
        const recoveryMs = firstServedAt - startedAt;
        assert.ok(recoveryMs < 5_000, `serving again ${Math.round(recoveryMs)} ms after`);
        const others = answers.filter((a) => a.status !== 200 && a.status !== 503);
        assert.deepEqual(others, [], "only 200s and 503s");
        const wrong503 = answers.filter((a) =>
          a.status === 503 && (a.at < stoppedAt || a.at > startedAt + recoveryMs + 1_000)
        );
        assert.deepEqual(wrong503, [], "503s only while the database was down");
        await waitFor(async () => {
          const response = await fetch(`${services[0]!.origin}/readyz`);
          await response.body?.cancel();
          return response.status === 200;
        }, "ready again");

        const ids = deliveries.flatMap((d) => d.ids);
        await waitUntilAllDone(server.adminUrl, ids, { hasJobs: false, timeoutMs: 30_000 });
        const { runs } = await readCounts(new URL(kvPath, ROOT).pathname);
        assert.equal(runs.size, ids.length, "every acknowledged event handled");
        // deno-lint-ignore no-console
        console.log(
          `pg restart test: ${answers.filter((a) => a.status === 503).length} 503s while down, ` +
            `serving ${Math.round(recoveryMs)} ms after the restart, ` +
            `${ids.filter((id) => runs.get(id)! > 1n).length} runs repeated`,
        );
        for (const service of services) {
          const { code } = await service.stop("SIGTERM");
          assert.equal(
            code,
            0,
            `exit code on SIGTERM; its last lines:\n${service.output.slice(-15).join("\n")}`,
          );
        }
      });
    } finally {
      await cluster.destroy();
    }
  },
});

/** The history of each of `ids` (at most five), for a failure's message. */
async function _historyOf(url: string, ids: readonly string[]): Promise<string> {
  const store = await openPgStore(url, { poolSize: 2 });
  try {
    const records = await Promise.all(ids.slice(0, 5).map((id) => store.getEvent(id)));
    return JSON.stringify(records.map((stored) => stored?.record.history));
  } finally {
    await store.end();
  }
}

/** Kills whatever of `services` still runs (a failed test's leftovers). */
async function _killAll(services: readonly RunningService[]): Promise<void> {
  await Promise.all(services.map((service) => service.stop("SIGKILL")));
}
