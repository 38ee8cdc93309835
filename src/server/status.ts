/**
 * A snapshot of one server for people: what the status page at `/` shows and
 * `/status.json` serves. Built on request from what the coordinator and the
 * activity record keep; nothing in it is a secret.
 */
import { version } from "../shared/version.ts";
import type { Activity, ScrapeEvent } from "./activity.ts";
import type { ClientInfo } from "./client-info.ts";
import type { Coordinator, Phase } from "./coordinator.ts";
import type { ResolvedServerOptions } from "./options.ts";
import type { VanishedClient } from "./vanished.ts";

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
    maxResponseBytes: number;
    maxChunkBytes: number;
    creditBytes: number;
    defaultScrapeTimeoutMs: number;
    maxScrapeTimeoutMs: number;
    heartbeatIntervalMs: number;
    vanishedRetentionMs: number;
  };
  /** Connected clients, by name. */
  clients: (ClientInfo & { lastScrape?: ScrapeEvent })[];
  /** Clients that vanished recently, newest first. */
  vanished: (VanishedClient & { lastScrape?: ScrapeEvent })[];
  /** The most recent failed scrapes, newest first. */
  recentErrors: ScrapeEvent[];
}

/** @internal */
export function statusOf(o: ResolvedServerOptions, coordinator: Coordinator, activity: Activity, startedAt: Date): ServerStatus {
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
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((c) => ({ ...c, lastScrape: activity.lastScrape(c.name) })),
    vanished: coordinator
      .vanished()
      .reverse()
      .map((v) => ({ ...v, lastScrape: activity.lastScrape(v.info.name) })),
    recentErrors: activity.recentErrors(),
  };
}
