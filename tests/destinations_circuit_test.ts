/** The destinations' circuit breaker: opening, probing, closing, and what counts as a failure. */

import assert from "node:assert/strict";
import {
  type CircuitBreaker,
  circuitEffect,
  type CircuitOptions,
  type CircuitTransition,
  createCircuitBreaker,
  DEFAULT_CIRCUIT_LIMITS,
} from "../src/destinations/circuit.ts";
import { sendOnce } from "../src/destinations/send.ts";
import { ManualClock } from "../src/ops/clock.ts";

const LIMITS = { failureThreshold: 3, baseProbeIntervalMs: 1_000, maxProbeIntervalMs: 4_000 };

function setUp(options: Partial<CircuitOptions> = {}): {
  clock: ManualClock;
  circuit: CircuitBreaker;
  transitions: CircuitTransition[];
} {
  const clock = new ManualClock();
  const transitions: CircuitTransition[] = [];
  const circuit = createCircuitBreaker({
    clock,
    ...LIMITS,
    onTransition: (transition) => transitions.push(transition),
    ...options,
  });
  return { clock, circuit, transitions };
}

function fail(circuit: CircuitBreaker, times: number): void {
  for (let i = 0; i < times; i++) circuit.record("retry");
}

Deno.test("circuitEffect() counts network, timeout, 408, 429 and 5xx as failures, 4xx as not", () => {
  assert.equal(circuitEffect("retry"), "failure");
  assert.equal(
    circuitEffect({ kind: "retry", cause: "timeout", reason: "r", durationMs: 1 }),
    "failure",
  );
  assert.equal(circuitEffect("delivered"), "success");
  assert.equal(
    circuitEffect({ kind: "rejected", status: 400, reason: "r", durationMs: 1 }),
    "success",
  );
  assert.equal(circuitEffect("gone"), "neutral");
});

Deno.test("a circuit opens after failureThreshold failures in a row, not before", () => {
  const { circuit, transitions } = setUp();
  fail(circuit, LIMITS.failureThreshold - 1);
  assert.equal(circuit.state(), "closed");
  assert.equal(circuit.canSend(), true);
  assert.equal(circuit.nextProbeAtMs(), undefined);
  fail(circuit, 1);
  assert.equal(circuit.state(), "open");
  assert.equal(circuit.canSend(), false);
  assert.deepEqual(transitions, [
    { from: "closed", to: "open", consecutiveFailures: 3, probeIntervalMs: 1_000 },
  ]);
});

Deno.test("a circuit counts failures in a row: a success in between starts the count again", () => {
  const { circuit } = setUp();
  fail(circuit, LIMITS.failureThreshold - 1);
  circuit.record("delivered");
  fail(circuit, LIMITS.failureThreshold - 1);
  assert.equal(circuit.state(), "closed");
});

Deno.test("a circuit opens after DEFAULT_CIRCUIT_LIMITS.failureThreshold (5) failures by default", () => {
  const circuit = createCircuitBreaker({ clock: new ManualClock() });
  fail(circuit, DEFAULT_CIRCUIT_LIMITS.failureThreshold - 1);
  assert.equal(circuit.state(), "closed");
  fail(circuit, 1);
  assert.equal(circuit.state(), "open");
  assert.equal(DEFAULT_CIRCUIT_LIMITS.failureThreshold, 5);
});

Deno.test("4xx rejections of events never open a circuit, however many", () => {
  const { circuit, transitions } = setUp();
  for (let i = 0; i < 50; i++) circuit.record("rejected");
  assert.equal(circuit.state(), "closed");
  assert.equal(circuit.canSend(), true);
  // A rejection shows the destination answering: it ends a run of failures too.
  fail(circuit, LIMITS.failureThreshold - 1);
  circuit.record({ kind: "rejected", status: 422, reason: "Unprocessable", durationMs: 3 });
  fail(circuit, LIMITS.failureThreshold - 1);
  assert.equal(circuit.state(), "closed");
  assert.deepEqual(transitions, []);
});

Deno.test("an open circuit grants one probe per interval", async () => {
  const { clock, circuit, transitions } = setUp();
  fail(circuit, LIMITS.failureThreshold);
  const openedAt = clock.now();
  assert.equal(circuit.nextProbeAtMs(), openedAt + 1_000);
  await clock.advance(999);
  assert.equal(circuit.canSend(), false, "before the interval: nothing");
  await clock.advance(1);
  assert.equal(circuit.canSend(), true, "the interval has passed: the probe");
  assert.equal(circuit.state(), "half_open");
  assert.equal(circuit.canSend(), false, "one probe only");
  assert.equal(circuit.canSend(), false);
  assert.deepEqual(transitions.map((t) => `${t.from}->${t.to}`), [
    "closed->open",
    "open->half_open",
  ]);
});

Deno.test("a probe's success closes the circuit and the next opening starts at the base interval", async () => {
  const { clock, circuit, transitions } = setUp();
  fail(circuit, LIMITS.failureThreshold);
  await clock.advance(1_000);
  assert.equal(circuit.canSend(), true);
  circuit.record("retry"); // probe failed: open for 2 s
  await clock.advance(2_000);
  assert.equal(circuit.canSend(), true);
  circuit.record({ kind: "delivered", status: 200, durationMs: 4 });
  assert.equal(circuit.state(), "closed");
  assert.equal(circuit.canSend(), true);
  assert.equal(circuit.nextProbeAtMs(), undefined);
  assert.deepEqual(transitions.at(-1), { from: "half_open", to: "closed", consecutiveFailures: 0 });
  // Closed again, it needs a full run of failures to open, and then waits the base interval.
  fail(circuit, LIMITS.failureThreshold - 1);
  assert.equal(circuit.state(), "closed");
  fail(circuit, 1);
  assert.equal(circuit.nextProbeAtMs(), clock.now() + LIMITS.baseProbeIntervalMs);
});

Deno.test("a failed probe reopens the circuit for a doubled interval, capped at maxProbeIntervalMs", async () => {
  const { clock, circuit, transitions } = setUp();
  fail(circuit, LIMITS.failureThreshold);
  const waits: number[] = [];
  for (let probe = 0; probe < 5; probe++) {
    const wait = circuit.nextProbeAtMs()! - clock.now();
    waits.push(wait);
    await clock.advance(wait - 1);
    assert.equal(circuit.canSend(), false, `probe ${probe}: not before its interval`);
    await clock.advance(1);
    assert.equal(circuit.canSend(), true, `probe ${probe}: at its interval`);
    circuit.record("retry");
    assert.equal(circuit.state(), "open");
  }
  assert.deepEqual(waits, [1_000, 2_000, 4_000, 4_000, 4_000]);
  assert.deepEqual(
    transitions.filter((t) => t.to === "open").map((t) => t.probeIntervalMs),
    [1_000, 2_000, 4_000, 4_000, 4_000, 4_000],
  );
});

Deno.test("a probe whose outcome never comes is replaced after the interval", async () => {
  const { clock, circuit } = setUp();
  fail(circuit, LIMITS.failureThreshold);
  await clock.advance(1_000);
  assert.equal(circuit.canSend(), true);
  await clock.advance(999);
  assert.equal(circuit.canSend(), false, "the probe may still be out");
  await clock.advance(1);
  assert.equal(circuit.canSend(), true, "the probe was lost: another one");
  assert.equal(circuit.state(), "half_open");
});

Deno.test("failures of attempts sent before the circuit opened do not lengthen its interval", () => {
  const { clock, circuit } = setUp();
  fail(circuit, LIMITS.failureThreshold);
  const nextProbeAt = circuit.nextProbeAtMs();
  fail(circuit, 10); // concurrent attempts that were already out
  assert.equal(circuit.state(), "open");
  assert.equal(circuit.nextProbeAtMs(), nextProbeAt);
  assert.equal(nextProbeAt, clock.now() + LIMITS.baseProbeIntervalMs);
});

Deno.test("410 Gone neither opens nor closes a circuit", async () => {
  const { clock, circuit } = setUp();
  fail(circuit, LIMITS.failureThreshold - 1);
  circuit.record("gone");
  fail(circuit, 1);
  assert.equal(circuit.state(), "open", "the run of failures went on through the 410");
  await clock.advance(1_000);
  assert.equal(circuit.canSend(), true);
  circuit.record("gone");
  assert.equal(circuit.state(), "half_open");
});

Deno.test("a throwing transition observer does not change what the circuit decides", () => {
  const { circuit } = setUp({
    onTransition: () => {
      throw new Error("observer bug");
    },
  });
  fail(circuit, LIMITS.failureThreshold);
  assert.equal(circuit.state(), "open");
  assert.equal(circuit.canSend(), false);
});

Deno.test("createCircuitBreaker() refuses limits that are not positive whole numbers", () => {
  const clock = new ManualClock();
  assert.throws(
    () => createCircuitBreaker({ clock, failureThreshold: 0 }),
    {
      name: "RangeError",
      message: 'Cannot create a circuit: "failureThreshold" must be a positive whole number',
    },
  );
  assert.throws(() => createCircuitBreaker({ clock, baseProbeIntervalMs: 1.5 }), RangeError);
  assert.throws(
    () => createCircuitBreaker({ clock, baseProbeIntervalMs: 10_000, maxProbeIntervalMs: 5_000 }),
    /"baseProbeIntervalMs" \(10000\) exceeds "maxProbeIntervalMs" \(5000\)/,
  );
});

Deno.test("real attempts: 503s from a destination open its circuit, 400s do not", async () => {
  let status = 400;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("no", { status }),
  );
  try {
    const url = `http://127.0.0.1:${server.addr.port}/hooks`;
    const { circuit } = setUp();
    const attempt = () => sendOnce({ url, headers: {}, body: "{}", timeoutMs: 2_000 });
    for (let i = 0; i < LIMITS.failureThreshold * 2; i++) circuit.record(await attempt());
    assert.equal(circuit.state(), "closed", "rejections are the events' problem");
    status = 503;
    for (let i = 0; i < LIMITS.failureThreshold; i++) circuit.record(await attempt());
    assert.equal(circuit.state(), "open");
  } finally {
    await server.shutdown();
  }
});
