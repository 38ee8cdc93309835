/**
 * The status page at `/`: one self-contained HTML document (inline style and
 * script, no external load of any kind), drawn in full on the server so it
 * reads without JavaScript, and kept fresh by a small script that polls
 * `/status.json` every few seconds and redraws with the same
 * {@link renderStatus}. Every string a client sent is escaped here and set as
 * text by the script. The `Content-Security-Policy` allows exactly this style
 * and this script (by their hashes) and fetches to the page's own origin.
 *
 * @internal
 */
import { createHash } from "node:crypto";
import type { StatusJson } from "./status-json.ts";
import { renderStatus, type Child } from "./status-render.ts";

/** How often the page polls `/status.json`. */
const refreshMs = 5_000;

const css = `
:root{--bg:#fff;--fg:#1f2328;--mut:#59636e;--line:#d1d9e0;--card:#f6f8fa;--ok:#1a7f37;--okb:#dafbe1;--warn:#9a6700;--warnb:#fff8c5;--err:#cf222e;--errb:#ffebe9}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--mut:#9198a1;--line:#3d444d;--card:#151b23;--ok:#3fb950;--okb:#12261e;--warn:#d29922;--warnb:#272115;--err:#f85149;--errb:#2d1214}}
*{box-sizing:border-box}
body{margin:0;padding:16px 20px;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;overflow-wrap:anywhere}
main,footer{max-width:1280px;margin:0 auto}
h1{font-size:20px;margin:0 0 6px}h2{font-size:16px;margin:26px 0 8px}
.muted,.sub,.count,th,dt,footer{color:var(--mut)}.sub{font-size:12px}.count{font-weight:400;font-size:14px}
.facts{margin:0}.name{font-weight:600}time{white-space:nowrap}
.pill{display:inline-block;padding:0 8px;border-radius:10px;border:1px solid;font-size:12px;font-weight:600;white-space:nowrap}
.ok{color:var(--ok);background:var(--okb)}.warn{color:var(--warn);background:var(--warnb)}.err{color:var(--err);background:var(--errb)}
.chip{display:inline-block;margin:1px 4px 1px 0;padding:0 6px;border:1px solid var(--line);border-radius:4px;background:var(--card);font:12px/1.6 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.scroll{overflow-x:auto}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;vertical-align:top;padding:6px 8px;border-bottom:1px solid var(--line)}
th{font-size:12px;font-weight:600;white-space:nowrap}td:first-child{min-width:13em}
tr.vanished td:first-child{border-left:3px solid var(--warn)}tr.error td:first-child,tr.refused td:first-child{border-left:3px solid var(--err)}
@media (min-width:721px){td[data-label=Target],td[data-label=From]{white-space:nowrap}}
.scrape+.scrape{margin-top:6px}.target{font:12px/1.6 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;margin-right:6px}
.more,.empty{color:var(--mut);font-style:italic}
dl{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:2px 24px;margin:0}
dl div{display:flex;justify-content:space-between;gap:12px;border-bottom:1px dotted var(--line);padding:2px 0}
dt{font:12px/1.6 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}dd{margin:0;white-space:nowrap}
footer{margin-top:24px;font-size:12px}#live.stale{color:var(--err)}
@media (max-width:720px){
body{padding:12px}
thead{display:none}
table,tbody,tr,td{display:block;width:100%}
tr{margin:0 0 10px;padding:4px 10px;border:1px solid var(--line);border-radius:8px;background:var(--card)}
tr.vanished{border-left:4px solid var(--warn)}tr.error,tr.refused{border-left:4px solid var(--err)}
tr.vanished td:first-child,tr.error td:first-child,tr.refused td:first-child{border-left:0}
td,td:first-child{position:relative;min-width:0;min-height:24px;padding:4px 0 4px 96px;border:0}
td::before{content:attr(data-label);position:absolute;left:0;top:5px;width:88px;color:var(--mut);font-size:12px}
}
`;

/** The page's script: draws what `/status.json` says, as text, every {@link refreshMs}. */
const script = `"use strict";
(() => {
  const render = ${renderStatus.toString()};
  const build = (n) => {
    if (typeof n === "string") return document.createTextNode(n);
    const [tag, attrs, ...children] = n;
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (children.length === 1 && typeof children[0] === "string") e.textContent = children[0];
    else for (const c of children) e.append(build(c));
    return e;
  };
  const main = document.getElementById("status");
  const live = document.getElementById("live");
  let last = Date.now();
  const tick = async () => {
    if (!document.hidden) {
      try {
        const res = await fetch("status.json", { cache: "no-store", headers: { accept: "application/json" } });
        if (!res.ok) throw new Error("HTTP " + res.status);
        const nodes = render(await res.json()).map(build);
        main.replaceChildren(...nodes);
        last = Date.now();
        live.className = "";
        live.textContent = "Live: refreshes every ${refreshMs / 1000} s.";
      } catch (e) {
        live.className = "stale";
        live.textContent = "Not refreshing (" + (e && e.message ? e.message : e) + "): last update " + Math.round((Date.now() - last) / 1000) + " s ago. Retrying.";
      }
    }
    setTimeout(tick, ${refreshMs});
  };
  live.textContent = "Live: refreshes every ${refreshMs / 1000} s.";
  setTimeout(tick, ${refreshMs});
})();
`;
if (script.includes("</")) throw new Error("promproxy: the status page script may not contain </");

const hash = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;

/** Headers of the page: only its own style and script run; it loads nothing and fetches only its origin. */
export const statusPageHeaders: Readonly<Record<string, string>> = {
  "content-security-policy": [
    "default-src 'none'",
    `script-src ${hash(script)}`,
    `style-src ${hash(css)}`,
    "connect-src 'self'",
    "img-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; "),
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

const entities: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const special = /[&<>"']/;
/** Escapes text for HTML content and double-quoted attribute values. */
const escapeHtml = (s: string) => (special.test(s) ? s.replace(/[&<>"']/g, (c) => entities[c] as string) : s);

/** Writes a tree into `out` in one pass (a 500-row page is some 30,000 elements: no string per element). */
function toHtml(n: Child, out: string[]): void {
  if (typeof n === "string") {
    out.push(escapeHtml(n));
    return;
  }
  out.push("<", n[0]);
  const attrs = n[1];
  if (attrs) for (const k in attrs) out.push(" ", k, '="', escapeHtml(attrs[k] as string), '"');
  out.push(">");
  for (let i = 2; i < n.length; i++) toHtml(n[i] as Child, out);
  out.push("</", n[0], ">");
}

function drawHtml(s: StatusJson): string {
  const out: string[] = [];
  for (const n of renderStatus(s)) {
    toHtml(n, out);
    out.push("\n");
  }
  return out.join("");
}

/** The whole page for one snapshot. */
export function statusPage(s: StatusJson): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<title>promproxy ${escapeHtml(s.replicaId)}</title>
<noscript><meta http-equiv="refresh" content="30"></noscript>
<style>${css}</style>
</head>
<body>
<main id="status">${drawHtml(s)}</main>
<footer><p id="live">A snapshot: reload the page for fresh data.</p></footer>
<script>${script}</script>
</body>
</html>
`;
}
