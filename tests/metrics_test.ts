import assert from "node:assert/strict";
import { BoundedLabelValues, Registry } from "../src/ops/metrics.ts";
import { parseExposition, samplesOf, valueOf } from "./prometheus_text.ts";

Deno.test("render() writes HELP and TYPE once per metric, then its series", () => {
  const registry = new Registry();
  const counter = registry.counter({ name: "jobs_total", help: "Jobs.", labelNames: ["queue"] });
  registry.gauge({ name: "temperature", help: "Degrees." });
  counter.inc({ queue: "a" });
  const text = registry.render();
  assert.equal(
    text,
    [
      "# HELP jobs_total Jobs.",
      "# TYPE jobs_total counter",
      'jobs_total{queue="a"} 1',
      "# HELP temperature Degrees.",
      "# TYPE temperature gauge",
      "temperature 0",
      "",
    ].join("\n"),
  );
  const exposition = parseExposition(text);
  assert.equal(exposition.types.get("jobs_total"), "counter");
  assert.equal(exposition.types.get("temperature"), "gauge");
});

Deno.test("a counter adds per label set and an unlabelled one starts at 0", () => {
  const registry = new Registry();
  const byQueue = registry.counter({ name: "jobs_total", help: "h", labelNames: ["queue"] });
  registry.counter({ name: "runs_total", help: "h" });
  byQueue.inc({ queue: "a" });
  byQueue.inc({ queue: "a" }, 2.5);
  byQueue.inc({ queue: "b" }, 0);
  const exposition = parseExposition(registry.render());
  assert.equal(valueOf(exposition, "jobs_total", { queue: "a" }), 3.5);
  assert.equal(valueOf(exposition, "jobs_total", { queue: "b" }), 0);
  assert.equal(valueOf(exposition, "runs_total"), 0);
  assert.equal(samplesOf(exposition, "jobs_total").length, 2);
});

Deno.test("a counter refuses to go down or by a non-finite amount", () => {
  const counter = new Registry().counter({ name: "c_total", help: "h" });
  assert.throws(() => counter.inc({}, -1), RangeError);
  assert.throws(() => counter.inc({}, NaN), RangeError);
  assert.throws(() => counter.inc({}, Infinity), RangeError);
  assert.equal(counter.get({}), 0);
});

Deno.test("labels must be exactly the declared ones", () => {
  const registry = new Registry();
  const counter = registry.counter({ name: "c_total", help: "h", labelNames: ["a", "b"] });
  assert.throws(() => counter.inc({ a: "x" } as never), /takes labels \[a, b\], got \[a\]/);
  assert.throws(() => counter.inc({ a: "x", b: "y", c: "z" } as never), /got \[a, b, c\]/);
  assert.throws(() => counter.inc(), /got \[\]/);
  counter.inc({ b: "y", a: "x" });
  assert.equal(valueOf(parseExposition(registry.render()), "c_total", { a: "x", b: "y" }), 1);
});

Deno.test("a gauge sets, adds, subtracts, resets and renders NaN and infinities", () => {
  const registry = new Registry();
  const gauge = registry.gauge({ name: "g", help: "h", labelNames: ["k"] });
  gauge.set({ k: "set" }, 5);
  gauge.inc({ k: "set" }, -2);
  gauge.inc({ k: "up" });
  gauge.set({ k: "nan" }, NaN);
  gauge.set({ k: "inf" }, Infinity);
  gauge.set({ k: "-inf" }, -Infinity);
  let exposition = parseExposition(registry.render());
  assert.equal(valueOf(exposition, "g", { k: "set" }), 3);
  assert.equal(valueOf(exposition, "g", { k: "up" }), 1);
  assert.ok(Number.isNaN(valueOf(exposition, "g", { k: "nan" })));
  assert.equal(valueOf(exposition, "g", { k: "inf" }), Infinity);
  assert.equal(valueOf(exposition, "g", { k: "-inf" }), -Infinity);
  assert.match(registry.render(), /^g\{k="inf"\} \+Inf$/m);

  gauge.reset();
  exposition = parseExposition(registry.render());
  assert.equal(samplesOf(exposition, "g").length, 0);
});

Deno.test("label values escape backslash, double quote and newline; help escapes too", () => {
  const registry = new Registry();
  const counter = registry.counter({
    name: "odd_total",
    help: 'A help with a \\ backslash,\na newline and "quotes"',
    labelNames: ["value"],
  });
  const odd = 'C:\\path "quoted"\nsecond line';
  counter.inc({ value: odd });
  const text = registry.render();
  assert.ok(text.includes('odd_total{value="C:\\\\path \\"quoted\\"\\nsecond line"} 1\n'));
  assert.ok(
    text.includes('# HELP odd_total A help with a \\\\ backslash,\\na newline and "quotes"'),
  );
  const exposition = parseExposition(text);
  assert.equal(valueOf(exposition, "odd_total", { value: odd }), 1);
  assert.equal(
    exposition.help.get("odd_total"),
    'A help with a \\ backslash,\na newline and "quotes"',
  );
});

Deno.test("histogram buckets are cumulative and end with +Inf equal to the count", () => {
  const registry = new Registry();
  const histogram = registry.histogram({
    name: "latency_seconds",
    help: "h",
    labelNames: ["route"],
    buckets: [0.01, 0.1, 1],
  });
  for (const value of [0.005, 0.01, 0.05, 0.5, 2, 30]) histogram.observe({ route: "a" }, value);
  histogram.observe({ route: "b" }, 0.2);
  const exposition = parseExposition(registry.render());
  const a = (le: string) => valueOf(exposition, "latency_seconds_bucket", { route: "a", le });
  // A bound is inclusive: 0.01 falls in le="0.01".
  assert.deepEqual([a("0.01"), a("0.1"), a("1"), a("+Inf")], [2, 3, 4, 6]);
  assert.equal(valueOf(exposition, "latency_seconds_count", { route: "a" }), 6);
  assert.ok(
    Math.abs(valueOf(exposition, "latency_seconds_sum", { route: "a" }) - 32.565) < 1e-9,
  );
  const b = (le: string) => valueOf(exposition, "latency_seconds_bucket", { route: "b", le });
  assert.deepEqual([b("0.01"), b("0.1"), b("1"), b("+Inf")], [0, 0, 1, 1]);
  assert.equal(exposition.types.get("latency_seconds"), "histogram");
  // `le` comes last among the labels, as Prometheus writes it.
  assert.match(registry.render(), /^latency_seconds_bucket\{route="a",le="0\.01"\} 2$/m);
});

Deno.test("an unlabelled histogram renders its empty buckets before any observation", () => {
  const registry = new Registry();
  registry.histogram({ name: "h_seconds", help: "h", buckets: [1, 2] });
  const exposition = parseExposition(registry.render());
  assert.equal(valueOf(exposition, "h_seconds_bucket", { le: "+Inf" }), 0);
  assert.equal(valueOf(exposition, "h_seconds_count"), 0);
  assert.equal(valueOf(exposition, "h_seconds_sum"), 0);
});

Deno.test("declarations are validated: names, labels, buckets, duplicates", () => {
  const registry = new Registry();
  assert.throws(() => registry.counter({ name: "bad-name", help: "h" }), /not a valid/);
  assert.throws(
    () => registry.counter({ name: "c_total", help: "h", labelNames: ["__reserved"] }),
    /not allowed/,
  );
  assert.throws(
    () => registry.histogram({ name: "h", help: "h", labelNames: ["le"], buckets: [1] }),
    /not allowed/,
  );
  assert.throws(() => registry.counter({ name: "c2_total", help: "h", labelNames: ["a", "a"] }));
  assert.throws(() => registry.histogram({ name: "h1", help: "h", buckets: [1, 1] }), /ascending/);
  assert.throws(() => registry.histogram({ name: "h2", help: "h", buckets: [2, 1] }), /ascending/);
  assert.throws(() => registry.histogram({ name: "h3", help: "h", buckets: [] }), /ascending/);
  registry.gauge({ name: "taken", help: "h" });
  assert.throws(() => registry.counter({ name: "taken", help: "h" }), /already registered/);
});

Deno.test("series render sorted by label values, whatever the order they appeared in", () => {
  const registry = new Registry();
  const counter = registry.counter({ name: "c_total", help: "h", labelNames: ["k"] });
  for (const k of ["b", "c", "a"]) counter.inc({ k });
  const lines = registry.render().split("\n").filter((line) => line.startsWith("c_total"));
  assert.deepEqual(lines, ['c_total{k="a"} 1', 'c_total{k="b"} 1', 'c_total{k="c"} 1']);
});

Deno.test("collect() runs every collector and returns the errors of those that threw", async () => {
  const registry = new Registry();
  const gauge = registry.gauge({ name: "g", help: "h" });
  registry.addCollector(() => {
    throw new Error("first failed");
  });
  registry.addCollector(async () => {
    await Promise.resolve();
    gauge.set({}, 42);
  });
  const errors = await registry.collect();
  assert.equal(errors.length, 1);
  assert.match(String(errors[0]), /first failed/);
  assert.equal(valueOf(parseExposition(registry.render()), "g"), 42);
});

Deno.test("BoundedLabelValues keeps known values, then the first safe ones, then the fallback", () => {
  const labels = new BoundedLabelValues({ known: ["text"], maxDistinct: 2 });
  const seen = ["text", "poll", "a b", 'x"}', "é", "", "y".repeat(33), "vote", "later", "poll"]
    .map((value) => labels.valueOf(value));
  assert.deepEqual(seen, [
    "text",
    "poll",
    "other",
    "other",
    "other",
    "other",
    "other",
    "vote",
    "other",
    "poll",
  ]);
  assert.equal(labels.valueOf("text"), "text", "known values never run out");
  const custom = new BoundedLabelValues({ maxDistinct: 0, fallback: "rest" });
  assert.equal(custom.valueOf("poll"), "rest");
});
