import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { ConnectError } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import { Counter, Gauge, Registry } from "prom-client";
import type { TargetOutcome } from "../client/targets/http-target.ts";

/**
 * The forwarder's own metrics, in their own registry (never prom-client's
 * global one): scrapes served, failures by reason, bytes relayed, connection
 * state, reconnects.
 *
 * @internal
 */
export interface ForwarderMetrics {
  readonly registry: Registry;
  onResult(r: TargetOutcome): void;
  onConnected(): void;
  onDisconnected(): void;
  onConnectError(e: ConnectError): void;
}

/** @internal */
export function createForwarderMetrics(registry: Registry = new Registry()): ForwarderMetrics {
  const registers = [registry];
  const scrapes = new Counter({
    name: "promproxy_client_scrapes_total",
    help: "Scrapes answered by a target and relayed whole, by target and the target's HTTP status code.",
    labelNames: ["target", "code"],
    registers,
  });
  const failures = new Counter({
    name: "promproxy_client_scrape_failures_total",
    help: "Scrapes of a target that failed, by target and reason (unreachable, timeout, too_large, busy, rate_limited, not_found, cancelled, internal).",
    labelNames: ["target", "reason"],
    registers,
  });
  const bytes = new Counter({
    name: "promproxy_client_relayed_bytes_total",
    help: "Body bytes relayed from targets to the server.",
    labelNames: ["target"],
    registers,
  });
  const connected = new Gauge({
    name: "promproxy_client_connected",
    help: "1 while at least one stream to a promproxy server replica is established, else 0.",
    registers,
  });
  const streams = new Gauge({
    name: "promproxy_client_streams",
    help: "Streams established now, one per server replica held.",
    registers,
  });
  const connects = new Counter({
    name: "promproxy_client_connects_total",
    help: "Streams a server welcomed (the first ones included).",
    registers,
  });
  const reconnects = new Counter({
    name: "promproxy_client_reconnects_total",
    help: "Times a stream was established again after one was lost.",
    registers,
  });
  const connectFailures = new Counter({
    name: "promproxy_client_connect_failures_total",
    help: "Failed connection attempts, by Connect error code.",
    labelNames: ["code"],
    registers,
  });
  connected.set(0);
  streams.set(0);
  let held = 0;
  let lost = 0;
  return {
    registry,
    onResult(r) {
      if (r.bytes > 0) bytes.inc({ target: r.target }, r.bytes);
      if (r.outcome === "success") scrapes.inc({ target: r.target, code: String(r.status ?? 0) });
      else failures.inc({ target: r.target, reason: r.outcome });
    },
    onConnected() {
      streams.set(++held);
      connected.set(1);
      connects.inc();
      if (lost > 0) {
        lost--;
        reconnects.inc();
      }
    },
    onDisconnected() {
      held = Math.max(0, held - 1);
      lost++;
      streams.set(held);
      connected.set(held > 0 ? 1 : 0);
    },
    onConnectError(e) {
      connectFailures.inc({ code: (Code[e.code] ?? String(e.code)).replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase() });
    },
  };
}

/** Serves a registry at `GET /metrics` on host:port. @internal */
export async function serveMetrics(registry: Registry, host: string, port: number): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end("promproxy client: only GET /metrics here\n");
      return;
    }
    registry.metrics().then(
      (body) => {
        res.writeHead(200, { "content-type": registry.contentType, "content-length": Buffer.byteLength(body) });
        res.end(req.method === "HEAD" ? undefined : body);
      },
      (e: unknown) => {
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
        res.end(`promproxy client: collecting metrics failed: ${String(e)}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
