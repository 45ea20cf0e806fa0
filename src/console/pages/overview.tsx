/**
 * The overview: is anything arriving (events per minute over the last hours, as a bar chart drawn
 * on the server as inline SVG), the silence warning, the acknowledgement latency, the queue's depth
 * and oldest age, the dead letters, and each destination's health.
 *
 * @module
 */
import type { RateSeries } from "../../ops/delivery_rate.ts";
import type { VNode } from "preact";
import type { QueueFigures } from "../../store/store.ts";
import { ACK_LATENCY_BUCKETS_SECONDS, type AckLatency } from "../../ops/service_metrics.ts";
import { Layout, shownDuration, shownTime, StateBadge } from "../layout.tsx";

/** Events per minute: one count per bucket, oldest first. */
export interface EventRate {
  /** The first bucket's start, ms since the epoch. */
  startMs: number;
  bucketMs: number;
  counts: readonly number[];
  /** The reading stopped at its bound: the counts are a lower bound. */
  isPartial: boolean;
}

/** What the overview shows. */
export interface OverviewProps {
  csrf: string;
  rate: EventRate;
  queue: QueueFigures;
  /** Dead letters of the handlers, counted up to a bound (`deadAtLeast` when reached). */
  dead: number;
  deadAtLeast: boolean;
  /** The silence warning's text, when deliveries have stopped. */
  silence?: string | undefined;
  /** When the last delivery was accepted by this instance. */
  lastDeliveryAt: number | undefined;
  /** The acknowledgement latency since this instance started; absent: not shown. */
  ackLatency?: AckLatency | undefined;
  /** Deliveries recorded per minute by this instance over the chart's window; absent: not shown. */
  deliveryRate?: RateSeries | undefined;
  destinations: readonly { name: string; health: string; due: number }[];
}

/** The overview page. */
export function OverviewPage(props: OverviewProps): VNode {
  const total = props.rate.counts.reduce((sum, n) => sum + n, 0);
  return (
    <Layout title="Overview" current="/console" csrf={props.csrf}>
      {props.silence && <p class="notice warning" role="alert">{props.silence}</p>}
      <div class="cards">
        <Card
          label="Events in the chart's window"
          figure={`${total}${props.rate.isPartial ? "+" : ""}`}
        />
        <Card label="Events due now (backlog)" figure={String(props.queue.due)} />
        <Card label="Events due later" figure={String(props.queue.later)} />
        <Card label="Oldest due event waited" figure={shownDuration(props.queue.oldestDueAgeMs)} />
        <Card
          label="Dead letters"
          figure={`${props.dead}${props.deadAtLeast ? "+" : ""}`}
          href="/console/recover"
        />
        <Card label="Last delivery (this instance)" figure={shownTime(props.lastDeliveryAt)} />
        {props.ackLatency && (
          <Card
            label={`Acknowledgement p50 / p99 (this instance, ${props.ackLatency.count} deliveries)`}
            figure={`${shownBound(props.ackLatency.p50Seconds)} / ${
              shownBound(props.ackLatency.p99Seconds)
            }`}
          />
        )}
      </div>
      <h2>Events per minute</h2>
      <BarChart rate={props.rate} />
      {props.deliveryRate && (
        <>
          <h2>Deliveries per minute (this instance)</h2>
          <BarChart rate={props.deliveryRate} noun="deliveries" />
        </>
      )}
      <h2>Destinations</h2>
      {props.destinations.length === 0
        ? <p class="muted">No destination is declared.</p>
        : (
          <table class="rows">
            <thead>
              <tr>
                <th scope="col">Destination</th>
                <th scope="col">Health</th>
                <th scope="col">Jobs due</th>
              </tr>
            </thead>
            <tbody>
              {props.destinations.map((d) => (
                <tr key={d.name}>
                  <td data-label="Destination">
                    <a href="/console/destinations">{d.name}</a>
                  </td>
                  <td data-label="Health">
                    <StateBadge state={d.health} />
                  </td>
                  <td data-label="Jobs due">{d.due}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
    </Layout>
  );
}

/** A histogram bucket's upper bound, in seconds, as a person reads it: `≤ 5 ms`, `> 5 s`. */
export function shownBound(seconds: number): string {
  if (Number.isNaN(seconds)) return "—";
  if (seconds === Infinity) return `> ${ACK_LATENCY_BUCKETS_SECONDS.at(-1)} s`;
  return seconds < 1 ? `≤ ${+(seconds * 1_000).toFixed(1)} ms` : `≤ ${seconds} s`;
}

function Card(props: { label: string; figure: string; href?: string }): VNode {
  const figure = <span class="figure">{props.figure}</span>;
  return (
    <div class="card">
      {props.href ? <a href={props.href}>{figure}</a> : figure}
      <span class="label">{props.label}</span>
    </div>
  );
}

/** The chart's drawing size, in SVG units; the stylesheet scales it to the page's width. */
const _WIDTH = 720;
const _HEIGHT = 160;

/** Bars of `noun` (events, deliveries) per bucket, with an accessible name and a title per bar. */
export function BarChart(
  props: { rate: Pick<EventRate, "counts" | "startMs" | "bucketMs">; noun?: string },
): VNode {
  const { counts, startMs, bucketMs } = props.rate;
  const noun = props.noun ?? "events";
  const Noun = noun[0]!.toUpperCase() + noun.slice(1);
  const most = Math.max(1, ...counts);
  const barWidth = _WIDTH / Math.max(1, counts.length);
  const hours = Math.round((counts.length * bucketMs) / 3_600_000);
  const total = counts.reduce((sum, n) => sum + n, 0);
  return (
    <figure>
      <svg
        class="chart"
        viewBox={`0 0 ${_WIDTH} ${_HEIGHT + 16}`}
        role="img"
        aria-label={`${Noun} per minute over the last ${hours} hours: ${total} in all, at most ${
          Math.max(0, ...counts)
        } in one minute`}
      >
        {counts.map((count, n) => {
          const height = (count / most) * _HEIGHT;
          return count === 0 ? null : (
            <rect
              key={n}
              x={n * barWidth}
              y={_HEIGHT - height}
              width={Math.max(1, barWidth - 0.5)}
              height={height}
            >
              <title>{`${shownTime(startMs + n * bucketMs)}: ${count}`}</title>
            </rect>
          );
        })}
        <line x1="0" y1={_HEIGHT} x2={_WIDTH} y2={_HEIGHT} stroke="currentColor" />
      </svg>
      <figcaption class="muted">
        From {shownTime(startMs)} to now; the tallest bar is {most} {noun}.
      </figcaption>
    </figure>
  );
}
