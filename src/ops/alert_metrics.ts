/**
 * The metric of WhatsApp alerts, on the service's registry: one counter of the template, quality,
 * display-name and account changes that signal trouble (`handlers/alerts.ts`), labelled by a type
 * from a closed list, so that an operator's alerting can page on them. Every series exists from
 * the start, at 0, so that `increase()` sees the first alert.
 *
 * @module
 */
import type { Counter, Registry } from "./metrics.ts";

/**
 * Every `type` label of `wa_webhook_whatsapp_alerts_total`: a closed list, never a value Meta
 * sent (`other` stands for trouble this list has no name for).
 */
export const ALERT_TYPES = [
  "template_rejected",
  "template_paused",
  "template_disabled",
  "template_flagged",
  "template_quality_downgraded",
  "template_quality_red",
  "phone_quality_flagged",
  "phone_limit_downgraded",
  "display_name_rejected",
  "account_restricted",
  "account_violation",
  "account_disabled",
  "account_deleted",
  "account_review_rejected",
  "account_alert",
  "other",
] as const;

/** One of {@linkcode ALERT_TYPES}. */
export type AlertType = (typeof ALERT_TYPES)[number];

/** The alerts' metric; `ServiceMetrics.alerts` holds the service's. */
export class AlertMetrics {
  /** `wa_webhook_whatsapp_alerts_total{type}` */
  readonly alerts: Counter<"type">;

  /** Declares the metric on `registry`, every type at 0. */
  constructor(registry: Registry) {
    this.alerts = registry.counter({
      name: "wa_webhook_whatsapp_alerts_total",
      help: "WhatsApp changes that signal trouble (templates rejected or paused, quality " +
        "flagged, account restrictions, …), by type.",
      labelNames: ["type"],
    });
    for (const type of ALERT_TYPES) this.alerts.inc({ type }, 0);
  }

  /** Counts one alert of `type`. */
  observe(type: AlertType): void {
    this.alerts.inc({ type });
  }
}
