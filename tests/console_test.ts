/**
 * The console over a real socket with plain `fetch`: signing in, and each refusal (a wrong token,
 * an expired or forged session, a cross-site POST, a POST without its CSRF token, a page without
 * a session), the security headers on every answer, and no console without an admin token.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ManualClock } from "../src/ops/clock.ts";
import { CONSOLE_CSP } from "../src/console/security_headers.ts";
import { SESSION_TTL_MS } from "../src/console/session.ts";
import { createServiceMetrics } from "../src/ops/service_metrics.ts";
import { HIDDEN_TEXT } from "../src/console/message_text.ts";
import { messagesDelivery, textsDelivery } from "./deliveries.ts";
import { postDelivery, startTestServer, TEST_ADMIN_TOKEN, testConfig } from "./support.ts";

const FORM = { "Content-Type": "application/x-www-form-urlencoded" };

/** Signs in; returns the session cookie (`name=value`) and the page's CSRF token. */
async function signIn(origin: string): Promise<{ cookie: string; csrf: string }> {
  const response = await fetch(`${origin}/console/sign-in`, {
    method: "POST",
    headers: { ...FORM, Origin: origin },
    body: new URLSearchParams({ token: TEST_ADMIN_TOKEN }),
    redirect: "manual",
  });
  await response.body?.cancel();
  assert.equal(response.status, 303);
  const setCookie = response.headers.get("Set-Cookie") ?? "";
  assert.match(setCookie, /HttpOnly/);
  assert.match(setCookie, /SameSite=Strict/);
  assert.match(setCookie, /Path=\/console/);
  const cookie = setCookie.split(";")[0]!;
  const page = await fetch(`${origin}/console/events`, { headers: { Cookie: cookie } });
  const html = await page.text();
  const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1];
  assert.ok(csrf, "the events page has a CSRF field");
  return { cookie, csrf };
}

Deno.test("the console signs in with the admin token, and every page carries the CSP", async () => {
  await using server = await startTestServer({ startWorker: false });
  const { cookie } = await signIn(server.origin);
  for (
    const path of [
      "/console",
      "/console/events",
      "/console/destinations",
      "/console/recover",
      "/console/messages",
    ]
  ) {
    const response = await fetch(`${server.origin}${path}`, { headers: { Cookie: cookie } });
    const html = await response.text();
    assert.equal(response.status, 200, `${path}: ${html.slice(0, 300)}`);
    assert.equal(response.headers.get("Content-Security-Policy"), CONSOLE_CSP, path);
    assert.equal(response.headers.get("X-Content-Type-Options"), "nosniff", path);
    assert.equal(response.headers.get("Referrer-Policy"), "no-referrer", path);
    assert.match(html, /^<!doctype html>/);
  }
  assert.doesNotMatch(server.logs.text(), new RegExp(TEST_ADMIN_TOKEN));
});

Deno.test("the console refuses a wrong token, and marks the cookie Secure behind HTTPS", async () => {
  await using server = await startTestServer({ startWorker: false });
  const wrong = await fetch(`${server.origin}/console/sign-in`, {
    method: "POST",
    headers: { ...FORM, Origin: server.origin },
    body: new URLSearchParams({ token: "not-the-admin-token-at-all" }),
    redirect: "manual",
  });
  await wrong.body?.cancel();
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers.get("Set-Cookie"), null);
  assert.equal(wrong.headers.get("Content-Security-Policy"), CONSOLE_CSP);
  const secure = await fetch(`${server.origin}/console/sign-in`, {
    method: "POST",
    headers: { ...FORM, Origin: server.origin, "X-Forwarded-Proto": "https" },
    body: new URLSearchParams({ token: TEST_ADMIN_TOKEN }),
    redirect: "manual",
  });
  await secure.body?.cancel();
  assert.match(secure.headers.get("Set-Cookie") ?? "", /; Secure/);
  assert.doesNotMatch(server.logs.text(), new RegExp(TEST_ADMIN_TOKEN));
});

Deno.test("a console page without a session redirects to the sign-in page", async () => {
  await using server = await startTestServer({ startWorker: false });
  for (const path of ["/console", "/console/events", "/console/events/x", "/console/recover"]) {
    const response = await fetch(`${server.origin}${path}`, { redirect: "manual" });
    await response.body?.cancel();
    assert.equal(response.status, 303, path);
    assert.equal(response.headers.get("Location"), "/console/sign-in", path);
  }
  const forged = await fetch(`${server.origin}/console`, {
    headers: { Cookie: "wa_console=abc.99999999999999.forged" },
    redirect: "manual",
  });
  await forged.body?.cancel();
  assert.equal(forged.status, 303);
});

Deno.test("an expired console session is refused", async () => {
  const clock = new ManualClock(Date.parse("2026-12-04T10:00:00Z"));
  await using server = await startTestServer({ startWorker: false, clock });
  const { cookie, csrf } = await signIn(server.origin);
  await clock.advance(SESSION_TTL_MS + 1);
  const page = await fetch(`${server.origin}/console/events`, {
    headers: { Cookie: cookie },
    redirect: "manual",
  });
  await page.body?.cancel();
  assert.equal(page.status, 303);
  const post = await fetch(`${server.origin}/console/recover/replay`, {
    method: "POST",
    headers: { ...FORM, Cookie: cookie, Origin: server.origin },
    body: new URLSearchParams({ csrf, target: "handlers" }),
  });
  await post.body?.cancel();
  assert.equal(post.status, 403);
});

Deno.test("a cross-site POST, and a POST without its CSRF token, are refused", async () => {
  await using server = await startTestServer({ startWorker: false });
  const { cookie, csrf } = await signIn(server.origin);
  const post = (headers: Record<string, string>, form: Record<string, string>) =>
    fetch(`${server.origin}/console/recover/replay`, {
      method: "POST",
      headers: { ...FORM, Cookie: cookie, ...headers },
      body: new URLSearchParams(form),
      redirect: "manual",
    });
  const cases: [string, Record<string, string>, Record<string, string>][] = [
    ["another site's Origin", { Origin: "https://evil.example" }, { csrf, target: "handlers" }],
    ["Sec-Fetch-Site cross-site", { "Sec-Fetch-Site": "cross-site" }, { csrf, target: "handlers" }],
    ["no Origin at all", {}, { csrf, target: "handlers" }],
    ["no CSRF token", { Origin: server.origin }, { target: "handlers" }],
    ["another CSRF token", { Origin: server.origin }, { csrf: "x" + csrf, target: "handlers" }],
  ];
  for (const [label, headers, form] of cases) {
    const response = await post(headers, form);
    await response.body?.cancel();
    assert.equal(response.status, 403, label);
    assert.equal(response.headers.get("Content-Security-Policy"), CONSOLE_CSP, label);
  }
  const accepted = await post({ Origin: server.origin }, { csrf, target: "handlers" });
  await accepted.body?.cancel();
  assert.equal(accepted.status, 303);
  assert.match(accepted.headers.get("Location") ?? "", /^\/console\/recover\?notice=replayed/);
});

Deno.test("without an admin token there is no console (404)", async () => {
  await using server = await startTestServer({
    startWorker: false,
    config: { ...testConfig(), adminToken: undefined },
  });
  const response = await fetch(`${server.origin}/console/sign-in`);
  await response.body?.cancel();
  assert.equal(response.status, 404);
});

Deno.test("the overview shows the acknowledgement latency read from the service's metrics", async () => {
  const metrics = createServiceMetrics();
  await using server = await startTestServer({ startWorker: false, metrics });
  const { cookie } = await signIn(server.origin);
  const before = await (await fetch(`${server.origin}/console`, { headers: { Cookie: cookie } }))
    .text();
  assert.match(before, /Acknowledgement p50 \/ p99 \(this instance, 0 deliveries\)/);
  assert.match(before, /<span class="figure">— \/ —<\/span>/);
  // One real delivery through the intake, then 98 fast and 1 slow acknowledgement observed.
  assert.equal((await postDelivery(server.origin, textsDelivery(["wamid.ACK1"]))).status, 200);
  for (let n = 0; n < 98; n++) metrics.intakeAck.observe({}, 0.003);
  metrics.intakeAck.observe({}, 0.3);
  metrics.intakeAck.observe({}, 0.3);
  const html = await (await fetch(`${server.origin}/console`, { headers: { Cookie: cookie } }))
    .text();
  assert.match(html, /Acknowledgement p50 \/ p99 \(this instance, 101 deliveries\)/);
  assert.match(html, /<span class="figure">≤ 5 ms \/ ≤ 500 ms<\/span>/);
});

Deno.test("the overview charts this instance's deliveries per minute beside the events", async () => {
  await using server = await startTestServer({ startWorker: false });
  const { cookie } = await signIn(server.origin);
  for (const wamids of [["wamid.DPM1"], ["wamid.DPM2", "wamid.DPM3"], ["wamid.DPM1"]]) {
    assert.equal((await postDelivery(server.origin, textsDelivery(wamids))).status, 200);
  }
  const html = await (await fetch(`${server.origin}/console`, { headers: { Cookie: cookie } }))
    .text();
  assert.match(html, /<h2>Deliveries per minute \(this instance\)<\/h2>/);
  // Three deliveries (Meta's retry included) carried three distinct events.
  assert.match(html, /aria-label="Deliveries per minute over the last 3 hours: 3 in all/);
  assert.match(html, /aria-label="Events per minute over the last 3 hours: 3 in all/);
});

/** The text of the event page's section "As Meta sent it": its `<pre>`s, HTML entities undone. */
function metaPartOf(html: string): { shown: string; revealed: string | undefined } {
  const section = html.slice(html.indexOf("<h2>As Meta sent it</h2>"));
  const pres = [...section.matchAll(/<pre>([\s\S]*?)<\/pre>/g)].map((match) =>
    match[1]!.replaceAll("&quot;", '"').replaceAll("&lt;", "<").replaceAll("&gt;", ">")
      .replaceAll("&amp;", "&")
  );
  return { shown: pres[0] ?? "", revealed: pres[1] };
}

Deno.test("an event's page shows the part of the delivery it came from, its text hidden", async () => {
  for (const hidesText of [false, true]) {
    await using server = await startTestServer({
      startWorker: false,
      env: hidesText ? { CONSOLE_HIDE_TEXT: "on" } : {},
    });
    const { cookie } = await signIn(server.origin);
    const delivery = messagesDelivery({
      messages: [{
        from: "5511999990000",
        id: "wamid.RAW1",
        timestamp: "1767225600",
        type: "text",
        text: { body: "my card number is 4111" },
        meta_added_later: { kept: true },
      }],
      statuses: [{
        id: "wamid.SENT1",
        status: "delivered",
        timestamp: "1767225601",
        recipient_id: "5511999990000",
      }],
    });
    const unknownChange = {
      object: "whatsapp_business_account",
      entry: [{
        id: "102290000000001",
        time: 1767225602,
        changes: [{ field: "brand_new_field", value: { caption: "private words", level: 3 } }],
      }],
    };
    for (const body of [delivery, unknownChange]) {
      assert.equal((await postDelivery(server.origin, JSON.stringify(body))).status, 200);
    }
    const { events } = await server.store.listEvents({ limit: 10 });
    const idOf = (kind: string) => events.find((event) => event.kind === kind)!.id;
    const pageOf = async (id: string) =>
      metaPartOf(
        await (await fetch(`${server.origin}/console/events/${encodeURIComponent(id)}`, {
          headers: { Cookie: cookie },
        })).text(),
      );

    const message = await pageOf(idOf("message"));
    assert.deepEqual(JSON.parse(message.shown), {
      from: "5511999990000",
      id: "wamid.RAW1",
      timestamp: "1767225600",
      type: "text",
      text: { body: HIDDEN_TEXT },
      meta_added_later: { kept: true },
    });
    const status = await pageOf(idOf("status"));
    assert.deepEqual(JSON.parse(status.shown), {
      id: "wamid.SENT1",
      status: "delivered",
      timestamp: "1767225601",
      recipient_id: "5511999990000",
    });
    const change = await pageOf(idOf("change"));
    assert.deepEqual(JSON.parse(change.shown), {
      field: "brand_new_field",
      value: { caption: HIDDEN_TEXT, level: 3 },
    });
    if (hidesText) {
      assert.equal(message.revealed, undefined, "no way to reveal the text when it is hidden");
      assert.equal(change.revealed, undefined);
    } else {
      assert.equal(JSON.parse(message.revealed!).text.body, "my card number is 4111");
      assert.equal(JSON.parse(change.revealed!).value.caption, "private words");
    }
  }
});

Deno.test("event rows show the message type, the status value or the change field", async () => {
  await using server = await startTestServer({ startWorker: false });
  const { cookie } = await signIn(server.origin);
  const delivery = messagesDelivery({
    messages: [
      {
        from: "5511999990000",
        id: "wamid.TYPE1",
        timestamp: "1767225600",
        type: "text",
        text: { body: "hi" },
      },
      {
        from: "5511999990000",
        id: "wamid.TYPE2",
        timestamp: "1767225600",
        type: "reaction",
        reaction: { message_id: "wamid.TYPE1", emoji: "👍" },
      },
      {
        from: "5511999990000",
        id: "wamid.TYPE3",
        timestamp: "1767225600",
        type: "hologram",
        hologram: {},
      },
    ],
    statuses: [{
      id: "wamid.SENT2",
      status: "read",
      timestamp: "1767225601",
      recipient_id: "5511999990000",
    }],
  });
  const change = {
    object: "whatsapp_business_account",
    entry: [{
      id: "102290000000001",
      time: 1767225602,
      changes: [{ field: "brand_new_field", value: { level: 3 } }],
    }],
  };
  for (const body of [delivery, change]) {
    assert.equal((await postDelivery(server.origin, JSON.stringify(body))).status, 200);
  }
  const html = await (await fetch(`${server.origin}/console/events`, {
    headers: { Cookie: cookie },
  })).text();
  const kinds = [...html.matchAll(/<td data-label="Kind">([^<]*)<\/td>/g)].map((m) => m[1]);
  const expected = [
    "change · brand_new_field",
    "message · text",
    "message · reaction",
    "message · hologram",
    "status · read",
  ];
  assert.deepEqual(kinds.toSorted(), expected.toSorted());
  const live = await (await fetch(`${server.origin}/console/events/live`, {
    headers: { Cookie: cookie },
  })).json() as { events: { kind: string; type?: string }[] };
  assert.deepEqual(
    live.events.map((event) => `${event.kind} · ${event.type}`).toSorted(),
    expected.toSorted(),
  );
});
