/**
 * The recover page: the dead letters of the handlers and of each destination, filtered by kind
 * and time of reception; replay one, or every one matching the filter after a confirmation step
 * that shows how many match.
 *
 * @module
 */
import type { VNode } from "preact";
import type { EventSummary, JobRecord } from "../../store/store.ts";
import { EVENT_KINDS } from "../../store/event_record.ts";
import { Layout, PostButton } from "../layout.tsx";
import { eventHref } from "./events.tsx";

/** The filter of the recover page, as typed. */
export interface RecoverFilter {
  kind?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
}

/** A replay of every match waiting for the operator's confirmation. */
export interface PendingConfirmation {
  /** `handlers`, or a destination's name. */
  target: string;
  /** How many match now (`atLeast` when the count stopped at its bound). */
  count: number;
  atLeast: boolean;
}

/** What the recover page shows. */
export interface RecoverPageProps {
  csrf: string;
  filter: RecoverFilter;
  deadEvents: readonly EventSummary[];
  deadJobs: readonly { destination: string; jobs: readonly JobRecord[] }[];
  confirmation?: PendingConfirmation | undefined;
  notice?: string | undefined;
}

/** The recover page. */
export function RecoverPage(props: RecoverPageProps): VNode {
  const { filter, csrf, confirmation } = props;
  const filterFields = { kind: filter.kind, from: filter.from, to: filter.to };
  const confirmHref = (target: string): string => {
    const query = new URLSearchParams({ confirm: target });
    for (const [name, value] of Object.entries(filterFields)) if (value) query.set(name, value);
    return `/console/recover?${query}`;
  };
  return (
    <Layout title="Recover" current="/console/recover" csrf={csrf} notice={props.notice}>
      <form class="filters" method="get" action="/console/recover" role="search">
        <label>
          Kind
          <select name="kind">
            <option value="">any</option>
            {EVENT_KINDS.map((kind) => (
              <option key={kind} value={kind} selected={kind === filter.kind}>{kind}</option>
            ))}
          </select>
        </label>
        <label>
          From (ISO time)
          <input type="text" name="from" value={filter.from ?? ""} />
        </label>
        <label>
          To (ISO time)
          <input type="text" name="to" value={filter.to ?? ""} />
        </label>
        <button type="submit">Filter</button>
      </form>

      {confirmation && (
        <section class="notice warning" aria-labelledby="confirm-heading" role="alert">
          <h2 id="confirm-heading">Confirm the replay</h2>
          <p>
            {confirmation.atLeast ? "At least " : ""}
            <strong id="confirm-count">{confirmation.count}</strong>{" "}
            {confirmation.target === "handlers"
              ? "dead letters of the handlers match this filter."
              : `dead jobs of destination "${confirmation.target}" match this filter.`}
          </p>
          <div class="actions">
            <PostButton
              action="/console/recover/replay"
              csrf={csrf}
              label={`Replay ${confirmation.count} now`}
              fields={{ target: confirmation.target, ...filterFields }}
              isDanger
            />
            <a href="/console/recover">Cancel</a>
          </div>
        </section>
      )}

      <h2>Dead letters of the handlers</h2>
      {props.deadEvents.length === 0 ? <p class="muted">None.</p> : (
        <>
          <p>
            <a href={confirmHref("handlers")}>Replay every one matching the filter…</a>
          </p>
          <table class="rows">
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Received</th>
                <th scope="col">Last error</th>
                <th scope="col">Action</th>
              </tr>
            </thead>
            <tbody>
              {props.deadEvents.map((event) => (
                <tr key={event.id}>
                  <td data-label="Event" class="id">
                    <a href={eventHref(event.id)}>{event.id}</a>
                  </td>
                  <td data-label="Received">{event.receivedAt}</td>
                  <td data-label="Last error">{event.lastError ?? ""}</td>
                  <td data-label="Action">
                    <PostButton
                      action={`${eventHref(event.id)}/replay`}
                      csrf={csrf}
                      label="Replay"
                      fields={{ back: "/console/recover" }}
                    />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}

      {props.deadJobs.map(({ destination, jobs }) => (
        <section key={destination}>
          <h2>Dead jobs of {destination}</h2>
          {jobs.length === 0 ? <p class="muted">None.</p> : (
            <>
              <p>
                <a href={confirmHref(destination)}>Replay every one matching the filter…</a>
              </p>
              <ul>
                {jobs.map((job) => (
                  <li key={job.eventId}>
                    <a class="id" href={eventHref(job.eventId)}>{job.eventId}</a>:{" "}
                    {job.lastError ?? ""}{" "}
                    <PostButton
                      action={`/console/destinations/${encodeURIComponent(destination)}/jobs/${
                        encodeURIComponent(job.eventId)
                      }/replay`}
                      csrf={csrf}
                      label="Deliver again"
                      fields={{ back: "/console/recover" }}
                    />
                  </li>
                ))}
              </ul>
            </>
          )}
        </section>
      ))}
    </Layout>
  );
}
