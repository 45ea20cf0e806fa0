/**
 * A circuit breaker per destination: once a destination has failed again and again, its jobs wait
 * and a single probe goes out at growing intervals, instead of every job hammering a consumer that
 * is down. A small pure state machine on an injected {@linkcode Clock}; it sends nothing itself.
 *
 * - `closed`: everything may be sent. {@linkcode CircuitOptions.failureThreshold} failures in a
 *   row open it.
 * - `open`: nothing may be sent until the probe interval has passed; then `canSend()` grants one
 *   probe and the circuit is `half_open`.
 * - `half_open`: the probe is out; nothing else may be sent. Its success closes the circuit, its
 *   failure opens it again for a longer interval (doubling with the one backoff of
 *   `ops/backoff.ts`, up to {@linkcode CircuitOptions.maxProbeIntervalMs}). A probe whose outcome
 *   is never recorded (its caller crashed) does not block the destination forever: once the
 *   interval has passed again, another probe is granted. A success recorded while open (an
 *   attempt sent before the circuit opened) closes it too: the destination has answered.
 *
 * What counts (see {@linkcode circuitEffect}): a failure is a sign the destination itself is
 * unwell: a network error, a timeout, 5xx, 429 or 408 (every `retry` outcome of `send.ts`). A
 * rejection (other 4xx, a 3xx) is the event's problem, not the destination's: the destination
 * answered on purpose, so it counts as a success and never opens the circuit, however many events
 * a consumer's bug rejects. 410 Gone counts for nothing here: the caller pauses the destination.
 *
 * @module
 */

import { backoffMs } from "../ops/backoff.ts";
import type { Clock } from "../ops/clock.ts";
import type { AttemptOutcome } from "./send.ts";

/** Where a circuit is, as metrics report it. */
export type CircuitState = "closed" | "open" | "half_open";

/** What an attempt's outcome means for the destination's circuit. */
export type CircuitEffect = "success" | "failure" | "neutral";

/** The limits of a circuit. */
export interface CircuitLimits {
  /** Failures in a row that open a closed circuit. */
  failureThreshold: number;
  /** How long the circuit stays open the first time before a probe, in milliseconds. */
  baseProbeIntervalMs: number;
  /** No wait before a probe exceeds this, in milliseconds. */
  maxProbeIntervalMs: number;
}

/**
 * Defaults: five failures in a row are no accident, and the first probe 5 s later catches a quick
 * restart; the interval doubles to at most 5 minutes, so a consumer back after a long outage gets
 * its events within minutes while one probe every 5 minutes costs it nothing.
 */
export const DEFAULT_CIRCUIT_LIMITS: Readonly<CircuitLimits> = {
  failureThreshold: 5,
  baseProbeIntervalMs: 5_000,
  maxProbeIntervalMs: 5 * 60_000,
};

/** A change of state, told to {@linkcode CircuitOptions.onTransition} for a log line. */
export interface CircuitTransition {
  from: CircuitState;
  to: CircuitState;
  /** Failures in a row when the change happened (0 once closed). */
  consecutiveFailures: number;
  /** When the circuit opened: the wait before the next probe, in milliseconds. */
  probeIntervalMs?: number;
}

/** What {@linkcode createCircuitBreaker} needs. */
export interface CircuitOptions extends Partial<CircuitLimits> {
  /** The time the probe intervals are measured with. */
  clock: Clock;
  /**
   * Told about every change of state, after it happened. An observer that throws is ignored: the
   * state has changed all the same.
   */
  onTransition?: (transition: CircuitTransition) => void;
}

/** One destination's circuit; see the module doc. */
export interface CircuitBreaker {
  /** Where the circuit is now. An open circuit whose interval has passed is still `open`. */
  state(): CircuitState;
  /**
   * Whether an attempt may go out now. On an open circuit whose interval has passed it grants the
   * probe (and moves to `half_open`): call it only when about to send.
   */
  canSend(): boolean;
  /** Records an attempt's outcome (see {@linkcode circuitEffect}). */
  record(outcome: AttemptOutcome | AttemptOutcome["kind"]): void;
  /** When the next probe may go, in epoch milliseconds; `undefined` while closed. */
  nextProbeAtMs(): number | undefined;
}

/**
 * What an outcome means for the circuit: `retry` (network, timeout, 408, 429, 5xx) is a failure
 * of the destination; `delivered` and `rejected` (the destination answered on purpose; a
 * rejection is the event's problem) are successes; `gone` is neutral, the caller pauses the
 * destination instead.
 */
export function circuitEffect(outcome: AttemptOutcome | AttemptOutcome["kind"]): CircuitEffect {
  const kind = typeof outcome === "string" ? outcome : outcome.kind;
  switch (kind) {
    case "retry":
      return "failure";
    case "delivered":
    case "rejected":
      return "success";
    case "gone":
      return "neutral";
  }
}

/**
 * Creates a closed circuit.
 *
 * @throws {RangeError} when a limit is not a positive whole number, or the base interval exceeds
 * the maximum.
 */
export function createCircuitBreaker(options: CircuitOptions): CircuitBreaker {
  const { clock, onTransition } = options;
  const limits: CircuitLimits = {
    failureThreshold: options.failureThreshold ?? DEFAULT_CIRCUIT_LIMITS.failureThreshold,
    baseProbeIntervalMs: options.baseProbeIntervalMs ?? DEFAULT_CIRCUIT_LIMITS.baseProbeIntervalMs,
    maxProbeIntervalMs: options.maxProbeIntervalMs ?? DEFAULT_CIRCUIT_LIMITS.maxProbeIntervalMs,
  };
  _checkLimits(limits);

  let state: CircuitState = "closed";
  let consecutiveFailures = 0;
  /** Times the circuit has opened since it last closed; it sets the probe interval. */
  let openings = 0;
  let probeIntervalMs = 0;
  /** While open: when a probe may go. While half open: when a lost probe may be replaced. */
  let nextProbeAt = 0;

  function moveTo(to: CircuitState): void {
    const from = state;
    state = to;
    if (from === to || !onTransition) return;
    try {
      onTransition({
        from,
        to,
        consecutiveFailures,
        ...(to === "open" ? { probeIntervalMs } : {}),
      });
    } catch {
      // An observer's bug must not change what the circuit decides.
    }
  }

  function open(): void {
    probeIntervalMs = backoffMs(openings, {
      baseDelayMs: limits.baseProbeIntervalMs,
      maxDelayMs: limits.maxProbeIntervalMs,
      jitter: 0, // one probe per destination: nothing to spread
      random: () => 0,
    });
    openings++;
    nextProbeAt = clock.now() + probeIntervalMs;
    moveTo("open");
  }

  function close(): void {
    consecutiveFailures = 0;
    openings = 0;
    moveTo("closed");
  }

  return {
    state: () => state,
    canSend() {
      if (state === "closed") return true;
      if (clock.now() < nextProbeAt) return false;
      // The interval has passed: one probe, and another only if its outcome never comes.
      nextProbeAt = clock.now() + probeIntervalMs;
      moveTo("half_open");
      return true;
    },
    record(outcome) {
      const effect = circuitEffect(outcome);
      if (effect === "success") return close();
      if (effect === "neutral") return;
      consecutiveFailures++;
      if (state === "half_open") return open(); // the probe failed
      // While open, a failure is an attempt sent before the circuit opened: already counted.
      if (state === "closed" && consecutiveFailures >= limits.failureThreshold) open();
    },
    nextProbeAtMs: () => (state === "closed" ? undefined : nextProbeAt),
  };
}

function _checkLimits(limits: CircuitLimits): void {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`Cannot create a circuit: "${name}" must be a positive whole number`);
    }
  }
  if (limits.baseProbeIntervalMs > limits.maxProbeIntervalMs) {
    throw new RangeError(
      `Cannot create a circuit: "baseProbeIntervalMs" (${limits.baseProbeIntervalMs}) exceeds "maxProbeIntervalMs" (${limits.maxProbeIntervalMs})`,
    );
  }
}
