import assert from "node:assert/strict";
import { createLogger, formatPrettyLine, type LogLevel, resolveLogFormat } from "../src/ops/log.ts";

/** 12:04:05.123 local time: the pretty format shows local time, as a wall clock does. */
const AT = new Date(2026, 6, 29, 12, 4, 5, 123).getTime();

function capture(): { lines: string[]; sink: (line: string, level: LogLevel) => void } {
  const lines: string[] = [];
  return { lines, sink: (line) => lines.push(line) };
}

Deno.test("formatPrettyLine() writes time, level, message and fields on one line", () => {
  const line = formatPrettyLine(AT, "info", "started", {
    kv: "file",
    worker: 64,
    isDev: true,
    missing: null,
    skipped: undefined,
  });
  assert.equal(line, "12:04:05.123 INFO  started kv=file worker=64 isDev=true missing=null");
});

Deno.test("formatPrettyLine() quotes strings with spaces, quotes, = or new lines", () => {
  const line = formatPrettyLine(AT, "warn", "graph call failed", {
    reason: "rate limited by Meta",
    quote: 'say "hi"',
    pair: "a=b",
    lines: "one\ntwo",
    empty: "",
    path: "/webhook?x",
  });
  assert.equal(
    line,
    '12:04:05.123 WARN  graph call failed reason="rate limited by Meta" quote="say \\"hi\\"" ' +
      'pair="a=b" lines="one\\ntwo" empty="" path=/webhook?x',
  );
  assert.equal(line.split("\n").length, 1);
});

Deno.test("formatPrettyLine() shows nested objects and arrays as compact JSON", () => {
  const line = formatPrettyLine(AT, "debug", "claimed", {
    job: { id: "j1", attempt: 2, cause: new RangeError("too far") },
    ids: ["a", "b"],
    size: 10n,
  });
  assert.equal(
    line,
    '12:04:05.123 DEBUG claimed job={"id":"j1","attempt":2,"cause":{"name":"RangeError",' +
      '"message":"too far"}} ids=["a","b"] size=10',
  );
});

Deno.test("formatPrettyLine() shows an error by its message, and its stack only when asked", () => {
  const error = new TypeError("fetch failed");
  const line = formatPrettyLine(AT, "error", "handler failed", { eventId: "e1", error });
  assert.equal(
    line,
    '12:04:05.123 ERROR handler failed eventId=e1 error="TypeError: fetch failed"',
  );

  const withStack = formatPrettyLine(AT, "error", "handler failed", { error }, { hasStacks: true });
  const [first, ...frames] = withStack.split("\n");
  assert.equal(first, '12:04:05.123 ERROR handler failed error="TypeError: fetch failed"');
  assert.ok(frames.length > 0, "the stack follows the line");
  for (const frame of frames) assert.match(frame, /^ {4}at \S/);
  assert.match(frames[0]!, /log_test\.ts/);
});

Deno.test("formatPrettyLine() colours the time and level only when asked", () => {
  const line = formatPrettyLine(AT, "warn", "slow", {}, { isColored: true });
  assert.equal(line, "\x1b[2m12:04:05.123\x1b[0m \x1b[33mWARN \x1b[0m slow");
});

Deno.test("createLogger() with format pretty writes bound and given fields readably", () => {
  const { lines, sink } = capture();
  const logger = createLogger({ level: "info", format: "pretty", sink, now: () => AT })
    .child({ requestId: "r-1" });
  logger.info("acknowledged", { events: 2, reason: "new delivery" });
  logger.debug("dropped below the level");
  assert.deepEqual(lines, [
    '12:04:05.123 INFO  acknowledged requestId=r-1 events=2 reason="new delivery"',
  ]);
});

Deno.test("createLogger() adds error stacks to pretty lines only at debug level", () => {
  for (const level of ["debug", "info"] as const) {
    const { lines, sink } = capture();
    const logger = createLogger({ level, format: "pretty", sink, now: () => AT });
    logger.error("cannot start", { error: new Error("boom") });
    const lineCount = lines[0]!.split("\n").length;
    if (level === "debug") assert.ok(lineCount > 1, "the stack follows at debug");
    else assert.equal(lineCount, 1, "one line at info");
  }
});

Deno.test("createLogger() with format auto writes JSON when standard output is not a terminal", () => {
  const { lines, sink } = capture();
  const logger = createLogger({
    level: "info",
    format: "auto",
    isTerminal: () => false,
    sink,
    now: () => AT,
  });
  logger.info("started", { kv: "file" });
  assert.deepEqual(JSON.parse(lines[0]!), {
    time: new Date(AT).toISOString(),
    level: "info",
    msg: "started",
    kv: "file",
  });
});

Deno.test("createLogger() with format auto writes pretty lines at a terminal, children too", () => {
  const { lines, sink } = capture();
  let checks = 0;
  const isTerminal = () => (checks++, true);
  const logger = createLogger({ level: "info", format: "auto", isTerminal, sink, now: () => AT });
  logger.child({ eventId: "e1" }).info("dispatched");
  assert.deepEqual(lines, ["12:04:05.123 INFO  dispatched eventId=e1"]);
  assert.equal(checks, 1, "the terminal is checked once, not per child or line");
});

Deno.test("resolveLogFormat() keeps an explicit format whatever the terminal", () => {
  assert.equal(resolveLogFormat("json", () => true), "json");
  assert.equal(resolveLogFormat("pretty", () => false), "pretty");
  assert.equal(resolveLogFormat("auto", () => true), "pretty");
  assert.equal(resolveLogFormat("auto", () => false), "json");
});

Deno.test("both formats show the same fields: the format never adds or drops one", () => {
  const fields = { eventId: "e1", ms: 12, skipped: undefined, fn: () => 1, error: new Error("x") };
  const json = capture();
  createLogger({ level: "info", sink: json.sink, now: () => AT }).warn("slow", fields);
  const pretty = capture();
  createLogger({ level: "info", format: "pretty", sink: pretty.sink, now: () => AT })
    .warn("slow", fields);
  const jsonKeys = Object.keys(JSON.parse(json.lines[0]!)).filter((key) =>
    !["time", "level", "msg"].includes(key)
  );
  const prettyKeys = [...pretty.lines[0]!.matchAll(/ (\w+)=/g)].map((match) => match[1]);
  assert.deepEqual(prettyKeys, jsonKeys);
  assert.deepEqual(prettyKeys, ["eventId", "ms", "error"]);
});
