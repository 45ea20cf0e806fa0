/**
 * Test support: a strict reader of the Prometheus text exposition format 0.0.4, so tests assert
 * on values a scraper would see, and fail on any line a scraper would refuse.
 *
 * @module
 */

/** One sample line: a name, its labels, and its value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A parsed exposition. */
export interface Exposition {
  samples: Sample[];
  /** `# HELP` text by metric name, unescaped. */
  help: Map<string, string>;
  /** `# TYPE` by metric name. */
  types: Map<string, string>;
}

const _NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const _LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/** Parses `text`; throws on the first line that is not valid 0.0.4. */
export function parseExposition(text: string): Exposition {
  const exposition: Exposition = { samples: [], help: new Map(), types: new Map() };
  if (text !== "" && !text.endsWith("\n")) {
    throw new Error("Exposition does not end with a newline");
  }
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (help) {
      exposition.help.set(help[1]!, _unescape(help[2]!, false));
      continue;
    }
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/
      .exec(line);
    if (type) {
      if (exposition.types.has(type[1]!)) throw new Error(`Second TYPE line for "${type[1]}"`);
      exposition.types.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith("#")) throw new Error(`Unexpected comment line: ${line}`);
    exposition.samples.push(_sample(line));
  }
  return exposition;
}

/** The value of the one sample with this name and exactly these labels; throws if absent. */
export function valueOf(
  exposition: Exposition,
  name: string,
  labels: Record<string, string> = {},
): number {
  const wanted = JSON.stringify(Object.entries(labels).sort());
  const found = exposition.samples.filter((sample) =>
    sample.name === name && JSON.stringify(Object.entries(sample.labels).sort()) === wanted
  );
  if (found.length !== 1) {
    throw new Error(`Expected one sample ${name}${wanted}, found ${found.length}`);
  }
  return found[0]!.value;
}

/** Every sample with this name. */
export function samplesOf(exposition: Exposition, name: string): Sample[] {
  return exposition.samples.filter((sample) => sample.name === name);
}

function _sample(line: string): Sample {
  const name = _NAME.exec(line)?.[0];
  if (!name) throw new Error(`Bad sample line: ${line}`);
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith("{")) {
    rest = rest.slice(1);
    while (!rest.startsWith("}")) {
      const label = _LABEL_NAME.exec(rest)?.[0];
      if (!label || rest[label.length] !== "=" || rest[label.length + 1] !== '"') {
        throw new Error(`Bad label in: ${line}`);
      }
      rest = rest.slice(label.length + 2);
      let raw = "";
      for (;;) {
        const char = rest[0];
        if (char === undefined) throw new Error(`Unterminated label value in: ${line}`);
        if (char === "\n") throw new Error(`Raw newline in label value: ${line}`);
        if (char === "\\") {
          raw += rest.slice(0, 2);
          rest = rest.slice(2);
          continue;
        }
        rest = rest.slice(1);
        if (char === '"') break;
        raw += char;
      }
      if (label in labels) throw new Error(`Label "${label}" twice in: ${line}`);
      labels[label] = _unescape(raw, true);
      if (rest.startsWith(",")) rest = rest.slice(1);
      else if (!rest.startsWith("}")) throw new Error(`Bad label separator in: ${line}`);
    }
    rest = rest.slice(1);
  }
  const value = / ([^ ]+)$/.exec(rest)?.[1];
  if (value === undefined || rest !== ` ${value}`) throw new Error(`Bad value in: ${line}`);
  return { name, labels, value: _number(value, line) };
}

function _number(text: string, line: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  const value = Number(text);
  if (text.trim() === "" || Number.isNaN(value)) throw new Error(`Bad number in: ${line}`);
  return value;
}

/** Undoes `\\`, `\n` and (in label values) `\"`; any other escape is an error. */
function _unescape(text: string, isLabelValue: boolean): string {
  return text.replace(/\\(.)/g, (match, char: string) => {
    if (char === "\\") return "\\";
    if (char === "n") return "\n";
    if (char === '"' && isLabelValue) return '"';
    throw new Error(`Bad escape "${match}"`);
  });
}
