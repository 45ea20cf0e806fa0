/**
 * The console's stylesheet and its one small script, as text compiled into the binary: no file
 * is read at run time, nothing comes from a CDN, and there is no bundling step. Both are served
 * from `/console/assets/…` (the CSP allows scripts and styles from the service only).
 *
 * @module
 */

/** How often the events page asks for new events, in ms: live enough, cheap for the store. */
export const LIVE_POLL_MS = 3_000;

/** The stylesheet: readable on a phone, long ids and emoji wrap, visible keyboard focus. */
export const CONSOLE_CSS = `
:root{--fg:#1b1f24;--muted:#57606a;--bg:#fff;--panel:#f6f8fa;--line:#d0d7de;--accent:#0a58ca;
--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;font-family:system-ui,-apple-system,"Segoe UI",sans-serif}
*{box-sizing:border-box}
body{margin:0;color:var(--fg);background:var(--bg);line-height:1.45;overflow-wrap:break-word}
.id,pre,code,dd,td:last-child{overflow-wrap:anywhere}
a{color:var(--accent)}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,summary:focus-visible{
outline:3px solid var(--accent);outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:.5rem;top:.5rem;background:var(--bg);padding:.25rem}
header{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1rem;padding:.5rem 1rem;
border-bottom:1px solid var(--line);background:var(--panel)}
header .brand{font-weight:700;margin-right:auto}
nav ul{display:flex;flex-wrap:wrap;gap:.25rem .75rem;list-style:none;margin:0;padding:0}
nav a[aria-current=page]{font-weight:700;text-decoration:none;color:var(--fg)}
main{padding:1rem;max-width:72rem;margin:0 auto}
h1{font-size:1.4rem;margin:.25rem 0 1rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600;white-space:nowrap}
code,pre,.id{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85rem}
pre{background:var(--panel);border:1px solid var(--line);padding:.75rem;overflow:auto;
white-space:pre-wrap;overflow-wrap:anywhere;max-height:40rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(11rem,1fr));gap:.75rem;margin:0 0 1rem}
.card{border:1px solid var(--line);border-radius:.4rem;padding:.6rem .8rem;background:var(--panel)}
.card .figure{font-size:1.5rem;font-weight:700;display:block}
.card .label{color:var(--muted);font-size:.85rem}
.state{display:inline-block;white-space:nowrap;padding:0 .4rem;border-radius:.3rem;font-size:.8rem;font-weight:600;
border:1px solid currentColor}
.state-done,.state-delivered,.state-closed,.state-ok{color:var(--ok)}
.state-retrying,.state-pending,.state-processing,.state-delivering,.state-half_open,.state-paused{color:var(--warn)}
.state-dead,.state-open,.state-bad{color:var(--bad)}
.notice{border-left:4px solid var(--accent);background:var(--panel);padding:.5rem .75rem;margin:0 0 1rem}
.warning{border-left-color:var(--bad)}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem .75rem;align-items:flex-end;margin:0 0 1rem}
form.filters label{display:flex;flex-direction:column;font-size:.85rem;color:var(--muted)}
input,select,button{font:inherit;padding:.3rem .5rem;border:1px solid var(--line);border-radius:.3rem;
background:var(--bg);color:var(--fg);max-width:100%}
button{cursor:pointer;background:var(--panel)}button.danger{border-color:var(--bad);color:var(--bad)}
form.inline{display:inline}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;margin:.5rem 0}
ol.timeline{list-style:none;padding:0;border-left:2px solid var(--line);margin-left:.4rem}
ol.timeline li{position:relative;padding:0 0 .75rem 1rem}
ol.timeline li::before{content:"";position:absolute;left:-.45rem;top:.35rem;width:.7rem;height:.7rem;
border-radius:50%;background:var(--line)}
ol.timeline li.failed::before{background:var(--bad)}ol.timeline li.ok::before{background:var(--ok)}
.chart{width:100%;height:auto;border:1px solid var(--line);background:var(--panel)}
.chart rect{fill:var(--accent)}
.muted{color:var(--muted)}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0 0 1rem}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0}
@media (max-width:40rem){
main{padding:.5rem}
table.rows thead{display:none}
table.rows tr{display:block;border-bottom:1px solid var(--line);padding:.35rem 0}
table.rows td{display:block;border:0;padding:.1rem .25rem}
table.rows td[data-label]::before{content:attr(data-label) ": ";color:var(--muted)}
}
`;

/**
 * The script: on the events page (a table with `data-live`), asks the live endpoint for the
 * page's newest events every {@linkcode LIVE_POLL_MS} and redraws the rows with DOM calls (no
 * HTML parsing, so an event's text can never become markup).
 */
export const CONSOLE_JS = `"use strict";
(function () {
  var table = document.querySelector("table[data-live]");
  if (!table) return;
  var body = table.querySelector("tbody");
  var status = document.getElementById("live-status");
  var url = table.getAttribute("data-live");
  function cell(row, label, text, className) {
    var td = document.createElement("td");
    td.setAttribute("data-label", label);
    if (className) td.className = className;
    td.textContent = text;
    row.appendChild(td);
    return td;
  }
  function draw(events) {
    var rows = document.createDocumentFragment();
    events.forEach(function (event) {
      var tr = document.createElement("tr");
      var td = cell(tr, "Event", "", "id");
      var a = document.createElement("a");
      a.href = event.href;
      a.textContent = event.id;
      td.appendChild(a);
      cell(tr, "Received", event.receivedAt);
      cell(tr, "Kind", event.kind + (event.type ? " · " + event.type : ""));
      var state = cell(tr, "State", "");
      var badge = document.createElement("span");
      badge.className = "state state-" + event.state;
      badge.textContent = event.state;
      state.appendChild(badge);
      cell(tr, "Attempts", String(event.attempts));
      cell(tr, "Last error", event.lastError || "");
      rows.appendChild(tr);
    });
    body.replaceChildren(rows);
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (page) {
        draw(page.events);
        if (status) status.textContent = "Live: updated " + new Date().toLocaleTimeString();
      })
      .catch(function () {
        if (status) status.textContent = "Live updates paused: the service did not answer";
      })
      .finally(function () { setTimeout(poll, ${LIVE_POLL_MS}); });
  }
  setTimeout(poll, ${LIVE_POLL_MS});
})();
`;
