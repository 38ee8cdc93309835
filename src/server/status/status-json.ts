/**
 * What `/status.json` serves and the status page renders: a
 * {@link ServerStatus} made safe to send and to draw, bounded in rows and in
 * bytes whatever the clients announced (at most {@link statusRows} clients
 * and as many vanished ones, a dozen labels and eight targets each, fifty
 * error groups, fifty refusals, every string cut to a few hundred
 * characters), times as ISO strings and the
 * server's own clock (`now`) so that ages read the same on every screen.
 *
 * @internal
 */
import type { ScrapeEvent } from "../activity.ts";
import type { ClientInfo } from "../client-info.ts";
import type { ErrorGroup } from "./error-groups.ts";
import type { RefusedEntry } from "./refusals.ts";
import type { ServerStatus } from "./server-status.ts";

/** Clients (and vanished clients) listed at most; the rest are counted. */
export const statusRows = 500;
const maxLabels = 12;
const maxTargets = 8;
const maxString = 160;
const maxMessage = 400;
/** Error groups and refusals listed at most. */
export const statusEvents = 50;

/** A scrape, as the page shows it. */
export interface ScrapeRow {
  name: string;
  /** `NAME:PORT`, or `NAME` when no port was asked for: the target as Prometheus names it. */
  target: string;
  outcome: string;
  at: string;
  durationMs: number;
  bytes: number;
  message?: string;
}

/** A connected client, as the page shows it. */
export interface ClientRow {
  name: string;
  /** At most a dozen, names and values cut; `labelsMore` counts the rest. */
  labels: Record<string, string>;
  labelsMore: number;
  /** `:PORT PATH` ("any port", "any path"), at most eight; `targetsMore` counts the rest. The catch-all target is left out. */
  targets: string[];
  targetsMore: number;
  sessionId: string;
  version: string;
  connectedAt: string;
  identity?: string;
  address?: string;
  scrapesInFlight: number;
  lastScrape?: ScrapeRow;
  /** The last scrape of each target that was scraped, by port (at most eight; `targetScrapesMore` counts the rest). */
  targetScrapes: ScrapeRow[];
  targetScrapesMore: number;
}

/** Failed scrapes of one target with the same outcome and message: the last one, how many, since when. */
export interface ErrorRow extends ScrapeRow {
  count: number;
  firstAt: string;
}

/** Refusals of one kind for one name, identity and address, times as ISO strings. */
export type RefusedRow = RefusedEntry<string>;

/** A vanished client: what it was, when and why it went. */
export interface VanishedRow extends Omit<ClientRow, "scrapesInFlight"> {
  since: string;
  reason: string;
}

/** The document `/status.json` serves. */
export interface StatusJson {
  /** The server's clock when this was taken. */
  now: string;
  replicaId: string;
  version: string;
  phase: ServerStatus["phase"];
  ready: boolean;
  startedAt: string;
  scrapesInFlight: number;
  limits: ServerStatus["limits"];
  clients: ClientRow[];
  /** Connected clients in all, listed or not. */
  clientsTotal: number;
  vanished: VanishedRow[];
  vanishedTotal: number;
  /** Failed scrapes grouped by target, outcome and message, the most recent first. */
  recentErrors: ErrorRow[];
  /** Client streams refused recently, the most recent first; `refusedTotal` counts every kept entry. */
  refused: RefusedRow[];
  refusedTotal: number;
  /** Routine refusals, counted: name clashes from the holder's own address and identity (a client searching for replicas), and clients this replica is not assigned (`replicasPerClient`). */
  refusedRoutine: number;
}

/** Cuts a string to `max` UTF-16 units, an ellipsis last, never half a surrogate pair. */
function cut(s: string, max = maxString): string {
  if (s.length <= max) return s;
  const end = /[\uD800-\uDBFF]/.test(s.charAt(max - 2)) ? max - 2 : max - 1;
  return `${s.slice(0, end)}…`;
}
const optional = (s: string | undefined) => (s === undefined ? undefined : cut(s));

function scrapeRow(e: ScrapeEvent | undefined): ScrapeRow | undefined {
  if (!e) return undefined;
  const name = cut(e.name);
  const row: ScrapeRow = { name, target: e.port ? `${name}:${e.port}` : name, outcome: cut(e.outcome, 64), at: e.at.toISOString(), durationMs: Math.round(e.durationMs), bytes: e.bytes };
  if (e.message !== undefined) row.message = cut(e.message, maxMessage);
  return row;
}

function clientRow(c: Omit<ClientInfo, "scrapesInFlight">, last: ScrapeEvent | undefined, perTarget: ScrapeEvent[] = []) {
  const labels = Object.entries(c.labels);
  // The one target of a client that announced none (any port, any path) says nothing worth showing.
  const targets = c.targets.filter((t) => t.port !== 0 || t.path !== "" || Object.keys(t.labels).length > 0);
  const row: Omit<ClientRow, "scrapesInFlight"> = {
    name: cut(c.name),
    labels: Object.fromEntries(labels.slice(0, maxLabels).map(([k, v]) => [cut(k, 64), cut(v)])),
    labelsMore: Math.max(0, labels.length - maxLabels),
    targets: targets.slice(0, maxTargets).map((t) => cut(`${t.port ? `:${t.port}` : "any port"} ${t.path || "any path"}`)),
    targetsMore: Math.max(0, targets.length - maxTargets),
    sessionId: cut(c.sessionId, 64),
    version: cut(c.version, 64),
    connectedAt: c.connectedAt.toISOString(),
    targetScrapes: perTarget.slice(0, maxTargets).flatMap((e) => scrapeRow(e) ?? []),
    targetScrapesMore: Math.max(0, perTarget.length - maxTargets),
  };
  if (c.identity !== undefined) row.identity = optional(c.identity);
  if (c.address !== undefined) row.address = optional(c.address);
  const scrape = scrapeRow(last);
  if (scrape) row.lastScrape = scrape;
  return row;
}

/** Bounds a status snapshot for `/status.json` and the page. */
export function statusJson(s: ServerStatus, now = new Date()): StatusJson {
  return {
    now: now.toISOString(),
    replicaId: cut(s.replicaId),
    version: cut(s.version, 64),
    phase: s.phase,
    ready: s.ready,
    startedAt: s.startedAt.toISOString(),
    scrapesInFlight: s.scrapesInFlight,
    limits: s.limits,
    clients: s.clients.slice(0, statusRows).map((c) => ({ ...clientRow(c, c.lastScrape, c.targetScrapes), scrapesInFlight: c.scrapesInFlight })),
    clientsTotal: s.clients.length,
    vanished: s.vanished.slice(0, statusRows).map((v) => ({
      ...clientRow(v.info, v.lastScrape, v.targetScrapes),
      since: new Date(v.since).toISOString(),
      reason: cut(v.reason, maxMessage),
    })),
    vanishedTotal: s.vanished.length,
    recentErrors: s.recentErrors.slice(0, statusEvents).flatMap((g) => errorRow(g) ?? []),
    refused: s.refused.slice(0, statusEvents).map(refusedRow),
    refusedTotal: s.refused.length,
    refusedRoutine: s.refusedRoutine,
  };
}

function errorRow(g: ErrorGroup): ErrorRow | undefined {
  const row = scrapeRow(g);
  return row && { ...row, count: g.count ?? 1, firstAt: (g.firstAt ?? g.at).toISOString() };
}

function refusedRow(r: RefusedEntry): RefusedRow {
  const row: RefusedRow = {
    code: cut(r.code, 64),
    why: cut(r.why),
    reason: cut(r.reason, maxMessage),
    count: r.count,
    firstAt: r.firstAt.toISOString(),
    lastAt: r.lastAt.toISOString(),
  };
  if (r.name !== undefined) row.name = cut(r.name);
  if (r.identity !== undefined) row.identity = cut(r.identity);
  if (r.address !== undefined) row.address = cut(r.address, 64);
  return row;
}
