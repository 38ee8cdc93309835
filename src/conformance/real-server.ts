/**
 * Our real promproxy server, for the scenarios where behaving correctly is
 * enough (discovery, proxied scrapes, a name already held): with small chunks
 * and little credit, so that even a small exposition is chunked and waits for
 * credit, and with the refusals it logs recorded.
 *
 * @internal
 */
import * as http from "node:http";
import { createServer } from "../server/server.ts";
import type { DiscoveryGroup } from "../server/discovery.ts";
import type { ServerOptions } from "../server/options.ts";
import { silentLogger } from "../shared/logger.ts";
import type { ScenarioContext } from "./scenario.ts";

/** A proxied response as Prometheus would see it. */
export interface ProxiedResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface RealServer {
  readonly url: string;
  readonly port: number;
  /** The connected clients. */
  clients(): { name: string; sessionId: string }[];
  /** Streams the server refused, with the Connect code name ("AlreadyExists", ...). */
  readonly refusals: { at: number; code: string }[];
  /** A proxy request for `uri` (an absolute URI such as http://NAME/metrics). */
  proxyGet(uri: string, headers?: Record<string, string>): Promise<ProxiedResponse>;
  /** The `/clients` document. */
  discovery(): Promise<DiscoveryGroup[]>;
}

/** Starts a real server on 127.0.0.1 (1 KiB chunks, 4 KiB credit unless `options` say otherwise), closed when the scenario ends. */
export async function startRealServer(ctx: ScenarioContext, options: ServerOptions = {}): Promise<RealServer> {
  const refusals: { at: number; code: string }[] = [];
  const server = createServer({
    maxChunkBytes: 1024,
    creditBytes: 4096,
    heartbeatIntervalMs: 2_000,
    vanishedRetentionMs: 0,
    ...options,
    logger: silentLogger,
  });
  server.on("clientRefused", (r) => refusals.push({ at: Date.now(), code: r.code }));
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  ctx.defer(() => server.close({ graceMs: 200, drainDelayMs: 0 }));

  function request(path: string, headers: Record<string, string> = {}): Promise<ProxiedResponse> {
    return new Promise((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, path, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end();
    });
  }

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    clients: () => server.clients().map((c) => ({ name: c.name, sessionId: c.sessionId })),
    refusals,
    proxyGet: (uri, headers) => request(uri, headers),
    async discovery() {
      const r = await request("/clients");
      return JSON.parse(r.body.toString("utf8")) as DiscoveryGroup[];
    },
  };
}
