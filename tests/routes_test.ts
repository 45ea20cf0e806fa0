/**
 * The route table (`src/routes.ts`) against the README's "Endpoints" table: the same endpoints in
 * the same order, each one routed by the whole app (the admin ones only with an admin token), and
 * nothing else.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { RouteHandler } from "../src/http/router.ts";
import { serviceRoutes } from "../src/routes.ts";
import type { ConsoleHandlers } from "../src/console/handlers.ts";
import { flowsKeyPair } from "./flows_support.ts";
import { startTestServer, TEST_ADMIN_TOKEN, testConfig } from "./support.ts";

const AUTH = { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
/** Paths near the real ones that no row matches. */
const UNKNOWN_PATHS = ["/", "/webhook", "/webhook/whatsapp/x", "/admin", "/admin/events/x/y"];

interface Endpoint {
  method: string;
  /** As the README writes it: parameters in braces (`/admin/events/{id}`). */
  path: string;
}

/** The rows of the README's "Endpoints" table, in order; fails on a row it cannot read. */
async function readmeEndpoints(): Promise<Endpoint[]> {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const section = readme.split(/^## /m).find((part) => part.startsWith("Endpoints\n"));
  assert.ok(section, `README.md has no "## Endpoints" section`);
  const rows = section.split("\n").filter((line) => line.startsWith("| `"));
  return rows.map((row) => {
    const match = /^\| `(GET|POST|PUT|DELETE) (\/\S*)` +\|/.exec(row);
    assert.ok(match, `README.md endpoint row is not "| \`METHOD /path\` |": ${row}`);
    return { method: match[1]!, path: match[2]! };
  });
}

/** A concrete path for an endpoint: each `{parameter}` becomes `x`. */
function concrete(path: string): string {
  return path.replaceAll(/\{[^}]+\}/g, "x");
}

/** Admin API and console endpoints: routed only with an admin token. */
function isAdmin(endpoint: Endpoint): boolean {
  return endpoint.path.startsWith("/admin/") || endpoint.path.startsWith("/console");
}

/** Whether the router found a handler: not its 405, nor its own 404 ("No route for …"). */
async function isRouted(response: Response): Promise<boolean> {
  const text = await response.text();
  if (response.status === 405) return false;
  return !(response.status === 404 && /"No route for /.test(text));
}

const _stub: RouteHandler = () => new Response(null);

Deno.test("serviceRoutes() lists exactly the README's endpoints, in its order", async () => {
  const routes = serviceRoutes({
    webhook: { handshake: _stub, intake: _stub },
    health: { healthz: _stub, readyz: _stub },
    metrics: _stub,
    admin: {
      listEvents: _stub,
      getEvent: _stub,
      replayEvent: _stub,
      replayDeadLetters: _stub,
    },
    destinations: {
      listDestinations: _stub,
      pauseDestination: _stub,
      resumeDestination: _stub,
    },
    jobs: { listJobs: _stub, replayJob: _stub, replayDeadJobs: _stub, replayJobs: _stub },
    messageStatus: _stub,
    flows: { path: "/flows", exchange: _stub },
    doctor: _stub,
    conversationWindow: _stub,
    media: _stub,
    console: Object.fromEntries(
      [
        "overview",
        "signInPage",
        "signIn",
        "signOut",
        "stylesheet",
        "script",
        "events",
        "liveEvents",
        "event",
        "replayEvent",
        "destinations",
        "pauseDestination",
        "resumeDestination",
        "replayDeadJobs",
        "replayJob",
        "recover",
        "replayMatching",
        "message",
      ].map((name) => [name, _stub]),
    ) as unknown as ConsoleHandlers,
  });
  const table = routes.map((route) => ({
    method: route.method,
    path: route.path.replaceAll(/:(\w+)/g, "{$1}"),
  }));
  assert.deepEqual(table, await readmeEndpoints());
});

Deno.test("the app routes every README endpoint, with HEAD on each GET, and no other path", async () => {
  await using server = await startTestServer({
    startWorker: false,
    env: { FLOWS_PRIVATE_KEY: flowsKeyPair().privateKeyPem },
  });
  const endpoints = await readmeEndpoints();
  assert.ok(endpoints.length > 0);
  for (const { method, path } of endpoints) {
    const url = `${server.origin}${concrete(path)}`;
    const response = await fetch(url, { method, headers: AUTH });
    assert.ok(await isRouted(response), `${method} ${path} answered ${response.status}`);
    if (method === "GET") {
      const head = await fetch(url, { method: "HEAD", headers: AUTH });
      await head.body?.cancel();
      assert.equal(head.status, response.status, `HEAD ${path}`);
    }
  }
  for (const path of UNKNOWN_PATHS) {
    const response = await fetch(`${server.origin}${path}`, { headers: AUTH });
    assert.equal(response.status, 404, path);
    assert.match(await response.text(), /"No route for /, path);
  }
});

Deno.test("without a Flows private key the app does not route POST /flows", async () => {
  await using server = await startTestServer({ startWorker: false });
  const response = await fetch(`${server.origin}/flows`, { method: "POST", body: "{}" });
  assert.equal(await isRouted(response), false);
});

Deno.test("without an admin token the app routes no /admin/ endpoint, and all the others", async () => {
  await using server = await startTestServer({
    startWorker: false,
    config: {
      ...testConfig({ FLOWS_PRIVATE_KEY: flowsKeyPair().privateKeyPem }),
      adminToken: undefined,
    },
  });
  const endpoints = await readmeEndpoints();
  assert.ok(endpoints.some(isAdmin) && endpoints.some((endpoint) => !isAdmin(endpoint)));
  for (const endpoint of endpoints) {
    const { method, path } = endpoint;
    const response = await fetch(`${server.origin}${concrete(path)}`, { method, headers: AUTH });
    const label = `${method} ${path} answered ${response.status}`;
    if (isAdmin(endpoint)) {
      assert.equal(response.status, 404, label);
      assert.equal(await isRouted(response), false, label);
    } else {
      assert.ok(await isRouted(response), label);
    }
  }
});
