/**
 * An event's page: its record (state, attempts, whether it is `done`), the typed event and the
 * part of Meta's delivery it came from (`raw_part.ts`), each pretty-printed with message text
 * hidden until asked for, its handler runs as a timeline, its delivery jobs with their states, and
 * buttons that replay the event or one of its jobs.
 *
 * @module
 */
import type { VNode } from "preact";
import type { WebhookEvent } from "../../events/events.ts";
import type { AttemptRecord, EventRecord } from "../../store/event_record.ts";
import { currentError, totalAttempts } from "../../store/event_record.ts";
import { type JobRecord, totalJobAttempts } from "../../store/job_record.ts";
import { Layout, PostButton, shownDuration, shownTime, StateBadge } from "../layout.tsx";
import { withoutMessageText } from "../message_text.ts";
import { rawPartOf } from "../raw_part.ts";

/** What an event's page shows. */
export interface EventPageProps {
  csrf: string;
  record: EventRecord;
  event: WebhookEvent;
  jobs: readonly JobRecord[];
  /** Handlers succeeded and every job delivered or dead. */
  isDone: boolean;
  /** `CONSOLE_HIDE_TEXT=on`: the text is never shown. */
  hidesText: boolean;
  notice?: string | undefined;
}

/** An event's page. */
export function EventPage(props: EventPageProps): VNode {
  const { record, event, jobs } = props;
  const here = `/console/events/${encodeURIComponent(record.id)}`;
  const lastError = currentError(record);
  const raw = rawPartOf(event);
  return (
    <Layout title="Event" current="/console/events" csrf={props.csrf} notice={props.notice}>
      <dl class="facts">
        <dt>Id</dt>
        <dd class="id">{record.id}</dd>
        <dt>Kind</dt>
        <dd>{record.kind}</dd>
        <dt>State</dt>
        <dd>
          <StateBadge state={record.state} />
        </dd>
        <dt>Done</dt>
        <dd>
          <span class={`state state-${props.isDone ? "done" : "pending"}`} id="done">
            {props.isDone ? "done" : "not done"}
          </span>
        </dd>
        <dt>Attempts</dt>
        <dd>{totalAttempts(record)}</dd>
        <dt>Received</dt>
        <dd>{shownTime(record.receivedAt)}</dd>
        <dt>Due</dt>
        <dd>{shownTime(record.dueAt)}</dd>
        <dt>Handlers done</dt>
        <dd>{record.completedHandlers.join(", ") || "—"}</dd>
        {lastError !== undefined && (
          <>
            <dt>Last error</dt>
            <dd>{lastError}</dd>
          </>
        )}
      </dl>
      <div class="actions">
        <PostButton
          action={`${here}/replay`}
          csrf={props.csrf}
          label="Replay this event"
        />
      </div>

      <h2>Attempts</h2>
      <Timeline history={record.history} />

      <h2>Destinations</h2>
      {jobs.length === 0
        ? <p class="muted">No destination receives this event.</p>
        : (
          <table class="rows">
            <thead>
              <tr>
                <th scope="col">Destination</th>
                <th scope="col">State</th>
                <th scope="col">Attempts</th>
                <th scope="col">Due</th>
                <th scope="col">Last error</th>
                <th scope="col">Action</th>
              </tr>
            </thead>
            <tbody>
              {jobs.map((job) => (
                <tr key={job.destination}>
                  <td data-label="Destination">{job.destination}</td>
                  <td data-label="State">
                    <StateBadge state={job.state} />
                  </td>
                  <td data-label="Attempts">{totalJobAttempts(job)}</td>
                  <td data-label="Due">{shownTime(job.dueAt)}</td>
                  <td data-label="Last error">{job.lastError ?? ""}</td>
                  <td data-label="Action">
                    <PostButton
                      action={`/console/destinations/${encodeURIComponent(job.destination)}/jobs/${
                        encodeURIComponent(job.eventId)
                      }/replay`}
                      csrf={props.csrf}
                      label={`Deliver again to ${job.destination}`}
                      fields={{ back: here }}
                    />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}

      <h2>The event</h2>
      <WithHiddenText value={event} hidesText={props.hidesText} what="the event" />

      <h2>As Meta sent it</h2>
      <p class="muted">
        The part of the delivery it came from: <code>{raw.path}</code>.
      </p>
      <WithHiddenText value={raw.part} hidesText={props.hidesText} what="Meta's part" />
    </Layout>
  );
}

/**
 * `value` pretty-printed with its message text hidden, and the whole of it behind a
 * `<details>` the operator opens (none when the settings hide text always).
 */
function WithHiddenText(props: { value: unknown; hidesText: boolean; what: string }): VNode {
  return (
    <>
      <pre>{JSON.stringify(withoutMessageText(props.value), null, 2)}</pre>
      {props.hidesText
        ? <p class="muted">Message text is hidden by the service's settings.</p>
        : (
          <details>
            <summary>Show the message text of {props.what} (personal data)</summary>
            <pre>{JSON.stringify(props.value, null, 2)}</pre>
          </details>
        )}
    </>
  );
}

/** Attempts oldest first, each with its time, duration and error. */
export function Timeline(props: { history: readonly AttemptRecord[] }): VNode {
  if (props.history.length === 0) return <p class="muted">No attempt yet.</p>;
  return (
    <ol class="timeline">
      {props.history.map((attempt, n) => (
        <li key={n} class={attempt.error === undefined ? "ok" : "failed"}>
          <strong>{shownTime(attempt.at)}</strong> · {shownDuration(attempt.ms)} ·{" "}
          {attempt.error === undefined ? "succeeded" : `failed: ${attempt.error}`}
        </li>
      ))}
    </ol>
  );
}
