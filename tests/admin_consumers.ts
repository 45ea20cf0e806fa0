/**
 * What the admin API's destination and job tests share: consumers on 127.0.0.1 whose answer a test
 * changes, `DESTINATIONS` pointing at them, admin calls, and posting messages until their jobs
 * reach a state.
 *
 * @module
 */
import assert from "node:assert/strict";
import { messageEventId } from "../src/events/event_ids.ts";
import { textsDelivery } from "./deliveries.ts";
import { postDelivery, TEST_ADMIN_TOKEN, type TestServer, waitFor } from "./support.ts";

/** The admin token's header. */
export const AUTH = { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

/** A consumer on 127.0.0.1 answering every POST with `status` (changeable), counting event ids. */
export interface Consumer extends AsyncDisposable {
  url: string;
  status: number;
  received: string[];
}

/** Serves a consumer on 127.0.0.1 answering `status` until changed. */
export function startConsumer(status: number): Consumer {
  const consumer = {
    status,
    received: [] as string[],
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const payload = await req.json() as { data: { id: string } };
    consumer.received.push(payload.data.id);
    return new Response(null, { status: consumer.status });
  });
  return Object.assign(consumer, {
    url: `http://127.0.0.1:${server.addr.port}/hooks`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  });
}

/** `DESTINATIONS` for the given consumers, and one attempt per job: a 400 makes it dead at once. */
export function destinationsEnv(
  declarations: { name: string; url: string; paused?: boolean }[],
): Record<string, string> {
  return {
    DESTINATIONS: JSON.stringify(declarations.map(({ name, url, paused }) => ({
      name,
      url,
      secrets: [`whsec_${crypto.getRandomValues(new Uint8Array(32)).toBase64()}`],
      ...(paused === undefined ? {} : { paused }),
    }))),
    RETRY_MAX_ATTEMPTS: "1",
  };
}

/** Sends a request with the admin token (unless `headers` replace it); parses a JSON body. */
export async function call(
  server: TestServer,
  method: string,
  path: string,
  headers: Record<string, string> = AUTH,
  // deno-lint-ignore no-explicit-any
): Promise<{ status: number; body: any }> {
  const response = await fetch(`${server.origin}${path}`, { method, headers });
  const text = await response.text();
  return { status: response.status, body: text === "" ? undefined : JSON.parse(text) };
}

/** Posts the messages and waits until each one's job to `destination` is in `state`. */
export async function deliver(
  server: TestServer,
  wamids: string[],
  destination: string,
  state: string,
): Promise<string[]> {
  assert.equal((await postDelivery(server.origin, textsDelivery(wamids))).status, 200);
  const ids = wamids.map(messageEventId);
  await waitFor(async () => {
    const jobs = await Promise.all(ids.map((id) => server.store.getJobs(id)));
    return jobs.every((list) =>
      list.some((job) => job.destination === destination && job.state === state)
    );
  }, `every job to "${destination}" ${state}`);
  return ids;
}
