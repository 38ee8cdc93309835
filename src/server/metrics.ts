import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** The server's own metrics, registered on the server's registry. @internal */
export interface ServerMetrics {
  clients: Gauge;
  sessions: Counter<"result">;
  scrapes: Counter<"outcome">;
  inFlight: Gauge;
  waiting: Gauge;
  duration: Histogram<"outcome">;
  bytes: Counter;
  connectionsRefused: Counter<"limit">;
  /**
   * Frames for scrapes already ended or given up on, dropped (src/server/result-frames.ts): every session adds
   * to this plain number, at no cost per frame; `promproxy_late_frames_dropped_total` reads it when scraped.
   */
  lateFrames: { dropped: number };
  /** Tells the `promproxy_ready` gauge where readiness comes from. */
  readiness(ready: () => boolean): void;
}

export function createServerMetrics(registry: Registry): ServerMetrics {
  const registers = [registry];
  let ready = () => true;
  const lateFrames = { dropped: 0 };
  let lateReported = 0;
  new Counter({
    name: "promproxy_late_frames_dropped_total",
    help: "Result frames a client sent for scrapes that had already ended or been given up on (a cancel crossed its answer), dropped; summed over all client streams, ended ones included.",
    registers,
    collect() {
      this.inc(lateFrames.dropped - lateReported);
      lateReported = lateFrames.dropped;
    },
  });
  new Gauge({
    name: "promproxy_ready",
    help: "1 while this replica is ready for Prometheus (what /readyz says), 0 while it warms up or drains.",
    registers,
    collect() {
      this.set(ready() ? 1 : 0);
    },
  });
  return {
    lateFrames,
    readiness(check) {
      ready = check;
    },
    clients: new Gauge({ name: "promproxy_clients_connected", help: "Clients connected right now.", registers }),
    sessions: new Counter({
      name: "promproxy_client_streams_total",
      help: "Client streams by result: accepted, or the Connect code they were refused with.",
      labelNames: ["result"],
      registers,
    }),
    scrapes: new Counter({
      name: "promproxy_scrapes_total",
      help: "Proxied scrapes by outcome: success, unknown_client, warming_up, vanished, not_found, bad_request, busy, shutting_down, timeout, disconnected, too_large, bad_result, target_unreachable, client_error, cancelled, prometheus_gone, and the Prometheus-side auth refusals (unauthenticated, forbidden, throttled, auth_busy).",
      labelNames: ["outcome"],
      registers,
    }),
    inFlight: new Gauge({ name: "promproxy_scrapes_in_flight", help: "Proxied scrapes in flight right now (ordered or waiting for a place).", registers }),
    waiting: new Gauge({ name: "promproxy_scrapes_waiting", help: "Proxied scrapes waiting for a place among their client's maxScrapesInFlight.", registers }),
    duration: new Histogram({
      name: "promproxy_scrape_duration_seconds",
      help: "Duration of proxied scrapes, from request to the end of the response, by outcome.",
      labelNames: ["outcome"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    bytes: new Counter({ name: "promproxy_relayed_bytes_total", help: "Body bytes relayed from clients to Prometheus.", registers }),
    connectionsRefused: new Counter({
      name: "promproxy_connections_refused_total",
      help: "Connections refused at accept time, by the listen limit they met (maxConnections, maxConnectionsPerAddress).",
      labelNames: ["limit"],
      registers,
    }),
  };
}
