/**
 * The console's page shell and the small pieces every page shares: navigation, the sign-out
 * form, state badges, and POST buttons carrying the session's CSRF token. Rendered on the server
 * with Preact; the only script is `/console/assets/console.js`.
 *
 * @module
 */
import type { ComponentChildren, VNode } from "preact";
import { renderToString } from "preact-render-to-string";
import { CSRF_FIELD } from "./csrf.ts";

/** The pages of the navigation, in its order. */
export const NAV_PAGES = [
  { href: "/console", label: "Overview" },
  { href: "/console/events", label: "Events" },
  { href: "/console/destinations", label: "Destinations" },
  { href: "/console/recover", label: "Recover" },
  { href: "/console/messages", label: "Sent message" },
] as const;

/** What a page's shell needs. */
export interface LayoutProps {
  title: string;
  /** The navigation entry to mark as the current page; none on the sign-in page. */
  current?: (typeof NAV_PAGES)[number]["href"];
  /** The session's CSRF token; without it (signed out) no navigation or sign-out is shown. */
  csrf?: string;
  /** A line shown above the page (an action's result). */
  notice?: string | undefined;
  children?: ComponentChildren;
}

/** The page shell: header, navigation, sign-out, the notice, then the page. */
export function Layout(props: LayoutProps): VNode {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · wa-webhook console`}</title>
        <link rel="stylesheet" href="/console/assets/console.css" />
        <script src="/console/assets/console.js" defer></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to the page</a>
        <header>
          <span class="brand">wa-webhook console</span>
          {props.csrf !== undefined && (
            <>
              <nav aria-label="Console">
                <ul>
                  {NAV_PAGES.map((page) => (
                    <li key={page.href}>
                      <a
                        href={page.href}
                        aria-current={page.href === props.current ? "page" : undefined}
                      >
                        {page.label}
                      </a>
                    </li>
                  ))}
                </ul>
              </nav>
              <PostButton action="/console/sign-out" csrf={props.csrf} label="Sign out" />
            </>
          )}
        </header>
        <main id="main">
          <h1>{props.title}</h1>
          {props.notice && <p class="notice" role="status">{props.notice}</p>}
          {props.children}
        </main>
      </body>
    </html>
  );
}

/** Renders a page to a complete HTML response. */
export function htmlResponse(page: VNode, status = 200): Response {
  return new Response(`<!doctype html>${renderToString(page)}`, {
    status,
    headers: { "Content-Type": "text/html; charset=utf-8" },
  });
}

/** A state as a coloured badge (`state-<name>` in the stylesheet). */
export function StateBadge(props: { state: string }): VNode {
  return <span class={`state state-${props.state}`}>{props.state.replace("_", " ")}</span>;
}

/** What {@linkcode PostButton} needs. */
export interface PostButtonProps {
  action: string;
  csrf: string;
  label: string;
  /** More hidden fields. */
  fields?: Record<string, string | undefined>;
  isDanger?: boolean;
}

/** A one-button form that POSTs to `action` with the CSRF token and `fields`. */
export function PostButton(props: PostButtonProps): VNode {
  return (
    <form class="inline" method="post" action={props.action}>
      <input type="hidden" name={CSRF_FIELD} value={props.csrf} />
      {Object.entries(props.fields ?? {}).map(([name, value]) =>
        value === undefined ? null : <input key={name} type="hidden" name={name} value={value} />
      )}
      <button type="submit" class={props.isDanger ? "danger" : undefined}>{props.label}</button>
    </form>
  );
}

/** A time as the console shows it: ISO 8601 in UTC to the second, or "—". */
export function shownTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** A duration in ms as a person reads it (`850 ms`, `12 s`, `3 min`, `2 h`). */
export function shownDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${Math.round(ms / 1_000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}

/** The page of a refusal or an unknown item: its reason, and the way back. */
export function ErrorPage(props: { status: number; reason: string }): VNode {
  return (
    <Layout title={props.status === 404 ? "Not found" : "Refused"}>
      <p role="alert">{props.reason}</p>
      <p>
        <a href="/console">Back to the console</a>
      </p>
    </Layout>
  );
}
