/**
 * The status page's one drawing: a {@link StatusJson} as a tree of elements
 * and text. The server writes the tree as escaped HTML (src/server/status/status-page.ts);
 * the page's own script, polling `/status.json`, builds the same tree with
 * `createElement` and `textContent`. So first load and refresh can never
 * disagree, and no string a client sent is ever parsed as HTML.
 *
 * {@link renderStatus} is shipped to the browser as its source text
 * (`renderStatus.toString()`, which is plain JavaScript both under Node's type
 * stripping and once compiled): it must stay self-contained, with no imports,
 * no outer variables and nothing a browser lacks. Tag and attribute names are
 * all fixed here; every value is data.
 *
 * @internal
 */
import type { ClientRow, ErrorRow, RefusedRow, ScrapeRow, StatusJson, VanishedRow } from "./status-json.ts";

/** An element: tag, attributes, children. */
export type El = [tag: string, attrs: Record<string, string> | null, ...children: Child[]];
export type Child = El | string;

/** Draws the status; the page's `<main>` holds the result. */
export function renderStatus(s: StatusJson): Child[] {
  const now = Date.parse(s.now);
  const ago = (iso: string) => {
    const sec = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
    if (sec < 60) return `${sec}s ago`;
    const [big, bigUnit, small, smallUnit] = sec < 3600 ? [60, "m", 1, "s"] : sec < 86400 ? [3600, "h", 60, "m"] : [86400, "d", 3600, "h"];
    return `${Math.floor(sec / big)}${bigUnit} ${Math.floor((sec % big) / small)}${smallUnit} ago`;
  };
  // Sizes and durations use a no-break space: "101 B" never splits across lines.
  const clock = (iso: string) => `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
  const bytes = (n: number) => {
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return `${i === 0 ? n : +n.toFixed(n < 10 ? 1 : 0)}\u00a0${units[i]}`;
  };
  const duration = (ms: number) =>
    ms < 1000 ? `${ms}\u00a0ms` : ms < 60_000 ? `${+(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}\u00a0s` : `${+(ms / 60_000).toFixed(1)}\u00a0min`;
  const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
  const el = (tag: string, attrs: Record<string, string> | null, ...children: Child[]): El => [tag, attrs, ...children];
  const pill = (kind: string, text: string) => el("span", { class: `pill ${kind}` }, text);
  const sub = (...children: Child[]) => el("div", { class: "sub" }, ...children);
  const time = (iso: string) => el("time", { datetime: iso, title: clock(iso) }, ago(iso));
  const td = (label: string, ...children: Child[]) => el("td", { "data-label": label }, ...children);
  const table = (heads: string[], rows: El[]) =>
    el("div", { class: "scroll" }, el("table", null, el("thead", null, el("tr", null, ...heads.map((h) => el("th", null, h)))), el("tbody", null, ...rows)));
  const more = (shown: number, total: number, what: string) =>
    total > shown ? [el("p", { class: "more" }, `and ${total - shown} more ${what} not shown`)] : [];
  /** A section of rows: its heading with a count, then the table, or a line saying there is none; `after` below. */
  const listing = (id: string, title: string, count: string, heads: string[], rows: El[], none: string, ...after: Child[]) =>
    el("section", { id }, el("h2", null, `${title} `, el("span", { class: "count" }, count)), rows.length ? table(heads, rows) : el("p", { class: "empty" }, none), ...after);

  const name = (c: ClientRow | VanishedRow) => {
    const targets = c.targets.length ? [sub(`targets ${c.targets.join(", ")}${c.targetsMore ? ` and ${c.targetsMore} more` : ""}`)] : [];
    return td("Client", el("strong", { class: "name" }, c.name), sub(`${c.version || "unknown version"} · session `, el("span", { title: c.sessionId }, c.sessionId.slice(0, 8))), ...targets);
  };
  const labels = (c: ClientRow | VanishedRow) => {
    const chips: Child[] = Object.entries(c.labels).map(([k, v]) => el("span", { class: "chip" }, `${k}=${v}`));
    if (c.labelsMore) chips.push(el("span", { class: "sub" }, ` +${c.labelsMore} more`));
    return td("Labels", ...(chips.length ? chips : [el("span", { class: "muted" }, "none")]));
  };
  const who = (c: ClientRow | VanishedRow) =>
    td("Identity", c.identity === undefined ? el("span", { class: "muted" }, "anonymous") : c.identity, sub(c.address ?? "address unknown"));
  const scrapeLines = (e: ScrapeRow, target: boolean): Child[] => {
    const ok = e.outcome === "success";
    const line = sub(time(e.at), ` · ${duration(e.durationMs)} · ${bytes(e.bytes)}`);
    const head = target ? [el("span", { class: "target" }, e.target), " "] : [];
    return [el("div", { class: "scrape" }, ...head, pill(ok ? "ok" : "err", e.outcome), line, ...(e.message && !ok ? [sub(e.message)] : []))];
  };
  // One line per target when a client has several (a forwarder's good and dead exporters), else its last scrape.
  const scrape = (c: ClientRow | VanishedRow) => {
    const per = c.targetScrapes ?? [];
    if (per.length > 1) {
      const more = c.targetScrapesMore ? [sub(`and ${c.targetScrapesMore} more targets`)] : [];
      return td("Last scrape", ...per.flatMap((e) => scrapeLines(e, true)), ...more);
    }
    const e = per[0] ?? c.lastScrape;
    if (!e) return td("Last scrape", el("span", { class: "muted" }, "none yet"));
    return td("Last scrape", ...scrapeLines(e, e.target !== e.name));
  };
  const times = (count: number, first: string) =>
    count > 1 ? [" ", pill("warn", `${count}\u00d7`), sub("since ", time(first))] : [];

  const header = el(
    "header",
    null,
    el("h1", null, "promproxy ", el("span", { class: "muted" }, "replica "), el("span", { class: "replica" }, s.replicaId)),
    el(
      "p",
      { class: "facts" },
      pill(s.phase === "serving" ? "ok" : s.phase === "closed" ? "err" : "warn", s.phase),
      " ",
      pill(s.ready ? "ok" : "warn", s.ready ? "ready" : "not ready"),
      ` version ${s.version} · started `,
      time(s.startedAt),
      ` · ${plural(s.scrapesInFlight, "scrape", "scrapes")} in flight · as of ${clock(s.now)}`,
    ),
  );

  const clients = listing(
    "clients",
    "Clients",
    `${s.clientsTotal} connected`,
    ["Client", "Labels", "Identity · address", "Connected", "Last scrape", "In flight"],
    s.clients.map((c) =>
      el("tr", { class: "client" }, name(c), labels(c), who(c), td("Connected", time(c.connectedAt)), scrape(c), td("In flight", String(c.scrapesInFlight))),
    ),
    "No client is connected.",
    ...more(s.clients.length, s.clientsTotal, "clients"),
  );

  const vanished = listing(
    "vanished",
    "Vanished",
    `${s.vanishedTotal} recently`,
    ["Client", "Labels", "Identity · address", "Vanished", "Last scrape"],
    s.vanished.map((v) => el("tr", { class: "vanished" }, name(v), labels(v), who(v), td("Vanished", pill("warn", "vanished"), " ", time(v.since), sub(v.reason)), scrape(v))),
    "No client vanished recently.",
    ...more(s.vanished.length, s.vanishedTotal, "vanished clients"),
  );

  const refused = listing(
    "refused",
    "Refused recently",
    `${s.refusedTotal}`,
    ["When", "Who", "From", "Why"],
    s.refused.map((r: RefusedRow) =>
      el(
        "tr",
        { class: "refused" },
        td("When", time(r.lastAt), ...times(r.count, r.firstAt)),
        td(
          "Who",
          r.name === undefined ? el("span", { class: "muted" }, "name unknown") : el("strong", { class: "name" }, r.name),
          sub(r.identity === undefined ? (r.name === undefined ? "refused before its hello" : "no identity") : `identity ${r.identity}`),
        ),
        td("From", r.address ?? el("span", { class: "muted" }, "address unknown")),
        td("Why", pill("err", r.code), " ", r.why, sub(r.reason)),
      ),
    ),
    "No client was refused recently.",
    ...more(s.refused.length, s.refusedTotal, "refusals"),
    ...(s.refusedRoutine
      ? [el("p", { class: "sub" }, `Not listed: ${plural(s.refusedRoutine, "stream", "streams")} refused because the same client (same address and identity) already holds its name here, as a client searching for other replicas does.`)]
      : []),
  );

  const errors = listing(
    "errors",
    "Recent errors",
    `${s.recentErrors.length}`,
    ["When", "Target", "Outcome", "Message"],
    s.recentErrors.map((e: ErrorRow) =>
      el(
        "tr",
        { class: "error" },
        td("When", time(e.at), ...times(e.count, e.firstAt), sub(duration(e.durationMs))),
        td("Target", e.name ? el("strong", { class: "name" }, e.target) : el("span", { class: "muted" }, "none")),
        td("Outcome", pill("err", e.outcome)),
        td("Message", e.message ?? ""),
      ),
    ),
    "No failed scrape recently.",
  );

  const l = s.limits;
  const limit = (k: string, v: string) => el("div", null, el("dt", null, k), el("dd", null, v));
  const limits = el(
    "section",
    { id: "limits" },
    el("h2", null, "Limits"),
    el(
      "dl",
      { class: "limits" },
      limit("maxClients", String(l.maxClients)),
      limit("maxScrapesInFlight", String(l.maxScrapesInFlight)),
      limit("maxScrapesWaiting", String(l.maxScrapesWaiting)),
      limit("maxResponseBytes", bytes(l.maxResponseBytes)),
      limit("maxChunkBytes", bytes(l.maxChunkBytes)),
      limit("creditBytes", bytes(l.creditBytes)),
      limit("defaultScrapeTimeoutMs", duration(l.defaultScrapeTimeoutMs)),
      limit("maxScrapeTimeoutMs", duration(l.maxScrapeTimeoutMs)),
      limit("heartbeatIntervalMs", duration(l.heartbeatIntervalMs)),
      limit("vanishedRetentionMs", duration(l.vanishedRetentionMs)),
    ),
  );

  return [header, clients, vanished, refused, errors, limits];
}
