/**
 * WhatsApp alerts: the changes that signal trouble become one warn line and one count of
 * `wa_webhook_whatsapp_alerts_total{type}` (`ops/alert_metrics.ts`), so that an operator's
 * alerting can page on them instead of the change being dropped on the floor:
 *
 * - `message_template_status_update`: a template `REJECTED`, `PAUSED`, `DISABLED` or `FLAGGED`;
 * - `message_template_quality_update`: a template's quality `RED`, or lower than before;
 * - `phone_number_quality_update`: the number `FLAGGED`, or its messaging limit `DOWNGRADE`d;
 * - `phone_number_name_update`: a display name `REJECTED`;
 * - `account_update`: `ACCOUNT_RESTRICTION`, `ACCOUNT_VIOLATION`, `DISABLED_UPDATE` (a ban; not
 *   its lifting, `REINSTATE`), `ACCOUNT_DELETED`; another event carrying restriction, violation or
 *   ban details counts as `other`;
 * - `account_review_update`: a `REJECTED` decision;
 * - `account_alerts`: an alert of severity `CRITICAL` or `WARNING` that is not resolved
 *   (`alert_status` other than `NONE`).
 *
 * Everything else (approvals, upgrades, informational alerts, values Meta adds later) writes
 * nothing. The line names the field, the type, the WABA and business number, and Meta's values
 * that explain it (template id, name and language, event, scores, limits, restriction types),
 * each clipped: no user's data is in these changes.
 *
 * @module
 */
import type { Dispatcher } from "../dispatch/dispatcher.ts";
import type { ChangeEvent } from "../events/events.ts";
import type { AlertMetrics, AlertType } from "../ops/alert_metrics.ts";

/** The handler name of {@linkcode registerAlertHandler}, kept in event records. */
export const ALERTS_HANDLER = "whatsapp-alerts";

/** Longest text of Meta's quoted in an alert line: enum-like values and template names. */
const MAX_ALERT_FIELD_CHARS = 128;

/** Template quality scores, best first; `UNKNOWN` and others have no rank. */
const _QUALITY_RANK: Readonly<Record<string, number>> = { GREEN: 3, YELLOW: 2, RED: 1 };

/** The template status events that signal trouble, and their type. */
const _TEMPLATE_STATUS_ALERTS: Readonly<Record<string, AlertType>> = {
  REJECTED: "template_rejected",
  PAUSED: "template_paused",
  DISABLED: "template_disabled",
  FLAGGED: "template_flagged",
};

/** The `account_update` events that signal trouble, and their type. */
const _ACCOUNT_UPDATE_ALERTS: Readonly<Record<string, AlertType>> = {
  ACCOUNT_RESTRICTION: "account_restricted",
  ACCOUNT_VIOLATION: "account_violation",
  DISABLED_UPDATE: "account_disabled",
  ACCOUNT_DELETED: "account_deleted",
};

/** An alert found in a change: its type and the values that explain it. */
export interface WhatsAppAlert {
  type: AlertType;
  /** Meta's values, each clipped to {@linkcode MAX_ALERT_FIELD_CHARS}; no user data. */
  details: Record<string, string>;
}

/** The alert `event` signals, or `undefined` when it signals no trouble. */
export function alertOf(event: ChangeEvent): WhatsAppAlert | undefined {
  switch (event.field) {
    case "message_template_status_update": {
      const { value } = event;
      const type = _own(_TEMPLATE_STATUS_ALERTS, value.event);
      return type && _alert(type, {
        event: value.event,
        templateId: value.message_template_id,
        templateName: value.message_template_name,
        language: value.message_template_language,
        reason: value.reason ?? value.rejection_info?.reason,
      });
    }
    case "message_template_quality_update": {
      const { value } = event;
      const now = _QUALITY_RANK[value.new_quality_score];
      const before = value.previous_quality_score === undefined
        ? undefined
        : _QUALITY_RANK[value.previous_quality_score];
      const type: AlertType | undefined = value.new_quality_score === "RED"
        ? "template_quality_red"
        : now !== undefined && before !== undefined && now < before
        ? "template_quality_downgraded"
        : undefined;
      return type && _alert(type, {
        previousScore: value.previous_quality_score,
        newScore: value.new_quality_score,
        templateId: value.message_template_id,
        templateName: value.message_template_name,
        language: value.message_template_language,
      });
    }
    case "phone_number_quality_update": {
      const { value } = event;
      const type: AlertType | undefined = value.event === "FLAGGED"
        ? "phone_quality_flagged"
        : value.event === "DOWNGRADE"
        ? "phone_limit_downgraded"
        : undefined;
      return type && _alert(type, {
        event: value.event,
        limit: value.max_daily_conversations_per_business ?? value.current_limit,
        oldLimit: value.old_limit,
      });
    }
    case "phone_number_name_update": {
      const { value } = event;
      return value.decision === "REJECTED"
        ? _alert("display_name_rejected", {
          decision: value.decision,
          reason: value.rejection_reason ?? undefined,
        })
        : undefined;
    }
    case "account_update": {
      const { value } = event;
      const banState = _banState(value.ban_info);
      let type = _own(_ACCOUNT_UPDATE_ALERTS, value.event);
      if (type === "account_disabled" && banState?.includes("REINSTATE")) type = undefined;
      const hasTroubleDetails = value.restriction_info !== undefined ||
        value.violation_info !== undefined || value.ban_info !== undefined;
      if (type === undefined && hasTroubleDetails && banState?.includes("REINSTATE") !== true) {
        type = "other";
      }
      return type && _alert(type, {
        event: value.event,
        restrictions: value.restriction_info?.map((r) => r.restriction_type ?? "?").join(","),
        violation: _text(
          (value.violation_info as { violation_type?: unknown } | undefined)
            ?.violation_type,
        ),
        banState,
      });
    }
    case "account_review_update": {
      const { value } = event;
      return value.decision === "REJECTED"
        ? _alert("account_review_rejected", { decision: value.decision })
        : undefined;
    }
    case "account_alerts": {
      const { alert_info: info, entity_type: entityType, entity_id: entityId } = event.value;
      const isTrouble = (info.alert_severity === "CRITICAL" || info.alert_severity === "WARNING") &&
        info.alert_status !== "NONE";
      return isTrouble
        ? _alert("account_alert", {
          severity: info.alert_severity,
          alertType: info.alert_type,
          entityType,
          entityId,
        })
        : undefined;
    }
    default:
      return undefined;
  }
}

/** Options for {@linkcode registerAlertHandler}. */
export interface AlertHandlerOptions {
  /** Where alerts are counted; `ServiceMetrics.alerts`. */
  metrics: AlertMetrics;
}

/**
 * Registers the passive handler `"whatsapp-alerts"` on every change: for each one that signals
 * trouble ({@linkcode alertOf}), one warn line `whatsapp alert` and one count of its type. A
 * change that only it takes still reaches the `onUnhandled` fallback.
 */
export function registerAlertHandler(
  dispatcher: Dispatcher,
  options: AlertHandlerOptions,
): Dispatcher {
  return dispatcher.on("change", ({ event, log }) => {
    const alert = alertOf(event);
    if (alert === undefined) return;
    options.metrics.observe(alert.type);
    log.warn("whatsapp alert", {
      type: alert.type,
      field: event.field,
      wabaId: event.wabaId,
      ...(event.phoneNumberId === undefined ? {} : { phoneNumberId: event.phoneNumberId }),
      ...(event.displayPhoneNumber === undefined
        ? {}
        : { displayPhoneNumber: event.displayPhoneNumber }),
      ...alert.details,
    });
  }, { name: ALERTS_HANDLER, isPassive: true });
}

function _alert(type: AlertType, details: Record<string, unknown>): WhatsAppAlert {
  const kept: Record<string, string> = {};
  for (const [key, value] of Object.entries(details)) {
    const text = _text(value);
    if (text !== undefined) kept[key] = text;
  }
  return { type, details: kept };
}

/** A string or number of Meta's as bounded text; `undefined` for anything else or empty. */
function _text(value: unknown): string | undefined {
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value !== "string" || value === "") return undefined;
  return value.length <= MAX_ALERT_FIELD_CHARS
    ? value
    : `${value.slice(0, MAX_ALERT_FIELD_CHARS)}…`;
}

/** `ban_info.waba_ban_state` (a list or a text in Meta's examples) as one text. */
function _banState(banInfo: Record<string, unknown> | undefined): string | undefined {
  const state = banInfo?.waba_ban_state;
  if (Array.isArray(state)) return _text(state.filter((s) => typeof s === "string").join(","));
  return _text(state);
}

/** `table[key]` when `key` is its own property (never `toString` and the like). */
function _own<T>(table: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}
