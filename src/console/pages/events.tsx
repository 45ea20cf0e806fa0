/**
 * The events page: the event log newest first, each row with its kind and type (message type,
 * status value or change field), filtered (state, kind, field, type, business number, other party,
 * destination state, time range), paged with the store's cursor, and kept current by the script,
 * which redraws the first page's rows from `/console/events/live`.
 *
 * @module
 */
import type { VNode } from "preact";
import type { WebhookEvent } from "../../events/events.ts";
import type { EventSummary } from "../../store/store.ts";
import { EVENT_KINDS, EVENT_STATES } from "../../store/event_record.ts";
import { JOB_STATES } from "../../store/job_record.ts";
import { Layout, StateBadge } from "../layout.tsx";

/** The filter fields of the events page, as their query parameters. */
export const EVENT_FILTER_FIELDS = [
  "state",
  "kind",
  "field",
  "type",
  "business",
  "party",
  "jobState",
  "from",
  "to",
] as const;

/** The query of the events page: each filter field as typed, empty when unset. */
export type EventFilterQuery = Partial<Record<(typeof EVENT_FILTER_FIELDS)[number], string>>;

/** A row of the events page: the store's summary and what the event is within its kind. */
export interface EventRow extends EventSummary {
  /** The message type, status value or change field (`typeOfEvent`); absent when expired. */
  type?: string;
}

/**
 * What an event is within its kind, as Meta named it: a message's type (the type Meta sent for
 * one this service cannot type), a status's value, a change's or an echo's field (the field Meta
 * sent for one this service does not know), an unknown event's field when it had one.
 */
export function typeOfEvent(event: WebhookEvent): string | undefined {
  switch (event.kind) {
    case "message":
      return event.message.type === "unknown"
        ? event.message.originalType ?? "unknown"
        : event.message.type;
    case "status":
      return event.status.status;
    case "change":
      return event.field === "unknown" ? event.originalField : event.field;
    case "echo":
      return event.field;
    case "unknown":
      return event.field;
  }
}

/** What the events page shows. */
export interface EventsPageProps {
  csrf: string;
  query: EventFilterQuery;
  events: readonly EventRow[];
  /** The next page's link, when another page follows. */
  nextHref?: string | undefined;
  /** The live endpoint for this filter; absent past the first page (it would jump back). */
  liveHref?: string | undefined;
  notice?: string | undefined;
}

/** The link of an event's page. */
export function eventHref(id: string): string {
  return `/console/events/${encodeURIComponent(id)}`;
}

/** The events page. */
export function EventsPage(props: EventsPageProps): VNode {
  const { query } = props;
  return (
    <Layout title="Events" current="/console/events" csrf={props.csrf} notice={props.notice}>
      <form class="filters" method="get" action="/console/events" role="search">
        <Choice name="state" label="State" value={query.state} options={EVENT_STATES} />
        <Choice name="kind" label="Kind" value={query.kind} options={EVENT_KINDS} />
        <Text name="field" label="Change field" value={query.field} hint="messages" />
        <Text name="type" label="Message type" value={query.type} hint="text" />
        <Text name="business" label="Business number id" value={query.business} />
        <Text name="party" label="Sender / recipient" value={query.party} />
        <Choice
          name="jobState"
          label="Destination state"
          value={query.jobState}
          options={JOB_STATES}
        />
        <Text name="from" label="From (ISO time)" value={query.from} hint="2026-12-04T10:00Z" />
        <Text name="to" label="To (ISO time)" value={query.to} hint="2026-12-04T12:00Z" />
        <button type="submit">Filter</button>
        <a href="/console/events">Clear</a>
      </form>
      <p id="live-status" class="muted" aria-live="polite">
        {props.liveHref ? "Live: new events appear here" : "Older events (not live)"}
      </p>
      <table class="rows" data-live={props.liveHref}>
        <thead>
          <tr>
            <th scope="col">Event</th>
            <th scope="col">Received</th>
            <th scope="col">Kind · type</th>
            <th scope="col">State</th>
            <th scope="col">Attempts</th>
            <th scope="col">Last error</th>
          </tr>
        </thead>
        <tbody>
          {props.events.map((event) => (
            <tr key={event.id}>
              <td data-label="Event" class="id">
                <a href={eventHref(event.id)}>{event.id}</a>
              </td>
              <td data-label="Received">{event.receivedAt}</td>
              <td data-label="Kind">{event.type ? `${event.kind} · ${event.type}` : event.kind}</td>
              <td data-label="State">
                <StateBadge state={event.state} />
              </td>
              <td data-label="Attempts">{event.attempts}</td>
              <td data-label="Last error">{event.lastError ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {props.events.length === 0 && <p class="muted">No event matches.</p>}
      {props.nextHref && (
        <p>
          <a href={props.nextHref} rel="next">Older events</a>
        </p>
      )}
    </Layout>
  );
}

function Choice(
  props: { name: string; label: string; value: string | undefined; options: readonly string[] },
): VNode {
  return (
    <label>
      {props.label}
      <select name={props.name}>
        <option value="">any</option>
        {props.options.map((option) => (
          <option key={option} value={option} selected={option === props.value}>{option}</option>
        ))}
      </select>
    </label>
  );
}

function Text(
  props: { name: string; label: string; value: string | undefined; hint?: string },
): VNode {
  return (
    <label>
      {props.label}
      <input type="text" name={props.name} value={props.value ?? ""} placeholder={props.hint} />
    </label>
  );
}
