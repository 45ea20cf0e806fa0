/**
 * The doctor's checks of a business account's phone numbers: a line per number with what Meta says
 * of it (status, quality, messaging limit, platform), failing or warning with the fix for each
 * problem found, such as registering the number for the Cloud API.
 *
 * @module
 */
import { type CheckResult, type CheckStatus, clip, type FixContext } from "./checks.ts";
import type { PhoneNumberInfo, PhoneNumbersPage } from "./graph_reads.ts";

/** The messaging limits low enough to warn about: a few hundred users a day, or none set. */
const LOW_MESSAGING_TIERS = new Set(["TIER_50", "TIER_250", "TIER_NOT_SET"]);

/** One account's phone numbers: a line per number, or one failing line when it has none. */
export function checkPhoneNumbers(
  wabaId: string,
  page: PhoneNumbersPage,
  context: FixContext,
): CheckResult[] {
  if (page.numbers.length === 0) {
    return [{
      name: `phone numbers of WABA "${wabaId}"`,
      status: "fail",
      detail: "This account has no phone number: nobody can message it",
      fix: "Add a number in WhatsApp Manager > Phone numbers, then register it:\n" +
        _registerFix(context, "{phone-number-id}"),
    }];
  }
  const lines = page.numbers.map((number) => _checkPhoneNumber(number, context));
  if (page.hasMore) {
    lines.push({
      name: `phone numbers of WABA "${wabaId}"`,
      status: "warn",
      detail: `More than ${page.numbers.length} numbers: only these were checked`,
      fix: "Check the others in WhatsApp Manager > Phone numbers",
    });
  }
  return lines;
}

/** A problem found on a number, with its fix. */
interface _Problem {
  status: Exclude<CheckStatus, "ok">;
  text: string;
  fix: string;
}

function _checkPhoneNumber(number: PhoneNumberInfo, context: FixContext): CheckResult {
  const display = number.display_phone_number ?? "?";
  const name = `number "${clip(display)}" (${number.id})`;
  const facts = [
    number.verified_name === undefined ? undefined : `"${clip(number.verified_name)}"`,
    `status ${number.status ?? "unknown"}`,
    number.quality_rating === undefined ? undefined : `quality ${number.quality_rating}`,
    number.messaging_limit_tier === undefined ? undefined : `limit ${number.messaging_limit_tier}`,
    number.throughput?.level === undefined ? undefined : `throughput ${number.throughput.level}`,
    number.platform_type === undefined ? undefined : `platform ${number.platform_type}`,
    number.name_status === undefined ? undefined : `name ${number.name_status}`,
  ].filter((fact) => fact !== undefined).map(clip);
  const problems = _problemsOf(number, context);
  const worst: CheckStatus = problems.some((p) => p.status === "fail")
    ? "fail"
    : problems.length > 0
    ? "warn"
    : "ok";
  const detail = facts.join(", ") +
    (problems.length === 0 ? "" : `: ${problems.map((p) => p.text).join("; ")}`);
  if (worst === "ok") return { name, status: worst, detail };
  return { name, status: worst, detail, fix: [...new Set(problems.map((p) => p.fix))].join("\n") };
}

function _problemsOf(number: PhoneNumberInfo, context: FixContext): _Problem[] {
  const problems: _Problem[] = [];
  const register = _registerFix(context, number.id);
  const manager = "See the number in WhatsApp Manager > Phone numbers for Meta's reason; " +
    "appeal in Business Support Home if you disagree";
  const notRegistered = number.platform_type === "NOT_APPLICABLE";
  if (notRegistered) {
    problems.push({
      status: "fail",
      text: "not registered for the Cloud API, so it neither sends nor receives",
      fix: register,
    });
  } else if (number.platform_type === "ON_PREMISE") {
    problems.push({
      status: "fail",
      text: "registered on the On-Premises API, not the Cloud API",
      fix: `Migrate the number to the Cloud API, then register it:\n${register}`,
    });
  }
  const status = number.status;
  if (status !== undefined && status !== "CONNECTED") {
    const fix = status === "PENDING" || status === "UNVERIFIED" || status === "DISCONNECTED"
      ? register
      : status === "FLAGGED"
      ? "Raise its quality: send only what users opted in to, and watch WhatsApp Manager > " +
        "Insights; Meta lifts the flag after 7 days of good quality"
      : status === "RESTRICTED" || status === "RATE_LIMITED"
      ? "It reached its messaging limit: it can still answer users, and sends again once the " +
        "24-hour window resets"
      : manager;
    if (!(notRegistered && fix === register)) {
      problems.push({ status: "fail", text: `its status is ${status}, not CONNECTED`, fix });
    }
  }
  if (number.quality_rating === "RED") {
    problems.push({
      status: "fail",
      text: "its quality is RED (low): Meta may flag it and lower its limit",
      fix: "Send only messages users asked for, honour opt-outs, and watch WhatsApp Manager > " +
        "Insights until the rating recovers",
    });
  } else if (number.quality_rating === "YELLOW") {
    problems.push({
      status: "warn",
      text: "its quality is YELLOW (medium)",
      fix: "Watch WhatsApp Manager > Insights: fewer blocks and reports bring it back to GREEN",
    });
  }
  const tier = number.messaging_limit_tier;
  if (tier !== undefined && LOW_MESSAGING_TIERS.has(tier)) {
    problems.push({
      status: "warn",
      text: `its messaging limit is low (${tier}): few users a day can be sent templates`,
      fix: "Verify the business (Business settings > Security center) and keep quality high: " +
        "Meta then raises the limit",
    });
  }
  return problems;
}

/** How to register a number for the Cloud API (its two-step verification PIN is the caller's). */
function _registerFix(context: FixContext, phoneNumberId: string): string {
  return `curl -X POST "${context.graphUrl}/${phoneNumberId}/register" ` +
    '-H "Authorization: Bearer $WHATSAPP_TOKEN" -H "Content-Type: application/json" ' +
    `-d '{"messaging_product":"whatsapp","pin":"<6-digit PIN>"}'`;
}
