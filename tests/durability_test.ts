/**
 * The promise of the product, tested with real subprocesses on one Deno KV file: an event that was
 * acknowledged is never lost, and Meta's retries never run a handler twice.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  ROOT,
  serviceEnv,
  startService,
  startTaskArgsFor,
  withDataDir,
} from "./service_process.ts";
import { readCounts } from "./counting_dispatcher.ts";
import { postSigned, textDelivery } from "./signed_deliveries.ts";
import { waitFor } from "./support.ts";

Deno.test({
  name: "SIGKILL mid-stream: every acknowledged event is processed once after a restart",
  async fn() {
    await withDataDir(async (kvPath) => {
      const args = await startTaskArgsFor("tests/counting_service.ts", ["--handler-ms=5"]);
      const env = serviceEnv(kvPath, { LEASE_MS: "1000", WORKER_CONCURRENCY: "16" });
      const kvFile = new URL(kvPath, ROOT).pathname;
      const deliveries = await Promise.all(
        Array.from({ length: 300 }, (_, n) => textDelivery(n, "DUR")),
      );
      const acknowledged = new Set<string>();

      const first = await startService(env, args);
      let sent = 0;
      const sender = (async () => {
        // Eight connections, like Meta's concurrent deliveries.
        await Promise.all(Array.from({ length: 8 }, async () => {
          while (sent < deliveries.length) {
            const d = deliveries[sent++]!;
            if ((await postSigned(first.origin, d)) === 200) acknowledged.add(d.id);
          }
        }));
      })();
      await waitFor(() => acknowledged.size >= 120, "the first 120 acknowledgements");
      await first.stop("SIGKILL");
      await sender;
      const lost = deliveries.filter((d) => !acknowledged.has(d.id));
      assert.ok(lost.length > 0, "the kill interrupted the stream");

      // The KV file as the kill left it. A run counts itself before its handler does anything, and
      // its result is stored with the record's state: a run that counted itself but whose event is
      // not "done" was in flight at the kill (its handler running, or its result not yet stored).
      const atKill = await readCounts(kvFile);
      const settledAtKill = deliveries.filter((d) => atKill.states.get(d.id) === "done");
      const inFlightAtKill = deliveries.filter((d) =>
        (atKill.runs.get(d.id) ?? 0n) > 0n && atKill.states.get(d.id) !== "done"
      );
      for (const d of settledAtKill) assert.equal(atKill.runs.get(d.id), 1n, `${d.id} ran once`);
      assert.ok(settledAtKill.length > 0, "some events were done before the kill");

      const second = await startService(env, args);
      // Meta resends what was not acknowledged, and retries some that were: events done before the
      // kill, and every event in flight at it.
      const resent = [...lost, ...settledAtKill.slice(0, 20), ...inFlightAtKill];
      for (const d of resent) assert.equal(await postSigned(second.origin, d), 200);
      await waitFor(
        async () => {
          const { states } = await readCounts(kvFile);
          return states.size === deliveries.length &&
            [...states.values()].every((s) => s === "done");
        },
        "all 300 events done",
        30_000,
      );
      const { code } = await second.stop("SIGTERM");
      assert.equal(code, 0);

      const { runs, effects } = await readCounts(kvFile);
      assert.equal(effects.size, deliveries.length, "every event's effect is recorded");
      const inFlight = new Set(inFlightAtKill.map((d) => d.id));
      const repeated: string[] = [];
      for (const d of deliveries) {
        assert.ok(effects.has(d.id), `${d.id} processed`);
        const total = runs.get(d.id) ?? 0n;
        if (inFlight.has(d.id)) {
          // Its lease ran out after the kill, and the next process ran it again: once at most.
          assert.ok(
            total === 1n || total === 2n,
            `${d.id}, in flight at the kill, ran ${total} times`,
          );
          if (total === 2n) repeated.push(d.id);
        } else {
          // Settled before the kill, or not started by then: one run, whatever Meta resent.
          const state = atKill.states.get(d.id) ?? "not recorded";
          assert.equal(
            total,
            1n,
            `${d.id} (${state} at the kill, not in flight) ran ${total} times`,
          );
        }
      }
      // deno-lint-ignore no-console
      console.log(
        `crash test: ${acknowledged.size} acknowledged before SIGKILL, ${settledAtKill.length} ` +
          `done by then, ${inFlightAtKill.length} in flight, ${resent.length} resent; ` +
          `${repeated.length} in-flight runs repeated, no other repeat, ${effects.size} effects, ` +
          `none lost`,
      );
    });
  },
});

Deno.test("two service processes on one KV file handle every event once", async () => {
  await withDataDir(async (kvPath) => {
    const args = await startTaskArgsFor("tests/counting_service.ts");
    const env = serviceEnv(kvPath);
    await using a = await startService(env, args);
    await using b = await startService(env, args);
    const deliveries = await Promise.all(
      Array.from({ length: 100 }, (_, n) => textDelivery(n, "DUR")),
    );
    // Every delivery reaches both processes at once, as copies for two subscribed apps would.
    const statuses = await Promise.all(
      deliveries.flatMap((d) => [postSigned(a.origin, d), postSigned(b.origin, d)]),
    );
    assert.ok(statuses.every((s) => s === 200), `statuses: ${[...new Set(statuses)]}`);
    const kvUrl = new URL(kvPath, ROOT);
    await waitFor(
      async () => {
        const { states } = await readCounts(kvUrl.pathname);
        return states.size === 100 && [...states.values()].every((s) => s === "done");
      },
      "all 100 events done",
      20_000,
    );
    assert.equal((await a.stop("SIGTERM")).code, 0);
    assert.equal((await b.stop("SIGTERM")).code, 0);
    const { runs, effects } = await readCounts(kvUrl.pathname);
    assert.equal(runs.size, 100);
    assert.ok([...runs.values()].every((n) => n === 1n), "no handler ran twice");
    const byProcess = new Set(effects.values());
    assert.equal(effects.size, 100);
    // deno-lint-ignore no-console
    console.log(
      `two-process test: 100 events, handled by ${byProcess.size} process(es), none twice`,
    );
  });
});

Deno.test("a process with WORKER_CONCURRENCY=0 only records; a process with a worker runs them", async () => {
  await withDataDir(async (kvPath) => {
    const args = await startTaskArgsFor("tests/counting_service.ts");
    await using intake = await startService(serviceEnv(kvPath, { WORKER_CONCURRENCY: "0" }), args);
    const deliveries = await Promise.all(
      Array.from({ length: 20 }, (_, n) => textDelivery(n, "ROLE")),
    );
    const statuses = await Promise.all(deliveries.map((d) => postSigned(intake.origin, d)));
    assert.ok(statuses.every((s) => s === 200), `statuses: ${[...new Set(statuses)]}`);
    const ready = await fetch(`${intake.origin}/readyz`);
    assert.equal(ready.status, 200, await ready.text());
    assert.ok(
      intake.output.some((line) => line.includes('"worker":"none (WORKER_CONCURRENCY=0)"')),
    );
    // Over a second passes (the worker's poll interval): nothing in that process runs a handler.
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const kvFile = new URL(kvPath, ROOT).pathname;
    const before = await readCounts(kvFile);
    assert.equal(before.runs.size, 0, "no handler ran");
    assert.ok([...before.states.values()].every((s) => s === "pending"));

    await using worker = await startService(serviceEnv(kvPath), args);
    await waitFor(async () => {
      const { states } = await readCounts(kvFile);
      return states.size === 20 && [...states.values()].every((s) => s === "done");
    }, "all 20 events done by the second process");
    assert.equal((await intake.stop("SIGTERM")).code, 0);
    assert.equal((await worker.stop("SIGTERM")).code, 0);
    const { runs } = await readCounts(kvFile);
    assert.ok([...runs.values()].every((n) => n === 1n), "each handler ran once");
  });
});
