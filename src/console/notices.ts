/**
 * The notices the console's pages show after an action: an action redirects to a page with a
 * notice code (`?notice=replayed&count=3`, post/redirect/get), and the page shows that code's text,
 * which is never taken from the URL; and where an action may send the browser back to.
 *
 * @module
 */

/** The notices an action redirects with (`?notice=`), by code: the text is never taken from a URL. */
const NOTICES: Record<string, (count: string) => string> = {
  replayed: (count) => `Replayed: ${count}.`,
  busy: () => "A worker is handling it now: try again in a moment.",
  paused: () => "Paused: its jobs are kept and wait until it is resumed.",
  resumed: () => "Resumed.",
  declared: () => "It is declared paused: change its declaration and restart to resume it.",
};

/** `path` with a notice code (and a count) for the page it redirects to. */
export function withNotice(path: string, code: string, count?: number): string {
  const query = new URLSearchParams({ notice: code });
  if (count !== undefined) query.set("count", String(count));
  return `${path}${path.includes("?") ? "&" : "?"}${query}`;
}

/** The notice a page shows, from its code: unknown codes show nothing. */
export function noticeOf(url: URL): string | undefined {
  const code = url.searchParams.get("notice") ?? "";
  const count = (url.searchParams.get("count") ?? "").replace(/\D/g, "").slice(0, 7) || "0";
  return Object.hasOwn(NOTICES, code) ? NOTICES[code]!(count) : undefined;
}

/** The form's `back` when it is a console page, else `fallback`: never a redirect elsewhere. */
export function backTo(form: URLSearchParams, fallback: string): string {
  const back = form.get("back") ?? "";
  return /^\/console(\/[A-Za-z0-9%._~:@!$&'()*+,;=-]*)*$/.test(back) ? back : fallback;
}
