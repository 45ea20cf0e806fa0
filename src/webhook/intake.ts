/**
 * The delivery endpoint: read the bounded raw body, verify its signature, parse it into events,
 * record them, and acknowledge with 200 only once every event is recorded.
 *
 * @module
 */
import {
  countDrift,
  type DriftCount,
  InvalidJsonError,
  type ParsedDelivery,
  parseDeliveryText,
  type WebhookEvent,
} from "../events/events.ts";
import { HttpError } from "../http/errors.ts";
import type { RouteHandler } from "../http/router.ts";
import type { Logger } from "../ops/log.ts";
import { withSpan } from "../ops/telemetry.ts";
import { type ReadBodyOptions, readBoundedBody } from "./body.ts";
import { SIGNATURE_HEADER, type SignatureVerifier } from "./signature.ts";

/**
 * Stores the events of a verified delivery durably. It resolves once none of them can be lost and
 * throws when it could not record them all (the request is then answered 503 so Meta retries).
 */
export type EventRecorder = (events: WebhookEvent[], log: Logger) => Promise<void>;

/** Options for {@linkcode createIntakeHandler}. */
export interface IntakeOptions {
  verifier: SignatureVerifier;
  /**
   * The bounds of the body read: `MAX_BODY_BYTES`, `BODY_TIMEOUT_MS`, and the signal aborted at
   * shutdown; the same object the app uses for bodies nobody reads.
   */
  bodyLimits: ReadBodyOptions;
  recordEvents: EventRecorder;
  /**
   * Called once per webhook field and type of schema drift in a delivery, with how many problems
   * it had, after the delivery's warning line (for metrics).
   */
  onDrift?: (drift: DriftCount) => void;
}

/** Event ids listed on the record span; a delivery rarely has more, and the count is there too. */
const MAX_SPAN_EVENT_IDS = 100;

/**
 * Unknown events named in a delivery's one "unknown event kept" line; the line counts them all.
 * A few say what went wrong; a delivery of thousands must not write thousands of lines.
 */
const MAX_LOGGED_UNKNOWN_EVENTS = 5;

const _decoder = new TextDecoder("utf-8", { fatal: true });

/** Handles `POST /webhook/whatsapp`. */
export function createIntakeHandler(options: IntakeOptions): RouteHandler {
  return async (request, { log }) => {
    const body = await readBoundedBody(request, options.bodyLimits);
    const check = await withSpan("intake.verify", async (span) => {
      const check = await options.verifier.verify(request.headers.get(SIGNATURE_HEADER), body);
      span.setAttribute("wa.signature.outcome", check.valid ? "valid" : check.failure);
      return check;
    }, { attributes: { "wa.body.bytes": body.byteLength } });
    if (!check.valid) throw new HttpError(401, check.reason);

    const parsed = withSpan("intake.parse", (span) => {
      const parsed = _parseBody(body);
      span.setAttributes({
        "wa.events.count": parsed.events.length,
        "wa.event.kinds": [...new Set(parsed.events.map((event) => event.kind))],
        "wa.drift.count": countDrift(parsed).reduce((sum, drift) => sum + drift.count, 0),
      });
      return parsed;
    });
    const { events } = parsed;
    _logDrift(parsed, log, options.onDrift);
    _logUnknownEvents(events, log);
    try {
      await withSpan("intake.record", () => options.recordEvents(events, log), {
        attributes: {
          "wa.events.count": events.length,
          "wa.event.ids": events.slice(0, MAX_SPAN_EVENT_IDS).map((event) => event.id),
        },
      });
    } catch (error) {
      log.error("delivery not recorded", { error, events: events.length });
      throw new HttpError(503, "Cannot record the delivery now; retry later");
    }
    return new Response("OK", { headers: { "Content-Type": "text/plain; charset=utf-8" } });
  };
}

function _parseBody(body: Uint8Array): ParsedDelivery {
  let text: string;
  try {
    text = _decoder.decode(body);
  } catch {
    throw new HttpError(400, "Body is not valid UTF-8");
  }
  try {
    return parseDeliveryText(text);
  } catch (error) {
    if (error instanceof InvalidJsonError) throw new HttpError(400, error.message);
    throw error;
  }
}

/** One warning line for a delivery's schema drift: counts by field and type, and the samples. */
function _logDrift(
  parsed: ParsedDelivery,
  log: Logger,
  onDrift: ((drift: DriftCount) => void) | undefined,
): void {
  const counts = countDrift(parsed);
  if (counts.length === 0) return;
  log.warn("schema drift", {
    count: counts.reduce((sum, drift) => sum + drift.count, 0),
    byType: counts,
    samples: parsed.drift,
  });
  for (const drift of counts) onDrift?.(drift);
}

/** One warning line for a delivery's unknown events: how many, and the first few with reasons. */
function _logUnknownEvents(events: readonly WebhookEvent[], log: Logger): void {
  const samples: { eventId: string; reason: string }[] = [];
  let count = 0;
  for (const event of events) {
    if (event.kind !== "unknown") continue;
    count++;
    if (samples.length < MAX_LOGGED_UNKNOWN_EVENTS) {
      samples.push({ eventId: event.id, reason: event.reason });
    }
  }
  if (count > 0) log.warn("unknown event kept", { count, samples });
}
