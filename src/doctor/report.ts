/**
 * The doctor's report for people and for programs: {@linkcode renderChecklist} writes the
 * checklist a terminal shows (`deno task doctor`), one line per check with its fix below each
 * failed or warned line; {@linkcode renderJson} writes the same report as the admin route's JSON.
 *
 * @module
 */
import type { CheckStatus } from "./checks.ts";
import type { DoctorReport } from "./doctor.ts";

/** The mark of each status, padded to one width so the names line up. */
const MARKS: Readonly<Record<CheckStatus, string>> = {
  ok: "[ok]  ",
  warn: "[warn]",
  fail: "[FAIL]",
};

/** Where a fix starts, under its line. */
const FIX_INDENT = "         ";

/** The checklist as text: a heading, a line per check (fixes below), and a summary line. */
export function renderChecklist(report: DoctorReport): string {
  const lines = [`wa-webhook doctor: what Meta sees through ${report.graphUrl}`, ""];
  for (const check of report.checks) {
    lines.push(`  ${MARKS[check.status]} ${check.name}: ${check.detail}`);
    if (check.status === "ok" || check.fix === undefined) continue;
    const [first = "", ...rest] = check.fix.split("\n");
    lines.push(`${FIX_INDENT}fix: ${first}`, ...rest.map((line) => `${FIX_INDENT}     ${line}`));
  }
  lines.push("", _summary(report));
  return lines.join("\n") + "\n";
}

/** The report as the admin route answers it: `{ status, graphUrl, checks }`, indented. */
export function renderJson(report: DoctorReport): string {
  return JSON.stringify(report, null, 2) + "\n";
}

function _summary(report: DoctorReport): string {
  const count = (status: CheckStatus) => report.checks.filter((c) => c.status === status).length;
  const failed = count("fail");
  const warned = count("warn");
  const warnings = warned === 0 ? "" : `, ${warned} warning${warned === 1 ? "" : "s"}`;
  if (failed > 0) {
    return `${failed} check${failed === 1 ? "" : "s"} failed${warnings}: fix the lines marked ` +
      "FAIL, then run the doctor again";
  }
  if (warned > 0) return `No check failed${warnings}: worth a look`;
  return "Every check passed: Meta sends this app the WhatsApp webhooks";
}
