/**
 * `deno task run <entry>`: a user's own entry runs with exactly the start task's flags, written
 * once in deno.json's `run` task, which `start` and `dev` call too.
 *
 * @module
 */
import assert from "node:assert/strict";
import { postSigned, textDelivery } from "./signed_deliveries.ts";
import { serviceEnv, startService, taskCommand, withDataDir } from "./service_process.ts";
import { waitFor } from "./support.ts";

/** The test's own entry, relative to the project root. */
const OWN_ENTRY = "tests/fixtures/own_entry.ts";

/** The fields of the first JSON log line whose `msg` is `msg`. */
function logLine(output: string[], msg: string): Record<string, unknown> | undefined {
  const line = output.find((line) => line.includes(`"msg":${JSON.stringify(msg)}`));
  return line === undefined ? undefined : JSON.parse(line);
}

Deno.test("deno task run <entry> serves a user's own entry with the start task's flags, not -A", async () => {
  await withDataDir(async (kvPath) => {
    // HOME is set in the child's environment (inherited), yet the entry may not read it.
    assert.ok(Deno.env.get("HOME"), "the test needs HOME set to show it is withheld");
    // Not `await using`: its SIGKILL would end `deno task` and orphan the entry it started, while
    // SIGTERM is passed on to the entry, which drains and exits.
    const service = await startService(serviceEnv(kvPath), ["task", "run", OWN_ENTRY]);
    try {
      // Outside the start task's permissions: denied, as under `deno task start`.
      const probes = logLine(service.output, "own entry permissions");
      assert.equal(
        probes?.readEnvHome,
        "NotCapable",
        "HOME is not in the start task's --allow-env",
      );
      assert.equal(probes?.readDenoJson, "NotCapable", "deno.json is outside ./data");

      const health = await fetch(`${service.origin}/healthz`);
      assert.equal(health.status, 200);
      await health.body?.cancel();

      const delivery = await textDelivery(1, "OWN");
      assert.equal(await postSigned(service.origin, delivery), 200);
      const wamid = delivery.id.slice("message:".length);
      await waitFor(
        () => logLine(service.output, "own handler ran")?.wamid === wamid,
        "the entry's own handler to log the message",
        10_000,
      );

      const { code } = await service.stop("SIGTERM");
      assert.equal(code, 0, service.output.join("\n"));

      // `deno task` printed the command it ran (on stderr, read in full once stopped): the start
      // task's, with the entry in place of main.ts.
      const start = await taskCommand("start");
      assert.ok(start.endsWith(" main.ts"), start);
      const flags = start.slice("deno run ".length, -" main.ts".length);
      assert.ok(
        service.output.includes(`Task run deno run ${flags} '${OWN_ENTRY}'`),
        service.output.join("\n"),
      );
    } finally {
      await service.stop("SIGTERM");
    }
  });
});
