/**
 * What happens on a server, as events for the application (typed, see
 * {@link ServerEvents}) and as memory for the status page: each client's last
 * scrape and the most recent failures. Listeners that throw are logged and
 * never break a scrape or a stream.
 *
 * @internal
 */
import { EventEmitter } from "node:events";
import type { Logger } from "../shared/logger.ts";
import type { ClientInfo } from "./client-info.ts";
import type { VanishedClient } from "./vanished.ts";

/** How one proxied request ended. */
export interface ScrapeEvent {
  /** The client's name (lower case), or the requested host when no client had it. */
  name: string;
  /** `success`, or why not (as `promproxy_scrapes_total{outcome}` counts it). */
  outcome: string;
  /** When it ended. */
  at: Date;
  /** From the request to the end of the response. */
  durationMs: number;
  /** Body bytes relayed. */
  bytes: number;
  /** The one-line answer given to Prometheus, for failures. */
  message?: string;
}

/** The events a server emits; listen with `server.on(name, listener)`. */
export interface ServerEvents {
  /** A client was welcomed. */
  clientConnected: [client: ClientInfo];
  /** A client left on purpose (it ended its stream cleanly), was replaced, or the server shut down. */
  clientDisconnected: [client: ClientInfo, reason: string];
  /** A client's stream broke or went quiet: it stays listed as vanished for `vanishedRetentionMs`. */
  clientVanished: [client: VanishedClient];
  /** A client stream was refused (before or at its hello). `code` is the Connect code's name. */
  clientRefused: [refusal: { code: string; reason: string; name?: string; peer?: string }];
  /** A proxied request ended, in success or not. */
  scrapeFinished: [scrape: ScrapeEvent];
}

/** @internal */
export interface Activity {
  emit<K extends keyof ServerEvents>(event: K, ...args: ServerEvents[K]): void;
  readonly events: EventEmitter<ServerEvents>;
  /** The last scrape of a client name, if any is remembered. */
  lastScrape(name: string): ScrapeEvent | undefined;
  /** The most recent failed scrapes, newest first. */
  recentErrors(): ScrapeEvent[];
}

const keptErrors = 50;

export function createActivity(log: Logger, maxNames: number): Activity {
  const events = new EventEmitter<ServerEvents>();
  const last = new Map<string, ScrapeEvent>();
  const errors: ScrapeEvent[] = [];
  return {
    events,
    emit(event, ...args) {
      if (event === "scrapeFinished") {
        const s = args[0] as ScrapeEvent;
        // Only for names that are (or were) clients: a flood of unknown names must not fill this map.
        if (s.outcome !== "unknown_client" && s.name !== "") {
          last.delete(s.name);
          last.set(s.name, s);
          if (last.size > maxNames) last.delete(last.keys().next().value as string);
        }
        if (s.outcome !== "success" && s.outcome !== "prometheus_gone") {
          errors.unshift(s);
          if (errors.length > keptErrors) errors.pop();
        }
      }
      try {
        (events as EventEmitter).emit(event, ...(args as unknown[]));
      } catch (e) {
        log.error("a listener of a server event threw", { event, error: e instanceof Error ? e.message : String(e) });
      }
    },
    lastScrape: (name) => last.get(name),
    recentErrors: () => errors.slice(),
  };
}
