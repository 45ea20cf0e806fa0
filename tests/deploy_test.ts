/**
 * `main.ts` as Deno Deploy runs it: every permission, no flags of ours, `DENO_DEPLOYMENT_ID` set
 * and `KV_PATH` unset. Locally, `Deno.openKv()` without a path opens a database in `DENO_DIR`'s
 * origin storage, so the subprocess gets a temporary `DENO_DIR` (sharing the npm cache) and never
 * touches the developer's own databases; `./data` is denied to it, so falling back to the local
 * default file would fail the test instead of writing there.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startService } from "./service_process.ts";
import { postSigned, textDelivery } from "./signed_deliveries.ts";
import { kvStore, TEST_ADMIN_TOKEN, TEST_SECRET, TEST_VERIFY_TOKEN, waitFor } from "./support.ts";

/** Where this Deno keeps npm packages, so the temporary `DENO_DIR` needs no download. */
async function npmCacheDir(): Promise<string> {
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return JSON.parse(new TextDecoder().decode(stdout)).npmCache;
}

/** The KV files under `dir` (the origin storage puts each in its own hashed directory). */
async function kvFilesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (path: string): Promise<void> => {
    for await (const entry of Deno.readDir(path)) {
      const child = join(path, entry.name);
      if (entry.isDirectory) await walk(child);
      else if (entry.name === "kv.sqlite3") found.push(child);
    }
  };
  await walk(dir).catch(() => {});
  return found;
}

Deno.test("on Deno Deploy, main.ts opens the app's KV without a path and sweeps by Deno.cron", async () => {
  const denoDir = await Deno.makeTempDir({ prefix: "wa-webhook-deploy-" });
  try {
    await Deno.symlink(await npmCacheDir(), join(denoDir, "npm"));
    const env = {
      APP_SECRET: TEST_SECRET,
      VERIFY_TOKEN: TEST_VERIFY_TOKEN,
      ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      DENO_DEPLOYMENT_ID: "wa-webhook-test-0123",
      DENO_DIR: denoDir,
    };
    const args = ["run", "--allow-all", "--deny-read=./data", "--deny-write=./data", "main.ts"];
    await using service = await startService(env, args);
    const started = service.output.map((line) => JSON.parse(line)).find((l) => l.msg === "started");
    assert.deepEqual(
      { kv: started?.kv, sweep: started?.sweep, platform: started?.platform },
      { kv: "deploy", sweep: "cron", platform: "deno-deploy" },
      service.output.join("\n"),
    );

    const delivery = await textDelivery(1, "DEPLOY");
    assert.equal(await postSigned(service.origin, delivery), 200);
    const eventUrl = `${service.origin}/admin/events/${encodeURIComponent(delivery.id)}`;
    const admin = { headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` } };
    await waitFor(
      async () => (await (await fetch(eventUrl, admin)).json()).state === "done",
      "the event handled",
    );
    assert.equal((await service.stop("SIGTERM")).code, 0);

    // The event lives in the default database of the origin storage, not in ./data.
    const files = await kvFilesUnder(join(denoDir, "location_data"));
    assert.equal(files.length, 1, `one default database: ${files}`);
    const kv = await Deno.openKv(files[0]);
    try {
      const stored = await kvStore(kv).getEvent(delivery.id);
      assert.equal(stored?.record.state, "done");
    } finally {
      kv.close();
    }
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});
