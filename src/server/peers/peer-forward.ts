/**
 * Forwards a scrape for a client this replica does not hold to a peer that
 * does: one hop. The forwarded request is the same proxy request (absolute
 * URI, method, Accept, Accept-Encoding, User-Agent) with the scrape timeout
 * header set to the budget left, marked `x-promproxy-forwarded` and signed
 * with the peer secret; the peer answers from its own state only (404 if it
 * no longer holds the client), never forwarding again, so no request loops.
 * Prometheus-side auth was checked here, where the request entered.
 *
 * The peer's answer is passed on unchanged (status, headers, body streamed
 * with backpressure, not buffered). A peer that cannot be reached before it
 * answered is skipped for the next holder (a scrape is a GET: safe to retry);
 * when none is left, 502 with the reason. No answer in the budget: 504.
 *
 * @internal
 */
import * as http from "node:http";
import type { Http2ServerRequest } from "node:http2";
import * as https from "node:https";
import type { Counter } from "prom-client";
import type { ScrapeRequest } from "../coordinator.ts";
import { reply } from "../relay.ts";
import { forwardedHeader, peerAuthHeader, type PeerAuth } from "./peer-auth.ts";
import type { Peer } from "./peer-poller.ts";

type Req = http.IncomingMessage | Http2ServerRequest;

/** Holders tried for one scrape at most. */
const maxAttempts = 3;
/** Response headers of the peer's answer that belong to its connection, not to the answer. */
const hopByHop = new Set(["connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te", "trailer"]);
/** Request headers passed on, as a replica passes them to a client. */
const passed = ["accept", "accept-encoding", "user-agent"];

export interface Forwarder {
  /** Peers to ask for a name: those holding it connected (in random order), then those listing it as vanished. */
  holders(name: string): Peer[];
  /** Forwards the scrape to a holder and answers `res`; false (nothing sent) when no fresh peer lists the name. */
  forward(req: Req, res: http.ServerResponse, r: ScrapeRequest, uri: string): boolean;
}

export function createForwarder(o: {
  auth: PeerAuth;
  replicaId: string;
  fresh: () => Peer[];
  agents: { http: http.Agent; https: https.Agent };
  /** Forwarded scrapes by outcome. */
  counter: Counter<"outcome">;
  /** Hears every forwarded scrape that failed here (unreachable, timeout, cut), for the status page. */
  onFailed(r: ScrapeRequest, outcome: string, message: string, durationMs: number): void;
}): Forwarder {
  function holders(name: string): Peer[] {
    const connected: Peer[] = [];
    const vanished: Peer[] = [];
    for (const p of o.fresh()) {
      const c = p.state?.clients.get(name);
      if (c) (c.connected ? connected : vanished).push(p);
    }
    for (let i = connected.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [connected[i], connected[j]] = [connected[j]!, connected[i]!];
    }
    // Ready holders first: one that is not ready may be draining, on its way out.
    const readyFirst = (a: Peer, b: Peer) => Number(b.state?.ready) - Number(a.state?.ready);
    return [...connected.sort(readyFirst), ...vanished].slice(0, maxAttempts);
  }

  function forward(req: Req, res: http.ServerResponse, r: ScrapeRequest, uri: string): boolean {
    const tried = holders(r.name);
    if (tried.length === 0) return false;
    const started = Date.now();
    const deadline = started + r.timeoutMs;
    const failures: string[] = [];
    let over = false;
    let current: http.ClientRequest | undefined;
    const finish = (outcome: string, message = "") => {
      if (over) return false;
      over = true;
      clearTimeout(timer);
      res.off("close", onClose);
      o.counter.inc({ outcome });
      if (message) o.onFailed(r, `forward_${outcome}`, message, Date.now() - started);
      return true;
    };
    const onClose = () => {
      if (finish("prometheus_gone")) current?.destroy();
    };
    res.on("close", onClose);
    // The peer enforces the budget itself (504 from there); this only catches a peer that stops answering at all.
    const timer = setTimeout(() => {
      const message = `scrape of "${r.name}" forwarded to replica ${tried.map((p) => p.state?.id).join(", ")}: no answer within ${+(r.timeoutMs / 1000).toFixed(3)}s`;
      if (!finish("timeout", message)) return;
      current?.destroy();
      reply(res, 504, message);
    }, r.timeoutMs + 1_000);

    const attempt = (i: number, again = false) => {
      const p = tried[i]!;
      const peerName = `${p.state?.id ?? "?"} (${p.address.url})`;
      const timeout = String(Math.max(0.001, (deadline - Date.now()) / 1000));
      const headers: Record<string, string> = {};
      for (const h of passed) {
        const v = req.headers[h];
        if (typeof v === "string") headers[h] = v;
      }
      headers["x-prometheus-scrape-timeout-seconds"] = timeout;
      headers[forwardedHeader] = o.replicaId;
      headers[peerAuthHeader] = o.auth.sign(req.method ?? "GET", uri, timeout, p.state?.id ?? "");
      const u = new URL(p.address.url);
      let up: http.ClientRequest;
      try {
        up = (u.protocol === "https:" ? https : http).request({
          protocol: u.protocol,
          hostname: u.hostname.replace(/^\[|\]$/g, ""),
          port: u.port,
          method: req.method,
          path: uri,
          headers,
          agent: u.protocol === "https:" ? o.agents.https : o.agents.http,
          servername: p.address.servername,
        });
      } catch (e) {
        // Node refuses to send what it parsed leniently (a character it will not write in a path or header).
        const message = `scrape of "${r.name}" not forwarded: ${(e as Error).message}`;
        if (finish("unreachable", message)) reply(res, 502, message);
        return;
      }
      current = up;
      let answered = false;
      up.on("response", (ur) => {
        answered = true;
        if (over) return void ur.destroy();
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(ur.headers)) if (v !== undefined && !hopByHop.has(k)) out[k] = v;
        res.writeHead(ur.statusCode ?? 502, out);
        ur.pipe(res);
        const status = ur.statusCode ?? 0;
        ur.on("end", () => finish(status >= 200 && status < 300 ? "success" : "error_status"));
        const cut = `the answer of replica ${peerName} broke off`;
        ur.on("aborted", () => {
          if (finish("cut", cut)) res.destroy();
        });
        ur.on("error", () => {
          if (finish("cut", cut)) res.destroy();
        });
      });
      up.on("error", (e) => {
        if (over) return;
        if (answered) {
          if (finish("cut", `the answer of replica ${peerName} broke off: ${e.message}`)) res.destroy();
          return;
        }
        // A kept-alive connection the peer closed just as we reused it: the request never reached it; once more.
        if (up.reusedSocket && !again && (e as NodeJS.ErrnoException).code === "ECONNRESET") return attempt(i, true);
        failures.push(`${peerName}: ${e.message}`);
        if (i + 1 < tried.length && Date.now() < deadline) return attempt(i + 1);
        const message = `scrape of "${r.name}" not forwarded: the replica${tried.length > 1 ? "s" : ""} holding it could not be reached (${failures.join("; ")})`;
        if (finish("unreachable", message)) reply(res, 502, message);
      });
      up.end();
    };
    attempt(0);
    return true;
  }

  return { holders, forward };
}
