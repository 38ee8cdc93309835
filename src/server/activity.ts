/**
 * What happens on a server, as events for the application (typed, see
 * {@link ServerEvents}) and as memory for the status page: each client's last
 * scrape, per target, and the most recent failures, grouped
 * (src/server/status/error-groups.ts). Listeners that throw are logged and never
 * break a scrape or a stream.
 *
 * @internal
 */
import { EventEmitter } from "node:events";
import type { Logger } from "../shared/logger.ts";
import type { ClientInfo } from "./client-info.ts";
import type { ScrapeEvent } from "./scrape-types.ts";
import type { VanishedClient } from "./vanished.ts";

export type { ScrapeEvent } from "./scrape-types.ts";

/** The events a server emits; listen with `server.on(name, listener)`. */
export interface ServerEvents {
  /** A client was welcomed. */
  clientConnected: [client: ClientInfo];
  /** A client left on purpose (it ended its stream cleanly), was replaced, or the server shut down. */
  clientDisconnected: [client: ClientInfo, reason: string];
  /** A client's stream broke or went quiet: it stays listed as vanished for `vanishedRetentionMs`. */
  clientVanished: [client: VanishedClient];
  /** A client stream was refused (before or at its hello). `code` is the Connect code's name. */
  clientRefused: [refusal: { code: string; reason: string; name?: string; identity?: string; peer?: string; routine?: boolean }];
  /** A proxied request ended, in success or not. */
  scrapeFinished: [scrape: ScrapeEvent];
}

/** @internal */
export interface Activity {
  emit<K extends keyof ServerEvents>(event: K, ...args: ServerEvents[K]): void;
  readonly events: EventEmitter<ServerEvents>;
  /** The last scrape of a client name, if any is remembered. */
  lastScrape(name: string): ScrapeEvent | undefined;
  /** The last scrape of each of a client's targets (by port) that was scraped, by port. */
  targetScrapes(name: string): ScrapeEvent[];
}

/**
 * Targets of one client whose last scrape is kept (the page shows eight); a
 * forwarder with more keeps the most recently scraped. Bounds what scrapes of
 * many targets of many clients can make the server hold: at most this many
 * events per remembered name.
 */
export const keptTargetsPerClient = 8;

/**
 * `failed`: told of every failed scrape (the status page groups them, src/server/status/error-groups.ts); the
 * activity knows nothing of pages.
 */
export function createActivity(log: Logger, maxNames: number, failed?: { add(scrape: ScrapeEvent): void }): Activity {
  const events = new EventEmitter<ServerEvents>();
  // Insertion order is recency, in both maps: the least recently scraped is forgotten first. A key scraped again
  // moves to the end (delete, set) unless it is there already (`newest`): a delete that empties a small map makes
  // V8 shrink it, a new table each scrape for a client with one target.
  const last = new Map<string, { latest: ScrapeEvent; ports: Map<number, ScrapeEvent>; newestPort?: number }>();
  let newest: string | undefined;
  return {
    events,
    emit(event, ...args) {
      if (event === "scrapeFinished") {
        const s = args[0] as ScrapeEvent;
        // Only for names that are (or were) clients: a flood of unknown names must not fill this map.
        if (s.outcome !== "unknown_client" && s.outcome !== "warming_up" && s.name !== "") {
          const known = last.get(s.name);
          const entry = known ?? { latest: s, ports: new Map<number, ScrapeEvent>() };
          entry.latest = s;
          // A port the client does not serve is no target of it: asking for random ports must not fill this.
          if (s.outcome !== "not_found") {
            const port = s.port ?? 0;
            if (entry.newestPort !== port) entry.ports.delete(port);
            entry.ports.set(port, s);
            entry.newestPort = port;
            if (entry.ports.size > keptTargetsPerClient) entry.ports.delete(entry.ports.keys().next().value as number);
          }
          if (!known || newest !== s.name) {
            last.delete(s.name);
            last.set(s.name, entry);
            newest = s.name;
            if (last.size > maxNames) {
              const oldest = last.keys().next().value as string;
              last.delete(oldest);
              if (oldest === newest) newest = undefined;
            }
          }
        }
        if (s.outcome !== "success" && s.outcome !== "prometheus_gone") failed?.add(s);
      }
      try {
        (events as EventEmitter).emit(event, ...(args as unknown[]));
      } catch (e) {
        log.error("a listener of a server event threw", { event, error: e instanceof Error ? e.message : String(e) });
      }
    },
    lastScrape: (name) => last.get(name)?.latest,
    targetScrapes: (name) => [...(last.get(name)?.ports.values() ?? [])].sort((a, b) => (a.port ?? 0) - (b.port ?? 0)),
  };
}
