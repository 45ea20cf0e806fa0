/**
 * The metrics of the intake, taken from outside it: the signature verifier and the intake handler
 * wrapped so that each refusal is counted by its reason and each acknowledgement timed.
 *
 * @module
 */
import { HttpError } from "../http/errors.ts";
import type { RouteHandler } from "../http/router.ts";
import type { SignatureVerifier } from "../webhook/signature.ts";
import type { DeliveryOutcome, ServiceMetrics } from "./service_metrics.ts";

/** Wraps a signature verifier so that each refusal is counted by its reason. */
export function instrumentVerifier(
  verifier: SignatureVerifier,
  metrics: ServiceMetrics,
): SignatureVerifier {
  return {
    async verify(header, body) {
      const check = await verifier.verify(header, body);
      if (!check.valid) metrics.observeSignatureFailure(check.failure);
      return check;
    },
  };
}

/** Options for {@linkcode instrumentIntake}. */
export interface InstrumentIntakeOptions {
  /** A monotonic time in ms for the latency; defaults to `performance.now`. */
  now?: () => number;
}

/**
 * Wraps the intake handler: observes the acknowledgement latency of each delivery it answers
 * with 200, and counts each delivery it refuses by outcome, from the {@linkcode HttpError} it
 * throws (401 `rejected_signature`, 413 `too_large`, 400 `bad_json`, 408 `timed_out`, 499
 * `aborted`, any other `unavailable`). The `accepted` and `duplicate_only` outcomes are counted by
 * {@linkcode ServiceMetrics.observeRecorded}, which knows whether any event was new.
 */
export function instrumentIntake(
  handler: RouteHandler,
  metrics: ServiceMetrics,
  options: InstrumentIntakeOptions = {},
): RouteHandler {
  const now = options.now ?? (() => performance.now());
  return async (request, context) => {
    const started = now();
    let response: Response;
    try {
      response = await handler(request, context);
    } catch (error) {
      metrics.observeDelivery(refusedDeliveryOutcome(error));
      throw error;
    }
    if (response.status === 200) metrics.intakeAck.observe({}, (now() - started) / 1_000);
    return response;
  };
}

/** The outcome of a delivery the intake handler refused with `error`. */
export function refusedDeliveryOutcome(error: unknown): DeliveryOutcome {
  const status = error instanceof HttpError ? error.status : 500;
  if (status === 401) return "rejected_signature";
  if (status === 413) return "too_large";
  if (status === 400) return "bad_json";
  if (status === 408) return "timed_out";
  if (status === 499) return "aborted";
  return "unavailable";
}
