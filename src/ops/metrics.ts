/**
 * A small Prometheus registry of our own: counters, gauges and fixed-bucket histograms with
 * labels, rendered in the text exposition format 0.0.4. No dependency and no default process
 * metrics (they read zeros under Deno's permissions).
 *
 * Labels are always the first argument, an object naming every declared label and no other
 * (`deliveries.inc({ outcome: "accepted" })`, `queueAge.set({}, 12)`); a wrong label set throws,
 * since it is a programming error. Series render sorted by their label values, so the output is
 * stable for tests and diffs. Collectors registered with {@linkcode Registry.addCollector} run
 * at scrape time to fill gauges that are read, not counted.
 *
 * @module
 */

/** The content type of {@linkcode Registry.render}'s output. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Label values by label name; `L` is the union of the metric's label names. */
export type Labels<L extends string> = { readonly [K in L]: string };

/** What every metric is declared with. */
export interface MetricOptions<L extends string> {
  /** `[a-zA-Z_:][a-zA-Z0-9_:]*`; counters end in `_total` by convention. */
  name: string;
  /** One line for `# HELP`. */
  help: string;
  /** The label names, in the order they render; none by default. */
  labelNames?: readonly L[];
}

/** A histogram's declaration: its bucket upper bounds, ascending (`+Inf` is added). */
export interface HistogramOptions<L extends string> extends MetricOptions<L> {
  buckets: readonly number[];
}

/** Fills gauges at scrape time; may be async (it may read the store). */
export type Collector = () => void | Promise<void>;

const _METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const _LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** The metrics of one process, and the collectors that refresh some of them. */
export class Registry {
  #metrics: _Metric<string>[] = [];
  #names = new Set<string>();
  #collectors: Collector[] = [];

  /** Declares a counter: a value that only goes up. */
  counter<L extends string = never>(options: MetricOptions<L>): Counter<L> {
    return this.#add(new Counter(options));
  }

  /** Declares a gauge: a value that goes up and down, or is set at scrape time. */
  gauge<L extends string = never>(options: MetricOptions<L>): Gauge<L> {
    return this.#add(new Gauge(options));
  }

  /** Declares a histogram with fixed buckets. */
  histogram<L extends string = never>(options: HistogramOptions<L>): Histogram<L> {
    return this.#add(new Histogram(options));
  }

  /** Runs `collector` on every {@linkcode collect}, in the order collectors were added. */
  addCollector(collector: Collector): void {
    this.#collectors.push(collector);
  }

  /**
   * Runs every collector. A collector that throws does not stop the others: its error is returned,
   * for the caller to log, and the gauges it fills keep whatever it left in them.
   */
  async collect(): Promise<unknown[]> {
    const errors: unknown[] = [];
    for (const collector of this.#collectors) {
      try {
        await collector();
      } catch (error) {
        errors.push(error);
      }
    }
    return errors;
  }

  /** Every metric in the text exposition format 0.0.4, in declaration order, ending with `\n`. */
  render(): string {
    return this.#metrics.map((metric) => metric.render()).join("");
  }

  #add<M extends _Metric<string>>(metric: M): M {
    if (this.#names.has(metric.name)) {
      throw new Error(`A metric named "${metric.name}" is already registered`);
    }
    this.#names.add(metric.name);
    this.#metrics.push(metric);
    return metric;
  }
}

/** What the metric kinds share: name, help, labels, and series keyed by their label values. */
abstract class _Metric<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  protected abstract readonly type: "counter" | "gauge" | "histogram";

  constructor(options: MetricOptions<L>) {
    if (!_METRIC_NAME.test(options.name)) {
      throw new Error(`Metric name "${options.name}" is not a valid Prometheus name`);
    }
    for (const label of options.labelNames ?? []) {
      if (!_LABEL_NAME.test(label) || label.startsWith("__") || label === "le") {
        throw new Error(`Label name "${label}" of metric "${options.name}" is not allowed`);
      }
    }
    if (new Set(options.labelNames).size !== (options.labelNames ?? []).length) {
      throw new Error(`Metric "${options.name}" declares a label name twice`);
    }
    this.name = options.name;
    this.help = options.help;
    this.labelNames = options.labelNames ?? [];
  }

  /** The label values in declaration order; throws unless `labels` names exactly the labels. */
  protected values(labels: Labels<L>): string[] {
    const given = labels as Record<string, unknown>;
    const keys = Object.keys(given);
    const isExact = keys.length === this.labelNames.length &&
      this.labelNames.every((name) => typeof given[name] === "string");
    if (!isExact) {
      throw new Error(
        `Metric "${this.name}" takes labels [${this.labelNames.join(", ")}], got [${
          keys.join(", ")
        }]`,
      );
    }
    return this.labelNames.map((name) => given[name] as string);
  }

  /** `# HELP` and `# TYPE`, then the series lines. */
  render(): string {
    const header = `# HELP ${this.name} ${
      _escapeHelp(this.help)
    }\n# TYPE ${this.name} ${this.type}\n`;
    return header + this.renderSeries();
  }

  protected abstract renderSeries(): string;

  /** `{a="x",b="y"}` for these values (plus `extra` pairs), or `""` when there are none. */
  protected labelText(values: readonly string[], extra: readonly [string, string][] = []): string {
    const pairs = [
      ...this.labelNames.map((name, i): [string, string] => [name, values[i] ?? ""]),
      ...extra,
    ];
    if (pairs.length === 0) return "";
    return `{${pairs.map(([name, value]) => `${name}="${_escapeLabelValue(value)}"`).join(",")}}`;
  }
}

/** A single-valued series store shared by counters and gauges. */
abstract class _ValueMetric<L extends string> extends _Metric<L> {
  #series = new Map<string, { values: string[]; value: number }>();

  constructor(options: MetricOptions<L>) {
    super(options);
    // An unlabelled metric exists from the start: it renders 0 before its first change.
    if (this.labelNames.length === 0) this.#series.set("[]", { values: [], value: 0 });
  }

  /** The current value of a series; 0 for a series never touched. */
  get(labels: Labels<L>): number {
    return this.#series.get(JSON.stringify(this.values(labels)))?.value ?? 0;
  }

  protected update(labels: Labels<L>, change: (value: number) => number): void {
    const values = this.values(labels);
    const key = JSON.stringify(values);
    const series = this.#series.get(key) ?? { values, value: 0 };
    series.value = change(series.value);
    this.#series.set(key, series);
  }

  protected clearSeries(): void {
    this.#series.clear();
    if (this.labelNames.length === 0) this.#series.set("[]", { values: [], value: 0 });
  }

  protected renderSeries(): string {
    return _sorted(this.#series).map((series) =>
      `${this.name}${this.labelText(series.values)} ${_formatNumber(series.value)}\n`
    ).join("");
  }
}

/** A value that only goes up, per label set. */
export class Counter<L extends string = never> extends _ValueMetric<L> {
  protected readonly type = "counter";

  /**
   * Adds `by` (default 1) to the series of `labels`; `inc({ … }, 0)` makes a series visible at 0.
   *
   * @throws {RangeError} when `by` is negative or not finite
   */
  inc(labels: Labels<L> = {} as Labels<L>, by = 1): void {
    if (!(by >= 0 && Number.isFinite(by))) {
      throw new RangeError(`Counter "${this.name}" cannot grow by ${by}`);
    }
    this.update(labels, (value) => value + by);
  }
}

/** A value that goes up and down, per label set. */
export class Gauge<L extends string = never> extends _ValueMetric<L> {
  protected readonly type = "gauge";

  /** Sets the series of `labels` to `value` (`NaN` says "unknown right now"). */
  set(labels: Labels<L>, value: number): void {
    this.update(labels, () => value);
  }

  /** Adds `by` (default 1; negative to subtract) to the series of `labels`. */
  inc(labels: Labels<L> = {} as Labels<L>, by = 1): void {
    this.update(labels, (value) => value + by);
  }

  /** Forgets every series, for collectors whose label sets change between scrapes. */
  reset(): void {
    this.clearSeries();
  }
}

/** Observations counted into fixed buckets, per label set, with their sum and count. */
export class Histogram<L extends string = never> extends _Metric<L> {
  protected readonly type = "histogram";
  /** The upper bounds, ascending, without `+Inf`. */
  readonly buckets: readonly number[];
  #series = new Map<string, { values: string[]; counts: number[]; sum: number; count: number }>();

  constructor(options: HistogramOptions<L>) {
    super(options);
    const buckets = options.buckets.filter((bound) => bound !== Infinity);
    const isAscending = buckets.every((bound, i) =>
      Number.isFinite(bound) && (i === 0 || bound > (buckets[i - 1] ?? -Infinity))
    );
    if (buckets.length === 0 || !isAscending) {
      throw new Error(`Histogram "${options.name}" needs finite buckets in ascending order`);
    }
    this.buckets = buckets;
    if (this.labelNames.length === 0) this.#series.set("[]", this.#empty([]));
  }

  /** Counts `value` in the series of `labels`: in every bucket whose bound is at least `value`. */
  observe(labels: Labels<L>, value: number): void {
    if (Number.isNaN(value)) return;
    const values = this.values(labels);
    const key = JSON.stringify(values);
    const series = this.#series.get(key) ?? this.#empty(values);
    const index = this.buckets.findIndex((bound) => value <= bound);
    // Stored per bucket, not cumulatively; `render` adds them up.
    const slot = index === -1 ? this.buckets.length : index;
    series.counts[slot] = (series.counts[slot] ?? 0) + 1;
    series.sum += value;
    series.count++;
    this.#series.set(key, series);
  }

  protected renderSeries(): string {
    let text = "";
    for (const series of _sorted(this.#series)) {
      let cumulative = 0;
      for (const [i, bound] of [...this.buckets, Infinity].entries()) {
        cumulative += series.counts[i] ?? 0;
        const le = this.labelText(series.values, [["le", _formatNumber(bound)]]);
        text += `${this.name}_bucket${le} ${cumulative}\n`;
      }
      const labels = this.labelText(series.values);
      text += `${this.name}_sum${labels} ${_formatNumber(series.sum)}\n`;
      text += `${this.name}_count${labels} ${series.count}\n`;
    }
    return text;
  }

  #empty(values: string[]): { values: string[]; counts: number[]; sum: number; count: number } {
    return { values, counts: new Array(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }
}

/** Options for {@linkcode BoundedLabelValues}. */
export interface BoundedLabelValuesOptions {
  /** Values always kept as they are, not counted against `maxDistinct` (a closed set). */
  known?: Iterable<string>;
  /** Other values kept, the first ones seen; later ones become `fallback`. */
  maxDistinct: number;
  /** What a value becomes once `maxDistinct` are kept, or when it is not safe; `other` by default. */
  fallback?: string;
}

/**
 * Label values taken from outside (a payload's message type): each is kept as it is when it is
 * safe (letters, digits and `_`, at most {@linkcode MAX_OUTSIDE_LABEL_CHARS}) and among the first
 * `maxDistinct` such values seen, else it becomes the fallback. So a sender cannot grow a metric
 * past `known` + `maxDistinct` + 1 series per label, nor put odd text in a scrape.
 */
export class BoundedLabelValues {
  #known: ReadonlySet<string>;
  #kept = new Set<string>();
  #maxDistinct: number;
  #fallback: string;

  /** See {@linkcode BoundedLabelValuesOptions}. */
  constructor(options: BoundedLabelValuesOptions) {
    this.#known = new Set(options.known ?? []);
    this.#maxDistinct = options.maxDistinct;
    this.#fallback = options.fallback ?? "other";
  }

  /** `value` when it is known, or safe and kept (now or before); the fallback otherwise. */
  valueOf(value: string): string {
    if (this.#known.has(value) || this.#kept.has(value)) return value;
    if (!_SAFE_OUTSIDE_LABEL.test(value) || this.#kept.size >= this.#maxDistinct) {
      return this.#fallback;
    }
    this.#kept.add(value);
    return value;
  }
}

/** Longest label value taken from outside; Meta's names (`interactive`, …) are far shorter. */
export const MAX_OUTSIDE_LABEL_CHARS = 32;

const _SAFE_OUTSIDE_LABEL = new RegExp(`^[A-Za-z0-9_]{1,${MAX_OUTSIDE_LABEL_CHARS}}$`);

/** Series sorted by their label values, for a stable output. */
function _sorted<T extends { values: string[] }>(series: Map<string, T>): T[] {
  return [...series.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, s]) => s);
}

/** Numbers as Prometheus reads them: `+Inf`, `-Inf`, `NaN`, or JavaScript's shortest form. */
function _formatNumber(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  if (Number.isNaN(value)) return "NaN";
  return String(value);
}

/** Label values escape backslash, double quote and line feed. */
function _escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** Help text escapes backslash and line feed. */
function _escapeHelp(help: string): string {
  return help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}
