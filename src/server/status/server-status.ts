/**
 * A snapshot of one server for people: what the status page at `/` shows and
 * `/status.json` serves. Built from what the coordinator, the activity record
 * and the refusal record keep; nothing in it is a secret. The page and the
 * JSON take it at most once a second (src/server/status/status-pages.ts);
 * {@link PromproxyServer.status} takes it fresh.
 */
import { version } from "../../shared/version.ts";
import type { Activity, ScrapeEvent } from "../activity.ts";
import type { ClientInfo } from "../client-info.ts";
import type { Coordinator, Phase } from "../coordinator.ts";
import type { ErrorGroup, ErrorGroups } from "./error-groups.ts";
import type { ResolvedServerOptions } from "../options.ts";
import type { RefusedEntry, Refusals } from "./refusals.ts";
import type { VanishedClient } from "../vanished.ts";

/** What {@link PromproxyServer.status} returns. */
export interface ServerStatus {
  replicaId: string;
  version: string;
  phase: Phase;
  ready: boolean;
  startedAt: Date;
  scrapesInFlight: number;
  /** The limits this replica enforces. */
  limits: {
    maxClients: number;
    maxScrapesInFlight: number;
    maxScrapesWaiting: number;
    maxResponseBytes: number;
    maxChunkBytes: number;
    creditBytes: number;
    defaultScrapeTimeoutMs: number;
    maxScrapeTimeoutMs: number;
    heartbeatIntervalMs: number;
    vanishedRetentionMs: number;
  };
  /** Connected clients, by name, with their last scrape and the last scrape of each target (by port). */
  clients: (ClientInfo & { lastScrape?: ScrapeEvent; targetScrapes?: ScrapeEvent[] })[];
  /** Clients that vanished recently, newest first. */
  vanished: (VanishedClient & { lastScrape?: ScrapeEvent; targetScrapes?: ScrapeEvent[] })[];
  /** The most recent failed scrapes, the same failure of the same target grouped with a count, the most recent first. */
  recentErrors: ErrorGroup[];
  /** Client streams refused recently (who, from where, why, how often), the most recent first. */
  refused: RefusedEntry[];
  /** Name clashes that came from the holder's own address and identity (a client searching for replicas): counted only. */
  refusedRoutine: number;
}

/** @internal */
export function buildServerStatus(o: ResolvedServerOptions, coordinator: Coordinator, activity: Activity, startedAt: Date, refusals?: Refusals, errors?: ErrorGroups): ServerStatus {
  return {
    replicaId: o.replicaId,
    version,
    phase: coordinator.phase,
    ready: coordinator.ready,
    startedAt,
    scrapesInFlight: coordinator.inFlight,
    limits: {
      maxClients: o.maxClients,
      maxScrapesInFlight: o.maxScrapesInFlight,
      maxScrapesWaiting: o.maxScrapesWaiting,
      maxResponseBytes: o.maxResponseBytes,
      maxChunkBytes: o.maxChunkBytes,
      creditBytes: o.creditBytes,
      defaultScrapeTimeoutMs: o.defaultScrapeTimeoutMs,
      maxScrapeTimeoutMs: o.maxScrapeTimeoutMs,
      heartbeatIntervalMs: o.heartbeatIntervalMs,
      vanishedRetentionMs: o.vanishedRetentionMs,
    },
    clients: coordinator
      .clients()
      // Names are lower-case ASCII (DNS rules): code-unit order is theirs, and far cheaper than localeCompare.
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((c) => ({ ...c, lastScrape: activity.lastScrape(c.name), targetScrapes: activity.targetScrapes(c.name) })),
    vanished: coordinator
      .vanished()
      .reverse()
      .map((v) => ({ ...v, lastScrape: activity.lastScrape(v.info.name), targetScrapes: activity.targetScrapes(v.info.name) })),
    recentErrors: errors?.list() ?? [],
    refused: refusals?.list() ?? [],
    refusedRoutine: refusals?.routine ?? 0,
  };
}
