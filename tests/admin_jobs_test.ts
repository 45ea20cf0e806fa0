/**
 * The admin API's delivery jobs through the whole app: `DESTINATIONS` pointing at consumers on
 * 127.0.0.1, jobs listed per destination and state across pages, shown with their event, and
 * recovered by replaying one dead job or all of them. The clock is manual and never advanced, so
 * a deliverer only looks for due jobs when something wakes it: a replay that does not wake the
 * deliverers is never delivered.
 *
 * @module
 */
import assert from "node:assert/strict";
import { messageEventId } from "../src/events/event_ids.ts";
import { ManualClock } from "../src/ops/clock.ts";
import { textsDelivery } from "./deliveries.ts";
import { call, deliver, destinationsEnv, startConsumer } from "./admin_consumers.ts";
import { postDelivery, startTestServer, waitFor } from "./support.ts";

function jobsPath(name: string, query = ""): string {
  return `/admin/destinations/${name}/jobs${query}`;
}

Deno.test("GET /admin/destinations/:name/jobs lists by state, page by page with a cursor", async () => {
  await using consumer = startConsumer(400);
  await using server = await startTestServer({
    clock: new ManualClock(Date.now()),
    env: destinationsEnv([{ name: "crm", url: consumer.url }]),
  });
  const dead = await deliver(server, ["wamid.A1", "wamid.A2", "wamid.A3"], "crm", "dead");
  consumer.status = 200;
  const [delivered] = await deliver(server, ["wamid.B1"], "crm", "delivered");

  const first = await call(server, "GET", jobsPath("crm", "?state=dead&limit=2"));
  assert.equal(first.status, 200);
  assert.equal(first.body.jobs.length, 2);
  assert.equal(typeof first.body.cursor, "string");
  const second = await call(
    server,
    "GET",
    jobsPath("crm", `?state=dead&limit=2&cursor=${encodeURIComponent(first.body.cursor)}`),
  );
  assert.equal(second.status, 200);
  assert.equal(second.body.jobs.length, 1);
  assert.equal(second.body.cursor, undefined);
  const listed = [...first.body.jobs, ...second.body.jobs];
  assert.deepEqual(listed.map((job) => job.eventId).sort(), [...dead].sort());
  for (const job of listed) {
    assert.equal(job.destination, "crm");
    assert.equal(job.state, "dead");
    assert.equal(job.attempts, 1);
    assert.equal(job.dueAt, null);
    assert.match(job.lastError, /HTTP 400/);
    assert.match(job.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.match(job.history[0].at, /Z$/);
  }

  const deliveredPage = await call(server, "GET", jobsPath("crm", "?state=delivered"));
  assert.deepEqual(deliveredPage.body.jobs.map((job: { eventId: string }) => job.eventId), [
    delivered,
  ]);
  const all = await call(server, "GET", jobsPath("crm"));
  assert.equal(all.body.jobs.length, 4);

  for (const query of ["?state=lost", "?limit=0", "?limit=1001", "?limit=x", "?cursor=nonsense"]) {
    const bad = await call(server, "GET", jobsPath("crm", query));
    assert.equal(bad.status, 400, query);
    assert.equal(typeof bad.body.error, "string", query);
  }
  assert.match(
    (await call(server, "GET", jobsPath("crm", "?state=lost"))).body.error,
    /"state" must be one of pending, delivering, delivered, retrying, dead, got "lost"/,
  );
});

Deno.test("GET /admin/events/:id shows the event's job per destination", async () => {
  await using refusing = startConsumer(400);
  await using accepting = startConsumer(200);
  await using server = await startTestServer({
    clock: new ManualClock(Date.now()),
    env: destinationsEnv([
      { name: "refusing", url: refusing.url },
      { name: "accepting", url: accepting.url },
    ]),
  });
  const [id] = await deliver(server, ["wamid.E1"], "refusing", "dead");
  await waitFor(async () => {
    const jobs = await server.store.getJobs(id!);
    return jobs.some((job) => job.destination === "accepting" && job.state === "delivered");
  }, "the job to accepting delivered");

  const response = await call(server, "GET", `/admin/events/${encodeURIComponent(id!)}`);
  assert.equal(response.status, 200);
  const jobs = response.body.jobs as { destination: string; state: string; eventId: string }[];
  assert.deepEqual(
    jobs.map((job) => [job.destination, job.state, job.eventId]).sort(),
    [["accepting", "delivered", id], ["refusing", "dead", id]],
  );
});

Deno.test("replaying a dead job delivers it again once the consumer accepts", async () => {
  await using consumer = startConsumer(400);
  await using server = await startTestServer({
    clock: new ManualClock(Date.now()),
    env: destinationsEnv([{ name: "crm", url: consumer.url }]),
  });
  const [id] = await deliver(server, ["wamid.R1"], "crm", "dead");
  consumer.status = 200;

  const path = `/admin/destinations/crm/jobs/${encodeURIComponent(id!)}/replay`;
  const replay = await call(server, "POST", path);
  assert.equal(replay.status, 202);
  assert.deepEqual(replay.body, { replayed: id, destination: "crm" });
  await waitFor(
    async () => (await server.store.getJobs(id!))[0]?.state === "delivered",
    "delivered",
  );
  assert.deepEqual(consumer.received, [id, id]);
  const [job] = await server.store.getJobs(id!);
  assert.equal(job!.lastError, undefined);
  const view = await call(server, "GET", jobsPath("crm", "?state=delivered"));
  assert.equal(view.body.jobs[0].attempts, 2, "attempts count the one before the replay");

  const unknown = await call(
    server,
    "POST",
    `/admin/destinations/crm/jobs/${encodeURIComponent(messageEventId("wamid.none"))}/replay`,
  );
  assert.equal(unknown.status, 404);
  assert.match(unknown.body.error, /unknown or expired/);
});

Deno.test("replaying a destination's dead jobs delivers every one of them again", async () => {
  await using consumer = startConsumer(400);
  await using other = startConsumer(400);
  await using server = await startTestServer({
    clock: new ManualClock(Date.now()),
    env: destinationsEnv([{ name: "crm", url: consumer.url }, { name: "other", url: other.url }]),
  });
  const ids = await deliver(server, ["wamid.M1", "wamid.M2"], "crm", "dead");
  await deliver(server, ["wamid.M1", "wamid.M2"], "other", "dead");
  consumer.status = 200;

  const replay = await call(server, "POST", "/admin/destinations/crm/dead-jobs/replay");
  assert.equal(replay.status, 202);
  assert.deepEqual(replay.body, { replayed: 2 });
  await waitFor(async () => {
    const jobs = await Promise.all(ids.map((id) => server.store.getJobs(id)));
    return jobs.every((list) =>
      list.some((job) => job.destination === "crm" && job.state === "delivered")
    );
  }, "every job to crm delivered");
  assert.equal(consumer.received.length, 4);
  // Only that destination's jobs were replayed.
  const otherDead = await call(server, "GET", jobsPath("other", "?state=dead"));
  assert.equal(otherDead.body.jobs.length, 2);
  assert.deepEqual(
    (await call(server, "POST", "/admin/destinations/crm/dead-jobs/replay")).body,
    { replayed: 0 },
  );
});

Deno.test("replaying a job a deliverer holds answers 409", async () => {
  let requests = 0;
  const { promise: released, resolve: release } = Promise.withResolvers<void>();
  await using consumer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      await req.text();
      requests++;
      await released;
      return new Response(null, { status: 204 });
    },
  );
  // Disposed before the consumer, whose shutdown waits for its handlers.
  await using _answer = { [Symbol.asyncDispose]: () => Promise.resolve(release()) };
  await using server = await startTestServer({
    clock: new ManualClock(Date.now()),
    env: destinationsEnv([{ name: "slow", url: `http://127.0.0.1:${consumer.addr.port}/` }]),
  });
  const id = messageEventId("wamid.L1");
  assert.equal((await postDelivery(server.origin, textsDelivery(["wamid.L1"]))).status, 200);
  await waitFor(() => requests === 1, "the request in flight");

  const path = `/admin/destinations/slow/jobs/${encodeURIComponent(id)}/replay`;
  const busy = await call(server, "POST", path);
  assert.equal(busy.status, 409);
  assert.match(busy.body.error, /a deliverer is delivering it now/);
  assert.equal((await server.store.getJobs(id))[0]!.state, "delivering");
});

Deno.test("job endpoints answer 404 for a destination not declared and 401 without the token", async () => {
  await using consumer = startConsumer(200);
  await using server = await startTestServer({
    clock: new ManualClock(Date.now()),
    env: destinationsEnv([{ name: "crm", url: consumer.url }]),
  });
  const id = encodeURIComponent(messageEventId("wamid.U1"));
  const endpoints: [string, string][] = [
    ["POST", "/admin/destinations/{name}/pause"],
    ["POST", "/admin/destinations/{name}/resume"],
    ["GET", "/admin/destinations/{name}/jobs"],
    ["POST", "/admin/destinations/{name}/jobs/replay"],
    ["POST", `/admin/destinations/{name}/jobs/${id}/replay`],
    ["POST", "/admin/destinations/{name}/dead-jobs/replay"],
  ];
  for (const [method, path] of endpoints) {
    const unknown = await call(server, method, path.replace("{name}", "nowhere"));
    assert.equal(unknown.status, 404, `${method} ${path}`);
    assert.equal(unknown.body.error, `Destination "nowhere" is not declared`);
    const anonymous = await call(server, method, path.replace("{name}", "crm"), {});
    assert.equal(anonymous.status, 401, `${method} ${path}`);
    const wrong = await call(server, method, path.replace("{name}", "crm"), {
      Authorization: "Bearer wrong",
    });
    assert.equal(wrong.status, 401, `${method} ${path}`);
  }
});
