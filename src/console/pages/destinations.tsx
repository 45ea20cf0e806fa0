/**
 * The destinations page: each declared destination's state (delivering, paused and why), its
 * circuit in this process, its backlog and its last dead jobs' errors, with buttons that pause,
 * resume, and replay its dead jobs.
 *
 * @module
 */
import type { VNode } from "preact";
import type { JobFigures, JobRecord } from "../../store/store.ts";
import type { PauseView } from "../../destinations/pauses.ts";
import type { CircuitState } from "../../destinations/circuit.ts";
import { Layout, PostButton, shownDuration, shownTime, StateBadge } from "../layout.tsx";
import { eventHref } from "./events.tsx";

/** One destination as the console shows it. */
export interface DestinationView {
  name: string;
  /** Its URL without query or fragment. */
  url: string;
  pause: PauseView | undefined;
  circuit: CircuitState | undefined;
  backlog: JobFigures;
  /** Its newest dead jobs. */
  deadJobs: readonly JobRecord[];
  /** More dead jobs than shown. */
  hasMoreDead: boolean;
}

/** The destinations page. */
export function DestinationsPage(
  props: { csrf: string; destinations: readonly DestinationView[]; notice?: string | undefined },
): VNode {
  return (
    <Layout
      title="Destinations"
      current="/console/destinations"
      csrf={props.csrf}
      notice={props.notice}
    >
      {props.destinations.length === 0 && (
        <p class="muted">
          No destination is declared (<code>DESTINATIONS</code>).
        </p>
      )}
      {props.destinations.map((destination) => (
        <DestinationSection key={destination.name} csrf={props.csrf} destination={destination} />
      ))}
    </Layout>
  );
}

/** A destination's health in a word: `paused`, `open` (circuit), `backlog`, or `ok`. */
export function destinationHealth(destination: {
  pause: PauseView | undefined;
  circuit: CircuitState | undefined;
  backlog: JobFigures;
}): "paused" | "open" | "half_open" | "backlog" | "ok" {
  if (destination.pause) return "paused";
  if (destination.circuit === "open" || destination.circuit === "half_open") {
    return destination.circuit;
  }
  return destination.backlog.oldestDueAgeMs > 60_000 ? "backlog" : "ok";
}

function DestinationSection(props: { csrf: string; destination: DestinationView }): VNode {
  const { destination: d, csrf } = props;
  const base = `/console/destinations/${encodeURIComponent(d.name)}`;
  const headingId = `destination-${d.name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  return (
    <section aria-labelledby={headingId}>
      <h2 id={headingId}>
        {d.name} <StateBadge state={destinationHealth(d)} />
      </h2>
      <dl class="facts">
        <dt>URL</dt>
        <dd class="id">{d.url}</dd>
        <dt>State</dt>
        <dd>
          {d.pause
            ? `paused (${
              d.pause.by === "declared" ? "declared" : "at run time"
            }): ${d.pause.reason}${
              d.pause.since === undefined ? "" : `, since ${shownTime(d.pause.since)}`
            }`
            : "delivering"}
        </dd>
        <dt>Circuit</dt>
        <dd>{d.circuit ? <StateBadge state={d.circuit} /> : "—"}</dd>
        <dt>Backlog</dt>
        <dd>
          {d.backlog.due} due, {d.backlog.later} later; oldest due waited{" "}
          {shownDuration(d.backlog.oldestDueAgeMs)}
        </dd>
      </dl>
      <div class="actions">
        {d.pause
          ? <PostButton action={`${base}/resume`} csrf={csrf} label={`Resume ${d.name}`} />
          : (
            <PostButton
              action={`${base}/pause`}
              csrf={csrf}
              label={`Pause ${d.name}`}
              isDanger
            />
          )}
        {d.deadJobs.length > 0 && (
          <PostButton
            action={`${base}/dead-jobs/replay`}
            csrf={csrf}
            label={`Replay every dead job of ${d.name}`}
          />
        )}
      </div>
      <h3>Last errors</h3>
      {d.deadJobs.length === 0 ? <p class="muted">No dead job.</p> : (
        <ul>
          {d.deadJobs.map((job) => (
            <li key={job.eventId}>
              <a class="id" href={eventHref(job.eventId)}>{job.eventId}</a>:{" "}
              {job.lastError ?? "no error kept"}
            </li>
          ))}
          {d.hasMoreDead && <li class="muted">and more (see Recover)</li>}
        </ul>
      )}
    </section>
  );
}
