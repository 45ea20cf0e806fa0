/**
 * The console benchmark (`deno task bench`): with 100,000 events stored in a Deno KV temp file,
 * how long the console's pages take over real loopback HTTP, signed in as an operator. The events
 * are recorded straight through the store's `recordEvents` (as `bench/intake.ts` does for its
 * delivery backlog), spread over the last day, settled as handled (one in every 300
 * dead-lettered, the rest done); the app is served
 * in-process on 127.0.0.1 without its worker, so nothing else runs while the pages are timed.
 *
 * Each page is asked for {@linkcode REPEATS} times after one warm-up request; p50 and p99 are
 * printed against the issue's target of 300 ms for the newest events page, a state filter and an
 * event's page (the overview is printed too, without a target).
 *
 * Usage: `deno run --allow-all bench/console.ts [--events=100000]`.
 *
 * @module
 */
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config_env.ts";
import { parseDelivery } from "../src/events/events.ts";
import { systemClock } from "../src/ops/clock.ts";
import { createLogger } from "../src/ops/log.ts";
import { createKvStore } from "../src/store/kv/store.ts";
import { benchDelivery } from "./deliveries.ts";

/** Events stored before the pages are timed: the issue's figure. */
const EVENTS = Number(Deno.args.find((a) => a.startsWith("--events="))?.split("=")[1] ?? 100_000);
/** Events per recorded delivery (one `recordEvents` call), as a busy number's deliveries carry. */
const BATCH = 100;
/** Every this many batches, the batch's first event is dead-lettered: 334 of 100,000. */
const DEAD_EVERY_BATCHES = 3;
/** The events are spread over this much of the past, so the overview's chart reads 3 hours' worth. */
const SPREAD_MS = 24 * 3_600_000;
/** Requests timed per page, after one warm-up. */
const REPEATS = 20;
/** The issue's target for each timed page. */
const TARGET_MS = 300;
const ADMIN_TOKEN = "bench-admin-token-0123456789";
const DAY_MS = 86_400_000;

// deno-lint-ignore no-console
const print = console.log;

/** The `q` quantile of `sorted` (ascending), nearest rank. */
function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * q) - 1)] ?? NaN;
}

async function main(): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "wa-webhook-bench-console-" });
  const kvPath = `${work}/console.kv`;
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1];
  print(`# console benchmark, ${new Date().toISOString()}`);
  print(
    `# machine: ${
      cpu ?? "unknown cpu"
    }, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`,
  );
  const { config } = loadConfig({
    APP_SECRET: "bench-app-secret-0123456789",
    VERIFY_TOKEN: "bench-verify-token-0123456789",
    ADMIN_TOKEN,
    KV_PATH: kvPath,
    LOG_LEVEL: "warn",
  });
  const kv = await Deno.openKv(kvPath);
  const store = createKvStore(kv, {
    dedupTtlMs: 8 * DAY_MS,
    retentionMs: 7 * DAY_MS,
    leaseMs: 15_000,
  });
  let server: Deno.HttpServer<Deno.NetAddr> | undefined;
  try {
    const recordStarted = performance.now();
    const end = Date.now();
    const batches = Math.ceil(EVENTS / BATCH);
    let deadId = "";
    let dead = 0;
    for (let b = 0; b < batches; b++) {
      const now = end - SPREAD_MS + Math.round((b / batches) * SPREAD_MS);
      const { events } = parseDelivery(benchDelivery(`B${b}`, BATCH));
      const outcome = await store.recordEvents(events, {
        now,
        lease: { count: events.length, until: now + 60_000 },
      });
      // Handled as a running service would have: done, but the batch's first one every few.
      const isDead = b % DEAD_EVERY_BATCHES === 0;
      await Promise.all(outcome.leased.map((claim, n) =>
        store.settle(claim, {
          state: isDead && n === 0 ? "dead" : "done",
          startedAt: now,
          endedAt: now + 5,
          completedHandlers: isDead && n === 0 ? [] : ["crm"],
          ...(isDead && n === 0 ? { error: "crm: the CRM refused it (bench)" } : {}),
        })
      ));
      if (isDead) {
        dead++;
        if (b <= batches / 2) deadId = outcome.leased[0]!.record.id;
      }
    }
    print(
      `# ${batches * BATCH} events (${dead} dead) recorded in ${
        ((performance.now() - recordStarted) / 1000).toFixed(1)
      } s, spread over the last ${SPREAD_MS / 3_600_000} h; the worker is not running\n`,
    );

    const app = await createApp({
      config,
      store,
      clock: systemClock,
      logger: createLogger({ level: "warn" }),
    });
    server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
    const origin = `http://127.0.0.1:${server.addr.port}`;
    const signIn = await fetch(`${origin}/console/sign-in`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Origin: origin },
      body: new URLSearchParams({ token: ADMIN_TOKEN }),
      redirect: "manual",
    });
    await signIn.body?.cancel();
    const cookie = (signIn.headers.get("Set-Cookie") ?? "").split(";")[0]!;
    if (signIn.status !== 303 || !cookie) throw new Error(`Sign-in failed: ${signIn.status}`);

    const pages: [label: string, path: string, target: boolean][] = [
      ["newest events page", "/console/events", true],
      ["state filter (state=dead)", "/console/events?state=dead", true],
      [
        "an event's page (a dead one, mid-log)",
        `/console/events/${encodeURIComponent(deadId)}`,
        true,
      ],
      ["overview (no target)", "/console", false],
    ];
    for (const [label, path, hasTarget] of pages) {
      const times: number[] = [];
      let bytes = 0;
      for (let n = 0; n <= REPEATS; n++) {
        const started = performance.now();
        const response = await fetch(`${origin}${path}`, { headers: { Cookie: cookie } });
        const html = await response.text();
        const ms = performance.now() - started;
        if (response.status !== 200) throw new Error(`${path} answered ${response.status}`);
        if (n > 0) times.push(ms); // the first is the warm-up
        bytes = html.length;
      }
      times.sort((a, b) => a - b);
      const p50 = quantile(times, 0.5);
      const p99 = quantile(times, 0.99);
      const verdict = hasTarget ? `: ${p99 <= TARGET_MS ? "met" : "MISSED"}` : "";
      print(
        `${label}: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms` +
          `${hasTarget ? ` (target <= ${TARGET_MS} ms${verdict})` : ""}; ${
            (bytes / 1024).toFixed(0)
          } KB of HTML`,
      );
    }
  } finally {
    await server?.shutdown();
    store.close();
    await Deno.remove(work, { recursive: true });
  }
}

if (import.meta.main) await main();
