/**
 * The console in a real browser: headless Chromium (Debian's `chromium`, installed by `.ci/run`)
 * driven by puppeteer-core. One walk through the pages as an operator would: sign in, watch
 * deliveries posted through the simulator's signing appear without reloading, filter, open one,
 * replay a dead letter until it is `done`, pause a destination. Each page is checked by axe-core
 * (no serious or critical violation) and saved as a screenshot under `test-artifacts/console/`.
 *
 * @module
 */
import assert from "node:assert/strict";
import axe from "axe-core";
import puppeteer, { type Page } from "puppeteer-core";
import { Dispatcher } from "../src/dispatch/dispatcher.ts";
import { PermanentError } from "../src/dispatch/handler_errors.ts";
import { messagesDelivery } from "./deliveries.ts";
import { postDelivery, startTestServer, TEST_ADMIN_TOKEN } from "./support.ts";

/** Where Debian's `chromium` package puts the browser. */
const CHROMIUM = "/usr/bin/chromium";
/** Where the screenshots go (gitignored); README's images are copied from here. */
const ARTIFACTS = new URL("../test-artifacts/console/", import.meta.url);
/** The text message that makes the test's handler fail until it is fixed. */
const FAILING_TEXT = "please fail";

function textDelivery(n: number, body: string): Record<string, unknown> {
  return messagesDelivery({
    contacts: [{ profile: { name: "Ana 🌻" }, wa_id: "5511999990000" }],
    messages: [{
      from: "5511999990000",
      id: `wamid.HBgNNTUxMTk5OTk5MDAwMBUCABIYBROWSER${String(n).padStart(4, "0")}AA==`,
      timestamp: String(Math.floor(Date.now() / 1000)),
      type: "text",
      text: { body },
    }],
  });
}

function eventIdOf(n: number): string {
  return `message:wamid.HBgNNTUxMTk5OTk5MDAwMBUCABIYBROWSER${String(n).padStart(4, "0")}AA==`;
}

/** Runs axe-core in the page; fails on any serious or critical violation. */
async function assertAccessible(page: Page, label: string): Promise<void> {
  await page.addScriptTag({ content: axe.source });
  const violations = await page.evaluate(async () => {
    // deno-lint-ignore no-explicit-any
    const result = await (globalThis as any).axe.run(document);
    // deno-lint-ignore no-explicit-any
    return result.violations.map((v: any) => ({ id: v.id, impact: v.impact, help: v.help }));
  }) as { id: string; impact: string; help: string }[];
  const grave = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(grave, [], `${label}: ${JSON.stringify(grave)}`);
}

async function screenshot(page: Page, name: string): Promise<void> {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: new URL(`${name}.png`, ARTIFACTS).pathname, fullPage: true });
}

Deno.test({
  name: "the console in Chromium: sign in, live events, filter, replay a dead letter, pause",
  // puppeteer keeps its websocket and child process bookkeeping beyond our control; the browser
  // itself is closed in `finally`.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const hasChromium = await Deno.stat(CHROMIUM).then(() => true, () => false);
    assert.ok(
      hasChromium,
      `Chromium is missing at "${CHROMIUM}": install it (apt-get install -y chromium; .ci/run does)`,
    );
    const consumer = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () => new Response("ok"),
    );
    let isBroken = true;
    const dispatcher = new Dispatcher().on("message", ({ event }) => {
      const message = event.message;
      if (isBroken && message.type === "text" && message.text.body === FAILING_TEXT) {
        throw new PermanentError("the CRM refused it (test)");
      }
    }, { name: "crm" });
    await using server = await startTestServer({
      dispatcher,
      env: {
        DESTINATIONS: JSON.stringify([{
          name: "warehouse",
          url: `http://127.0.0.1:${consumer.addr.port}/hook`,
          secrets: [`whsec_${btoa("0123456789abcdef0123456789abcdef")}`],
        }]),
      },
    });
    const browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--headless=new"],
    });
    try {
      const page = await browser.newPage();
      await page.setBypassCSP(true); // axe-core is injected as an inline script
      await page.setViewport({ width: 1100, height: 800 });
      const origin = server.origin;

      // Signing in.
      await page.goto(`${origin}/console`);
      assert.equal(new URL(page.url()).pathname, "/console/sign-in");
      await assertAccessible(page, "sign-in");
      await page.type("input[name=token]", TEST_ADMIN_TOKEN);
      await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
      assert.equal(new URL(page.url()).pathname, "/console");

      // Events appear without reloading.
      assert.equal(
        (await postDelivery(origin, JSON.stringify(textDelivery(1, "hello")))).status,
        200,
      );
      await page.goto(`${origin}/console/events`);
      assert.equal(
        (await postDelivery(origin, JSON.stringify(textDelivery(2, "live!")))).status,
        200,
      );
      await page.waitForFunction(
        (id) => document.querySelector("tbody")?.textContent?.includes(id),
        { timeout: 10_000 },
        eventIdOf(2),
      );
      const failing = JSON.stringify(textDelivery(3, FAILING_TEXT));
      assert.equal((await postDelivery(origin, failing)).status, 200);
      await page.waitForFunction(
        (id) =>
          [...document.querySelectorAll("tbody tr")].some((row) =>
            row.textContent?.includes(id) && row.textContent.includes("dead")
          ),
        { timeout: 10_000 },
        eventIdOf(3),
      );
      await assertAccessible(page, "events");
      await screenshot(page, "events");

      // Filtering by state.
      await page.select("select[name=state]", "dead");
      await Promise.all([page.waitForNavigation(), page.click("form.filters button")]);
      const rows = await page.$$eval("tbody tr", (trs) => trs.map((tr) => tr.textContent ?? ""));
      assert.equal(rows.length, 1);
      assert.ok(rows[0]!.includes(eventIdOf(3)));

      // An event: text hidden until asked for.
      await Promise.all([page.waitForNavigation(), page.click(`tbody a`)]);
      const pre = await page.$eval("pre", (element) => element.textContent ?? "");
      assert.ok(!pre.includes(FAILING_TEXT), "the message text is hidden at first");
      assert.equal(await page.$eval("#done", (element) => element.textContent), "not done");
      await page.click("details summary");
      const revealed = await page.$eval("details pre", (el) => el.textContent ?? "");
      assert.ok(revealed.includes(FAILING_TEXT), "the text shows once asked for");
      await assertAccessible(page, "event");
      await screenshot(page, "event");

      // Recover: the cause is fixed, the dead letter replayed from the recover page.
      isBroken = false;
      await page.goto(`${origin}/console/recover`);
      await assertAccessible(page, "recover");
      await screenshot(page, "recover");
      await Promise.all([page.waitForNavigation(), page.click("tbody form button")]);
      assert.match(await page.$eval("p.notice", (el) => el.textContent ?? ""), /Replayed: 1/);
      await page.goto(`${origin}/console/events/${encodeURIComponent(eventIdOf(3))}`);
      for (let n = 0; (await page.$eval("#done", (el) => el.textContent)) !== "done"; n++) {
        assert.ok(n < 50, "the replayed event turns done");
        await server.app.worker.wake();
        await page.reload();
      }

      // Destinations: pause.
      await page.goto(`${origin}/console/destinations`);
      await Promise.all([
        page.waitForNavigation(),
        page.click("form[action$='/pause'] button"),
      ]);
      const state = await page.$eval("dl.facts", (el) => el.textContent ?? "");
      assert.match(state, /paused \(at run time\)/);
      await assertAccessible(page, "destinations");
      await screenshot(page, "destinations");

      await page.goto(`${origin}/console/messages?wamid=wamid.unknown`);
      await assertAccessible(page, "messages");
      await page.goto(`${origin}/console`);
      await assertAccessible(page, "overview");
      await screenshot(page, "overview");
      // A phone: long ids and emoji wrap, nothing scrolls sideways.
      const emoji = JSON.stringify(textDelivery(4, "🙂🎉 Olá! 👩🏽‍💻".repeat(12)));
      assert.equal((await postDelivery(origin, emoji)).status, 200);
      await page.setViewport({ width: 390, height: 844 });
      for (
        const path of ["/console/events", `/console/events/${encodeURIComponent(eventIdOf(4))}`]
      ) {
        await page.goto(`${origin}${path}`);
        const overflow = await page.evaluate(() =>
          document.documentElement.scrollWidth - document.documentElement.clientWidth
        );
        assert.ok(overflow <= 0, `${path} is ${overflow} px wider than a phone's screen`);
      }
      await page.goto(`${origin}/console/events`);
      await screenshot(page, "events-phone");

      // A keyboard alone: Tab to the token field, type, Enter signs in.
      const keyboardOnly = await (await browser.createBrowserContext()).newPage();
      await keyboardOnly.goto(`${origin}/console/sign-in`);
      for (let n = 0; n < 10; n++) {
        const focused = await keyboardOnly.evaluate(() =>
          document.activeElement?.getAttribute("name")
        );
        if (focused === "token") break;
        await keyboardOnly.keyboard.press("Tab");
      }
      assert.equal(
        await keyboardOnly.evaluate(() => document.activeElement?.getAttribute("name")),
        "token",
        "the token field is reached with Tab",
      );
      await keyboardOnly.keyboard.type(TEST_ADMIN_TOKEN);
      await Promise.all([keyboardOnly.waitForNavigation(), keyboardOnly.keyboard.press("Enter")]);
      assert.equal(new URL(keyboardOnly.url()).pathname, "/console");
    } finally {
      await browser.close();
      await consumer.shutdown();
    }
  },
});
