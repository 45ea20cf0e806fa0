/**
 * `deno serve --parallel` (`serve.ts`): several isolates in one process, each with its own app and
 * worker, on one Deno KV file, under the start task's permission flags.
 */
import assert from "node:assert/strict";
import {
  isolateOf,
  ROOT,
  serveArgs,
  serviceEnv,
  startService,
  withDataDir,
  withoutIsolatePrefix,
} from "./service_process.ts";
import { readCounts } from "./counting_dispatcher.ts";
import { postSigned, textDelivery } from "./signed_deliveries.ts";
import { waitFor } from "./support.ts";
import { loadConfig } from "../src/config_env.ts";

/** The isolates that wrote a line containing `text`. */
function isolatesWriting(output: string[], text: string): Set<number> {
  const isolates = new Set<number>();
  for (const line of output) {
    const isolate = isolateOf(line);
    if (isolate !== undefined && line.includes(text)) isolates.add(isolate);
  }
  return isolates;
}

Deno.test("deno serve --parallel: two isolates on one KV file handle every event once", async () => {
  await withDataDir(async (kvPath) => {
    const args = await serveArgs({ entry: "tests/counting_serve.ts", port: 0, isParallel: true });
    await using service = await startService({ ...serviceEnv(kvPath), DENO_JOBS: "2" }, args);
    await waitFor(
      () => isolatesWriting(service.output, '"msg":"test isolate ready"').size === 2,
      "both isolates started",
      15_000,
    );
    const deliveries = await Promise.all(
      Array.from({ length: 100 }, (_, n) => textDelivery(n, "SERVE")),
    );
    // Every delivery twice at once, as Meta's retry of a slow acknowledgement would.
    const statuses = await Promise.all(
      deliveries.flatMap((d) => [postSigned(service.origin, d), postSigned(service.origin, d)]),
    );
    assert.ok(statuses.every((s) => s === 200), `statuses: ${[...new Set(statuses)]}`);
    await waitFor(
      async () => {
        const { states } = await readCounts(new URL(kvPath, ROOT).pathname);
        return states.size === 100 && [...states.values()].every((s) => s === "done");
      },
      "all 100 events done",
      20_000,
    );
    const { code, ms } = await service.stop("SIGTERM");
    assert.equal(code, 0, service.output.slice(-20).join("\n"));
    // The exit code tells a clean stop from the forced one (exit 1 at 4.5 s); the bound in real
    // time leaves a busy machine room.
    assert.ok(ms < 10_000, `stopped in ${ms} ms`);
    assert.equal(
      isolatesWriting(service.output, '"msg":"stopped"').size,
      2,
      "both isolates drained",
    );

    const { runs, effects } = await readCounts(new URL(kvPath, ROOT).pathname);
    assert.equal(runs.size, 100);
    assert.ok([...runs.values()].every((n) => n === 1n), "no handler ran twice");
    assert.equal(effects.size, 100);
    for (const d of deliveries) assert.ok(effects.has(d.id), `${d.id} handled`);
    const served = isolatesWriting(service.output, '"msg":"request"');
    assert.equal(served.size, 2, "both isolates answered deliveries");
    // deno-lint-ignore no-console
    console.log(
      `serve --parallel test: 200 posts answered by ${served.size} isolates, 100 events ` +
        `handled by ${new Set(effects.values()).size} isolate(s), none twice`,
    );
  });
});

Deno.test("deno task serve listens on HOST and PORT, with the configuration's defaults when unset", async () => {
  const { tasks } = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const serve = tasks.serve as string;
  // Unset or empty, they default as the configuration does.
  const defaults = loadConfig({ APP_SECRET: "test-app-secret-0123456789", VERIFY_TOKEN: "t" })
    .config;
  assert.match(serve, new RegExp(`test -n "\\$PORT" \\|\\| export PORT=${defaults.port};`));
  assert.match(serve, new RegExp(`test -n "\\$HOST" \\|\\| export HOST=${defaults.host};`));
  assert.match(serve, / deno serve --parallel --host "\$HOST" --port "\$PORT" /);

  await withDataDir(async (kvPath) => {
    const env = { ...serviceEnv(kvPath), DENO_JOBS: "1" }; // HOST 127.0.0.1, PORT 0
    await using service = await startService(env, ["task", "serve"]);
    const listening = service.output.map(withoutIsolatePrefix).find((line) =>
      line.includes('"msg":"listening"')
    );
    const { hostname, port } = JSON.parse(listening!);
    assert.equal(hostname, "127.0.0.1");
    assert.notEqual(port, defaults.port);
    const health = await fetch(`${service.origin}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    const { code } = await service.stop("SIGTERM");
    assert.equal(code, 0, service.output.join("\n"));
  });
});
