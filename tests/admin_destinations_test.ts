/**
 * Destinations paused and resumed at run time, through the whole app: an operator's pause through
 * the admin API, a 410 Gone's pause, both kept in the store so they hold across a restart on the
 * same store, and resuming; `GET /admin/destinations` shows each destination's state; replaying
 * every job that matches a filter and a time range. Consumers listen on 127.0.0.1.
 *
 * @module
 */
import assert from "node:assert/strict";
import { messageEventId } from "../src/events/event_ids.ts";
import { ManualClock } from "../src/ops/clock.ts";
import { textsDelivery } from "./deliveries.ts";
import { call, deliver, destinationsEnv, startConsumer } from "./admin_consumers.ts";
import { openTempKv, postDelivery, startTestServer, type TestServer, waitFor } from "./support.ts";

/** The state of event `id`'s job to `destination`. */
async function jobState(server: TestServer, id: string, destination: string): Promise<string> {
  const jobs = await server.store.getJobs(id);
  return jobs.find((job) => job.destination === destination)?.state ?? "none";
}

Deno.test("an operator's pause holds every delivery to that destination, across a restart, until resumed", async () => {
  await using crm = startConsumer(200);
  await using other = startConsumer(200);
  await using temp = await openTempKv();
  const env = destinationsEnv([{ name: "crm", url: crm.url }, { name: "other", url: other.url }]);
  const clock = new ManualClock(Date.now());
  {
    await using first = await startTestServer({ kv: temp.kv, clock, env });
    const paused = await call(first, "POST", "/admin/destinations/crm/pause");
    assert.equal(paused.status, 200);
    assert.equal(paused.body.paused.by, "run_time");
    assert.match(paused.body.paused.reason, /paused by an operator/);
    const [id] = await deliver(first, ["wamid.OP1"], "other", "delivered");
    assert.equal(await jobState(first, id!, "crm"), "pending");
  }

  // A new process on the same store: the pause is still there.
  await using server = await startTestServer({ kv: temp.kv, clock, env });
  const [id] = await deliver(server, ["wamid.OP2"], "other", "delivered");
  assert.equal(await jobState(server, id!, "crm"), "pending");
  assert.deepEqual(crm.received, [], "nothing reached the paused destination");
  assert.ok(
    server.logs.lines.some((line) =>
      line.msg === "destination paused: its deliveries wait" && line.destination === "crm"
    ),
  );
  const listed = await call(server, "GET", "/admin/destinations");
  assert.equal(listed.status, 200);
  const byName = Object.fromEntries(
    // deno-lint-ignore no-explicit-any
    listed.body.destinations.map((d: any) => [d.name, d]),
  );
  assert.equal(byName.crm.paused.by, "run_time");
  assert.equal(typeof byName.crm.paused.since, "string");
  assert.equal(byName.crm.backlog.due, 2, "both events wait for crm");
  assert.equal(byName.crm.circuit, "closed");
  assert.equal(byName.other.paused, null);
  assert.equal(byName.other.backlog.due, 0);
  assert.equal(byName.crm.url, crm.url);

  const resumed = await call(server, "POST", "/admin/destinations/crm/resume");
  assert.deepEqual(resumed.body, { destination: "crm", resumed: true });
  await waitFor(() => crm.received.length === 2, "both waiting events delivered to crm");
  assert.deepEqual(crm.received.sort(), [messageEventId("wamid.OP1"), id!].sort());
  assert.deepEqual(
    (await call(server, "POST", "/admin/destinations/crm/resume")).body,
    { destination: "crm", resumed: false },
    "resuming a destination that is not paused changes nothing",
  );
  assert.deepEqual(await server.store.listPausedDestinations(), []);
});

Deno.test("a 410 Gone pauses the destination in the store; once resumed its job is delivered at once", async () => {
  await using gone = startConsumer(410);
  await using temp = await openTempKv();
  const env = destinationsEnv([{ name: "gone", url: gone.url }]);
  const clock = new ManualClock(Date.now());
  const id = messageEventId("wamid.G410");
  {
    await using first = await startTestServer({ kv: temp.kv, clock, env });
    assert.equal((await postDelivery(first.origin, textsDelivery(["wamid.G410"]))).status, 200);
    await waitFor(async () => {
      const pauses = await first.store.listPausedDestinations();
      return pauses.some((pause) => pause.destination === "gone");
    }, "the destination paused in the store");
    const [pause] = await first.store.listPausedDestinations();
    assert.match(pause!.reason, /HTTP 410/);
    assert.ok(
      first.logs.lines.some((line) =>
        line.level === "error" && line.destination === "gone" &&
        /410 Gone: paused until resumed/.test(String(line.msg))
      ),
    );
  }
  gone.status = 200;
  await using server = await startTestServer({ kv: temp.kv, clock, env });
  assert.equal(await jobState(server, id, "gone"), "retrying");
  const listed = await call(server, "GET", "/admin/destinations");
  assert.match(listed.body.destinations[0].paused.reason, /HTTP 410/);
  assert.equal((await call(server, "POST", "/admin/destinations/gone/resume")).status, 200);
  // The manual clock stands still: only a job due at once is delivered.
  await waitFor(async () => await jobState(server, id, "gone") === "delivered", "delivered");
  assert.deepEqual(gone.received, [id, id]);
});

Deno.test("a destination declared paused cannot be resumed through the API (409)", async () => {
  await using consumer = startConsumer(200);
  await using server = await startTestServer({
    clock: new ManualClock(Date.now()),
    env: destinationsEnv([{ name: "held", url: consumer.url, paused: true }]),
  });
  const refused = await call(server, "POST", "/admin/destinations/held/resume");
  assert.equal(refused.status, 409);
  assert.match(refused.body.error, /declared paused; change its declaration/);
  const listed = await call(server, "GET", "/admin/destinations");
  assert.deepEqual(listed.body.destinations[0].paused, {
    by: "declared",
    reason: "declared paused",
  });
});

Deno.test("POST /admin/destinations/:name/jobs/replay replays the jobs matching a state, a kind and a time range", async () => {
  await using consumer = startConsumer(400);
  const start = Date.parse("2026-12-04T10:00:00Z");
  const clock = new ManualClock(start);
  await using server = await startTestServer({
    clock,
    env: destinationsEnv([{ name: "crm", url: consumer.url }]),
  });
  const early = await deliver(server, ["wamid.F1"], "crm", "dead");
  await clock.advance(3_600_000);
  const late = await deliver(server, ["wamid.F2", "wamid.F3"], "crm", "dead");
  consumer.status = 200;
  const path = (query: string) => `/admin/destinations/crm/jobs/replay?${query}`;
  const range = "state=dead&from=2026-12-04T10:30:00Z&to=2026-12-04T11:00:00Z";

  const counted = await call(server, "POST", path(`${range}&dryRun=true`));
  assert.equal(counted.status, 200);
  assert.deepEqual(counted.body, { matched: 2, replayed: 0, busy: 0 });
  assert.deepEqual(
    (await call(server, "POST", path(`${range}&kind=status&dryRun=true`))).body.matched,
    0,
    "no status event in the range",
  );
  const replayed = await call(server, "POST", path(`${range}&kind=message`));
  assert.equal(replayed.status, 202);
  assert.deepEqual(replayed.body, { matched: 2, replayed: 2, busy: 0 });
  await waitFor(async () => {
    const states = await Promise.all(late.map((id) => jobState(server, id, "crm")));
    return states.every((state) => state === "delivered");
  }, "the two later jobs delivered");
  assert.equal(await jobState(server, early[0]!, "crm"), "dead", "outside the range");
  assert.equal(consumer.received.length, 5, "three first attempts and two replays");

  const bad = await call(server, "POST", path("from=yesterday"));
  assert.equal(bad.status, 400);
  assert.match(bad.body.error, /"from" must be an ISO 8601 time with a zone/);
  const local = await call(server, "POST", path("to=2026-12-04T10:00:00"));
  assert.equal(local.status, 400, "a time without a zone is refused, not read in the server's");
});

Deno.test("GET /admin/events/:id says the event is done only once its jobs are delivered or dead", async () => {
  await using consumer = startConsumer(200);
  await using server = await startTestServer({
    clock: new ManualClock(Date.now()),
    env: destinationsEnv([{ name: "crm", url: consumer.url }]),
  });
  assert.equal((await call(server, "POST", "/admin/destinations/crm/pause")).status, 200);
  assert.equal((await postDelivery(server.origin, textsDelivery(["wamid.DN1"]))).status, 200);
  const id = messageEventId("wamid.DN1");
  const path = `/admin/events/${encodeURIComponent(id)}`;
  await waitFor(async () => (await call(server, "GET", path)).body.state === "done", "handled");
  const waiting = await call(server, "GET", path);
  assert.equal(waiting.body.done, false, "its handlers ran, its job still waits");
  assert.deepEqual(waiting.body.jobCounts, { delivered: 0, dead: 0, waiting: 1 });

  await call(server, "POST", "/admin/destinations/crm/resume");
  await waitFor(async () => (await call(server, "GET", path)).body.done === true, "done");
  assert.deepEqual((await call(server, "GET", path)).body.jobCounts, {
    delivered: 1,
    dead: 0,
    waiting: 0,
  });
});
