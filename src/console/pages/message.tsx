/**
 * The sent-message page: the furthest delivery state of a message the business sent (sent,
 * delivered, read, played, or failed with Meta's error), looked up by its `wamid`.
 *
 * @module
 */
import type { VNode } from "preact";
import type { MessageStatusRecord } from "../../store/store.ts";
import { Layout, shownTime, StateBadge } from "../layout.tsx";

/** What the sent-message page shows: the form, and the status when an id was asked for. */
export interface MessagePageProps {
  csrf: string;
  wamid?: string | undefined;
  /** `null`: asked for, not tracked. */
  status?: MessageStatusRecord | null;
}

/** The sent-message page. */
export function MessagePage(props: MessagePageProps): VNode {
  const { status } = props;
  return (
    <Layout title="A sent message" current="/console/messages" csrf={props.csrf}>
      <form class="filters" method="get" action="/console/messages" role="search">
        <label>
          Message id (wamid)
          <input type="text" name="wamid" value={props.wamid ?? ""} required size={48} />
        </label>
        <button type="submit">Look up</button>
      </form>
      {status === null && (
        <p class="notice warning" role="status">
          No status is tracked for <span class="id">{props.wamid}</span> (never seen, or older than
          {" "}
          <code>STATUS_RETENTION_DAYS</code>).
        </p>
      )}
      {status && (
        <dl class="facts">
          <dt>Id</dt>
          <dd class="id">{status.id}</dd>
          <dt>Status</dt>
          <dd>
            <StateBadge state={status.status === "failed" ? "dead" : status.status} />{" "}
            {status.status}
          </dd>
          <dt>Updated</dt>
          <dd>{shownTime(status.updatedAt)}</dd>
          {status.errors && status.errors.length > 0 && (
            <>
              <dt>Meta's error</dt>
              <dd>
                <pre>{JSON.stringify(status.errors, null, 2)}</pre>
              </dd>
            </>
          )}
        </dl>
      )}
    </Layout>
  );
}
