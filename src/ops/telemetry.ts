/**
 * Tracing on Deno's built-in OpenTelemetry (`OTEL_DENO=true`): spans for the pipeline steps the
 * runtime cannot see (intake's verify, parse and record; the worker's claims, runs, handlers and
 * results; Graph API calls), and the scrubbing of query strings from the URL attributes that the
 * runtime puts on its own `Deno.serve` and `fetch` spans.
 *
 * Without `OTEL_DENO` no tracer is registered with `@opentelemetry/api`: the first span finds that
 * out, and from then on {@linkcode withSpan} only calls its function (a no-op span through the API
 * allocates a context per span; skipping it gave the intake a few percent).
 *
 * Attributes carry ids, kinds, counts, outcomes and durations, never a secret, a token, a
 * signature or message text. Error messages are left out too: a JSON parse error quotes the body.
 * Deno 2.9 appends an attribute set twice instead of replacing it (both values are exported), so
 * each key is set once per span.
 *
 * @module
 */
import {
  type Attributes,
  type AttributeValue,
  INVALID_SPAN_CONTEXT,
  type Span,
  type SpanOptions,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";

/** The instrumentation scope of our spans. */
export const TRACER_NAME = "wa-webhook";

/** What replaces each part of a query string (the word OpenTelemetry's conventions use). */
export const REDACTED = "REDACTED";

/**
 * Span attributes that hold a URL or a query string: the ones Deno 2.9 sets on `Deno.serve` and
 * `fetch` spans (`url.full`, `url.query`) and their names in older HTTP conventions.
 */
const URL_ATTRIBUTES: ReadonlySet<string> = new Set([
  "url.full",
  "url.query",
  "http.url",
  "http.target",
]);

/** Marks a span prototype whose attribute setters already redact. */
const _REDACTING = Symbol.for("wa-webhook.redactSpanUrls");

const _tracer = trace.getTracer(TRACER_NAME);

/** A span that records nothing, for runs while no tracer is registered. */
const _NOOP_SPAN: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/**
 * Whether spans are recorded, decided at the first span: Deno registers its tracer (with
 * `OTEL_DENO=true`) before any module runs.
 */
let _isTracing: boolean | undefined;

/** Options for {@linkcode withSpan}. */
export interface WithSpanOptions {
  /** Set when the span starts; the run may set others (each key once). */
  attributes?: Attributes;
  /** Starts a new trace instead of a child of the active span (the worker's runs). */
  root?: boolean;
}

/**
 * Runs `run` inside a new active span named `name` and ends the span when `run` returns, or when
 * the promise it returns settles. A throw or rejection marks the span as an error, with the
 * error's class name as `error.type` and no message. Returns (or rethrows) what `run` does.
 */
export function withSpan<T>(
  name: string,
  run: (span: Span) => T,
  options: WithSpanOptions = {},
): T {
  // A probe that is never ended is never exported.
  _isTracing ??= _tracer.startSpan("wa-webhook.probe").isRecording();
  if (!_isTracing) return run(_NOOP_SPAN);
  const spanOptions: SpanOptions = {
    ...(options.attributes ? { attributes: options.attributes } : {}),
    ...(options.root ? { root: true } : {}),
  };
  return _tracer.startActiveSpan(name, spanOptions, (span) => {
    let result: T;
    try {
      result = run(span);
    } catch (error) {
      _endWithError(span, error);
      throw error;
    }
    if (!(result instanceof Promise)) {
      span.end();
      return result;
    }
    return result.then((value) => {
      span.end();
      return value;
    }, (error) => {
      _endWithError(span, error);
      throw error;
    }) as T;
  });
}

/** Sets attributes on the active span (the innermost {@linkcode withSpan}), if there is one. */
export function annotateSpan(attributes: Attributes): void {
  trace.getActiveSpan()?.setAttributes(attributes);
}

/** Adds a timestamped event with `attributes` to the active span, if there is one. */
export function addSpanEvent(name: string, attributes: Attributes): void {
  trace.getActiveSpan()?.addEvent(name, attributes);
}

/**
 * Names the runtime's `Deno.serve` span after the matched route (`POST /webhook/whatsapp`, not
 * just `POST`) and sets `http.route`. Call it from the router, where that span is the active one.
 */
export function nameRequestSpan(method: string, route: string): void {
  const span = trace.getActiveSpan();
  span?.updateName(`${method} ${route}`);
  span?.setAttribute("http.route", route);
}

/**
 * Makes every span of this process scrub the query string of its URL attributes
 * (`url.full`, `url.query`, …): each `name=value` becomes `name=REDACTED`, and a part without `=`
 * becomes `REDACTED`. This keeps the handshake's `hub.verify_token` and `hub.challenge` away from
 * the collector.
 *
 * Why a patch: Deno 2.9 sets `url.full` and `url.query` on the `Deno.serve` span before our handler
 * runs, setting them again appends a second value instead of replacing the first, and no
 * `OTEL_*` variable scrubs them. So the setters of the runtime's span class are wrapped, which the
 * runtime's own instrumentation calls too. `tests/telemetry_test.ts` proves it against a real
 * OTLP receiver, so a Deno release that changes this fails the tests rather than leaking.
 *
 * Call it once at start, before serving. Returns `false` (and changes nothing) when no tracer is
 * registered, i.e. without `OTEL_DENO=true`.
 */
export function redactSpanUrls(): boolean {
  // A span that is never ended is never exported: it only shows the runtime's span class.
  const probe = _tracer.startSpan("wa-webhook.probe");
  if (!probe.isRecording()) return false;
  const prototype = Object.getPrototypeOf(probe) as _PatchableSpan;
  if (prototype[_REDACTING]) return true;
  const { setAttribute, setAttributes } = prototype;
  prototype.setAttribute = function (this: Span, key: string, value: AttributeValue): Span {
    return setAttribute.call(this, key, _redactAttribute(key, value));
  };
  prototype.setAttributes = function (this: Span, attributes: Attributes): Span {
    const redacted: Attributes = {};
    for (const [key, value] of Object.entries(attributes)) {
      redacted[key] = value === undefined ? value : _redactAttribute(key, value);
    }
    return setAttributes.call(this, redacted);
  };
  prototype[_REDACTING] = true;
  return true;
}

/**
 * Replaces every part of the query string of `url` (absolute, relative, or a bare query when
 * `isQueryOnly`) with {@linkcode REDACTED}, keeping parameter names; drops a `#fragment`.
 * `https://h/p?hub.mode=subscribe&x` gives `https://h/p?hub.mode=REDACTED&REDACTED`.
 */
export function redactUrlQuery(url: string, isQueryOnly = false): string {
  const withoutFragment = url.split("#", 1)[0]!;
  if (isQueryOnly) return _redactQueryString(withoutFragment);
  const start = withoutFragment.indexOf("?") + 1;
  if (start === 0) return withoutFragment;
  return withoutFragment.slice(0, start) + _redactQueryString(withoutFragment.slice(start));
}

/** The setters {@linkcode redactSpanUrls} wraps, as the span class's prototype has them. */
interface _PatchableSpan {
  setAttribute(this: Span, key: string, value: AttributeValue): Span;
  setAttributes(this: Span, attributes: Attributes): Span;
  [_REDACTING]?: boolean;
}

function _redactAttribute(key: string, value: AttributeValue): AttributeValue {
  if (!URL_ATTRIBUTES.has(key) || typeof value !== "string") return value;
  return redactUrlQuery(value, key === "url.query");
}

function _redactQueryString(query: string): string {
  if (query === "") return query;
  return query.split("&").map((part) => {
    const equals = part.indexOf("=");
    return equals === -1 ? REDACTED : `${part.slice(0, equals)}=${REDACTED}`;
  }).join("&");
}

function _endWithError(span: Span, error: unknown): void {
  span.setAttribute("error.type", error instanceof Error ? error.constructor.name : typeof error);
  span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}
