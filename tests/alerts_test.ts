/**
 * WhatsApp alerts (`handlers/alerts.ts`): each change that signals trouble, posted signed through
 * the real server, gives one warn line and one count of `wa_webhook_whatsapp_alerts_total{type}`;
 * a benign one gives neither.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ChangeEvent } from "../src/events/events.ts";
import { alertOf } from "../src/handlers/alerts.ts";
import { ALERT_TYPES } from "../src/ops/alert_metrics.ts";
import { createServiceMetrics } from "../src/ops/service_metrics.ts";
import { fixtureEvents } from "./fixtures/catalog.ts";
import { parseExposition, valueOf } from "./prometheus_text.ts";
import { postDelivery, startTestServer, waitFor } from "./support.ts";

/** Fixtures that signal trouble, and the alert type each must count. */
const TROUBLE: readonly [string, string][] = [
  ["field_message_template_status_update", "template_rejected"],
  ["field_message_template_status_update_paused", "template_paused"],
  ["field_message_template_quality_update", "template_quality_downgraded"],
  ["field_message_template_quality_update_red", "template_quality_red"],
  ["field_phone_number_quality_update_flagged", "phone_quality_flagged"],
  ["field_phone_number_name_update_rejected", "display_name_rejected"],
  ["field_account_update", "account_restricted"],
  ["field_account_update_disabled", "account_disabled"],
  ["field_account_alerts", "account_alert"],
];

/** Fixtures of the same fields (and neighbours) that signal no trouble. */
const BENIGN: readonly string[] = [
  "field_phone_number_quality_update",
  "field_phone_number_name_update",
  "field_business_capability_update",
  "field_template_category_update",
  "field_security",
];

Deno.test("each trouble change gives one warn line and one labelled count; a benign one neither", async () => {
  const metrics = createServiceMetrics();
  await using server = await startTestServer({ metrics, env: { LOG_LEVEL: "info" } });
  const all = [...TROUBLE.map(([name]) => name), ...BENIGN];
  for (const name of all) {
    const body = await Deno.readFile(new URL(`./fixtures/${name}.json`, import.meta.url));
    const response = await postDelivery(server.origin, body);
    assert.equal(response.status, 200, name);
    await response.body?.cancel();
  }
  for (const name of all) {
    const [event] = fixtureEvents(name);
    await waitFor(
      async () => (await server.store.getEvent(event!.id))?.record.state === "done",
      `${name} done`,
    );
  }
  const alertLines = server.logs.lines.filter((line) => line.msg === "whatsapp alert");
  const exposition = parseExposition(metrics.registry.render());
  for (const [name, type] of TROUBLE) {
    const [event] = fixtureEvents(name) as ChangeEvent[];
    const lines = alertLines.filter((line) => line.eventId === event!.id);
    assert.equal(lines.length, 1, `${name}: one line`);
    assert.equal(lines[0]!.level, "warn", name);
    assert.equal(lines[0]!.type, type, name);
    assert.equal(lines[0]!.field, event!.field, name);
    assert.equal(lines[0]!.value, undefined, `${name}: the value is not logged whole`);
    assert.equal(valueOf(exposition, "wa_webhook_whatsapp_alerts_total", { type }), 1, name);
  }
  for (const name of BENIGN) {
    const [event] = fixtureEvents(name);
    assert.deepEqual(alertLines.filter((line) => line.eventId === event!.id), [], name);
  }
  assert.equal(alertLines.length, TROUBLE.length);
  const counted = TROUBLE.map(([, type]) => type);
  for (const type of ALERT_TYPES.filter((type) => !counted.includes(type))) {
    assert.equal(valueOf(exposition, "wa_webhook_whatsapp_alerts_total", { type }), 0, type);
  }
});

Deno.test("alertOf() maps what Meta may add to no alert or to 'other', never to its own value", () => {
  const [restriction] = fixtureEvents("field_account_update") as ChangeEvent[];
  assert.equal(restriction!.field, "account_update");
  const withEvent = (event: string, extra: Record<string, unknown> = {}) =>
    ({ ...restriction!, value: { event, ...extra } }) as ChangeEvent;
  assert.equal(alertOf(withEvent("PARTNER_ADDED")), undefined);
  assert.equal(alertOf(withEvent("NEW_RESTRICTION_KIND", { restriction_info: [] }))?.type, "other");
  const reinstated = { ban_info: { waba_ban_state: ["REINSTATE"] } };
  assert.equal(alertOf(withEvent("DISABLED_UPDATE", reinstated)), undefined, "a ban lifted");
  assert.equal(alertOf(withEvent("toString")), undefined);

  const [template] = fixtureEvents("field_message_template_status_update") as ChangeEvent[];
  const withTemplateEvent = (event: string) =>
    ({ ...template!, value: { ...template!.value as object, event } }) as ChangeEvent;
  assert.equal(alertOf(withTemplateEvent("APPROVED")), undefined);
  assert.equal(alertOf(withTemplateEvent("SOMETHING_NEW")), undefined);
  assert.equal(alertOf(withTemplateEvent("DISABLED"))?.type, "template_disabled");
  assert.equal(alertOf(withTemplateEvent("FLAGGED"))?.type, "template_flagged");

  const [alert] = fixtureEvents("field_account_alerts") as ChangeEvent[];
  const withInfo = (info: Record<string, unknown>) =>
    ({ ...alert!, value: { ...alert!.value as object, alert_info: info } }) as ChangeEvent;
  assert.equal(
    alertOf(withInfo({ alert_severity: "INFORMATIONAL", alert_type: "OBA_APPROVED" })),
    undefined,
  );
  assert.equal(alertOf(withInfo({ alert_severity: "CRITICAL", alert_status: "NONE" })), undefined);
  assert.equal(
    alertOf(withInfo({ alert_severity: "CRITICAL", alert_status: "ACTIVE" }))?.type,
    "account_alert",
  );
});
