/**
 * Takes the README's console screenshots (`docs/console-overview.png`, `docs/console-events.png`)
 * from a service with a few hours of history: events of several kinds and types recorded through
 * the store at past minutes (the overview's chart reads the event log), settled as a running
 * service would have (done, a few dead), then a few deliveries posted over HTTP so the latest
 * figures are real. Run by hand when the console's look changes:
 *
 * `deno run --allow-all tools/console_screenshots.ts`
 *
 * Needs Chromium at `/usr/bin/chromium` (`apt-get install -y chromium`).
 *
 * @module
 */
import puppeteer from "puppeteer-core";
import { type App, createApp } from "../src/app.ts";
import { loadConfig } from "../src/config_env.ts";
import { parseDelivery } from "../src/events/events.ts";
import { systemClock } from "../src/ops/clock.ts";
import { createLogger } from "../src/ops/log.ts";
import { createKvStore } from "../src/store/kv/store.ts";
import { signBody } from "../src/webhook/signature.ts";

/** Where Debian's `chromium` package puts the browser. */
const CHROMIUM = "/usr/bin/chromium";
/** Where the README's images live. */
const DOCS = new URL("../docs/", import.meta.url);
/** History recorded before the screenshots: the chart's whole window. */
const HISTORY_MINUTES = 180;
const ADMIN_TOKEN = "screenshots-admin-token-0123456789";
const APP_SECRET = "screenshots-app-secret-0123456789";
const DAY_MS = 86_400_000;
/** The types of the messages posted over HTTP at the end. */
const LIVE_TYPES = ["image", "reaction", "text"];
/** Deliveries posted over HTTP at the end, one message each. */
const LIVE_DELIVERIES = 3;
/** The message types of the history, in the proportions a shop's number sees them. */
const TYPES = ["text", "text", "text", "text", "image", "reaction", "location", "button"];

// deno-lint-ignore no-console
const print = console.log;

/** A seeded pseudo-random source, so that every run draws the same history. */
function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

/** A message of `type` in the shape Meta sends it. */
function message(id: string, type: string, seconds: number): Record<string, unknown> {
  const base = { from: "5511999990000", id, timestamp: String(seconds), type };
  switch (type) {
    case "image":
      return { ...base, image: { id: "1479537139650973", mime_type: "image/jpeg", sha256: "x" } };
    case "reaction":
      return {
        ...base,
        reaction: { message_id: "wamid.HBgNNTUxMTk5OTk5MDAwMBUCABIYFAA=", emoji: "👍" },
      };
    case "location":
      return { ...base, location: { latitude: -23.55, longitude: -46.63 } };
    case "button":
      return { ...base, button: { payload: "ORDER_STATUS", text: "Where is my order?" } };
    default:
      return { ...base, text: { body: "Hello, is the shop open today?" } };
  }
}

/** A delivery of one minute's messages and statuses. */
function minuteDelivery(key: string, types: string[], statuses: number, seconds: number): unknown {
  return {
    object: "whatsapp_business_account",
    entry: [{
      id: "102290000000001",
      changes: [{
        field: "messages",
        value: {
          messaging_product: "whatsapp",
          metadata: { display_phone_number: "15550001111", phone_number_id: "106540000000002" },
          contacts: [{ profile: { name: "Ana 🌻" }, wa_id: "5511999990000" }],
          messages: types.map((type, i) =>
            message(`wamid.HBgNNTUxMTk5OTk5MDAwMBUCABIY${key}M${i}`, type, seconds)
          ),
          statuses: Array.from({ length: statuses }, (_, i) => ({
            id: `wamid.HBgNNTUxMTk5OTk5MDAwMBUCABIY${key}S${i}`,
            status: i % 3 === 0 ? "read" : "delivered",
            timestamp: String(seconds),
            recipient_id: "5511999990000",
          })),
        },
      }],
    }],
  };
}

async function main(): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "wa-webhook-screenshots-" });
  const kvPath = `${work}/console.kv`;
  const { config } = loadConfig({
    APP_SECRET,
    VERIFY_TOKEN: "screenshots-verify-token-0123456789",
    ADMIN_TOKEN,
    KV_PATH: kvPath,
    LOG_LEVEL: "warn",
    DESTINATIONS: JSON.stringify([{
      name: "warehouse",
      url: "http://127.0.0.1:9/hook",
      secrets: [`whsec_${btoa("0123456789abcdef0123456789abcdef")}`],
      paused: true,
    }]),
  });
  const kv = await Deno.openKv(kvPath);
  const store = createKvStore(kv, {
    dedupTtlMs: 8 * DAY_MS,
    retentionMs: 7 * DAY_MS,
    leaseMs: 15_000,
  });
  const random = seeded(18);
  let server: Deno.HttpServer<Deno.NetAddr> | undefined;
  let app: App | undefined;
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--headless=new"],
  });
  try {
    // A day's rhythm over three hours: quiet, a busy spell, a short outage, then steady.
    const end = Date.now();
    let recorded = 0;
    for (let minute = HISTORY_MINUTES; minute >= 1; minute--) {
      const now = end - minute * 60_000 + Math.floor(random() * 50_000);
      const hour = (HISTORY_MINUTES - minute) / 60;
      const isOutage = minute > 70 && minute <= 82;
      const level = isOutage ? 0 : 4 + 10 * Math.max(0, Math.sin(hour * 1.6)) + 6 * random();
      const messages = Math.round(level);
      const types = Array.from(
        { length: messages },
        () => TYPES[Math.floor(random() * TYPES.length)]!,
      );
      const delivery = minuteDelivery(
        `H${minute}`,
        types,
        minute === 1 ? 0 : Math.round(level * 0.6),
        Math.floor(now / 1000),
      );
      const { events } = parseDelivery(delivery);
      if (events.length === 0) continue;
      const outcome = await store.recordEvents(events, {
        now,
        lease: { count: events.length, until: now + 60_000 },
      });
      await Promise.all(outcome.leased.map((claim, n) => {
        // A few dead letters, one of them among the newest rows.
        const isDead = (minute % 37 === 0 && n === 0) || (minute === 1 && n === events.length - 1);
        return store.settle(claim, {
          state: isDead ? "dead" : "done",
          startedAt: now,
          endedAt: now + 12,
          completedHandlers: isDead ? [] : ["crm"],
          ...(isDead ? { error: "crm: the CRM answered 422: unknown customer" } : {}),
        });
      }));
      recorded += events.length;
    }
    print(`${recorded} events recorded over the last ${HISTORY_MINUTES} min`);

    app = await createApp({
      config,
      store,
      clock: systemClock,
      logger: createLogger({ level: "warn" }),
    });
    app.worker.start();
    server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
    const origin = `http://127.0.0.1:${server.addr.port}`;
    // The last minute arrives over HTTP: the acknowledgement latency and last delivery are real.
    const live: string[] = [];
    for (let n = 0; n < LIVE_DELIVERIES; n++) {
      const body = new TextEncoder().encode(JSON.stringify(
        minuteDelivery(
          `LIVE${n}`,
          [LIVE_TYPES[n % LIVE_TYPES.length]!],
          0,
          Math.floor(Date.now() / 1000),
        ),
      ));
      const response = await fetch(`${origin}/webhook/whatsapp`, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          "X-Hub-Signature-256": await signBody(APP_SECRET, body),
        },
        body,
      });
      await response.body?.cancel();
      if (response.status !== 200) throw new Error(`Delivery answered ${response.status}`);
      live.push(
        ...parseDelivery(JSON.parse(new TextDecoder().decode(body))).events.map((e) => e.id),
      );
    }
    // The worker handles them before the pictures are taken: the newest rows read `done`.
    const deadline = Date.now() + 10_000;
    while (
      (await Promise.all(live.map((id) => store.getEvent(id)))).some((s) =>
        s?.record.state !== "done"
      )
    ) {
      if (Date.now() > deadline) {
        throw new Error("The worker did not handle the live deliveries in 10 s");
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

    const page = await browser.newPage();
    await page.setViewport({ width: 1100, height: 800 });
    await page.goto(`${origin}/console/sign-in`);
    await page.type("input[name=token]", ADMIN_TOKEN);
    await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
    await page.screenshot({ path: new URL("console-overview.png", DOCS).pathname, fullPage: true });
    await page.goto(`${origin}/console/events`);
    await page.screenshot({ path: new URL("console-events.png", DOCS).pathname });
    print("docs/console-overview.png and docs/console-events.png written");
  } finally {
    await browser.close();
    await server?.shutdown();
    await app?.worker.stop(1_000);
    store.close();
    await Deno.remove(work, { recursive: true });
  }
}

if (import.meta.main) await main();
