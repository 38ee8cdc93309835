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
 * with backpressure, not buffered), once its head is found signed over the
 * request's nonce (a peer whose state says it signs them: someone else at its
 * address cannot pose as it). A peer that cannot be reached before it
 * answered, or answers unsigned, is skipped for the next holder (a scrape is
 * a GET: safe to retry); when none is left, 502 with the reason. No answer in
 * the budget: 504. A holder with no place for it (src/server/peers/forward-places.ts: `maxForwardsPerPeer`, and
 * one address's share) is skipped too; when that was a reason, 503 at once, never a wait.
 *
 * @internal
 */
import * as http from "node:http";
import type { Http2ServerRequest } from "node:http2";
import * as https from "node:https";
import type { Counter } from "prom-client";
import type { ScrapeRequest } from "../coordinator.ts";
import { reply } from "../relay.ts";
import { sourceKey } from "../../shared/source-key.ts";
import type { ForwardPlaces, NoPlace } from "./forward-places.ts";
import { forwardedForHeader, forwardedHeader, nonceOf, notHeldHeader, peerAnswerHeader, peerAuthHeader, type PeerAuth } from "./peer-auth.ts";
import type { Peer } from "./peer-poller.ts";

type Req = http.IncomingMessage | Http2ServerRequest;

/** Holders tried for one scrape at most. */
const maxAttempts = 3;
/** How often a forward waiting for its holder's answer looks whether the holder still answers its state polls. */
const holderWatchMs = 250;
/** How long a holder that let a scrape run out of its budget without a word is asked last. */
const hungForMs = 60_000;
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
  /** Places per peer: a forward without one is refused, never queued in an agent. */
  places: ForwardPlaces;
  /** Forwarded scrapes by outcome. */
  counter: Counter<"outcome">;
  /** Hears every forwarded scrape that failed here (unreachable, timeout, cut), for the status page. */
  onFailed(r: ScrapeRequest, outcome: string, message: string, durationMs: number): void;
}): Forwarder {
  /**
   * Holders that let a forwarded scrape run out of its budget without a word, until when they go last: one whose
   * polls succeed but whose scrapes hang would otherwise fail its share of scrapes for as long as it hangs.
   */
  const hung = new Map<Peer, number>();
  const isHung = (p: Peer) => (hung.get(p) ?? 0) > Date.now();

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
    // Ready holders first (one that is not ready may be draining, on its way out); one that hung lately last.
    for (const [p, until] of hung) if (until <= Date.now()) hung.delete(p);
    const readyFirst = (a: Peer, b: Peer) => Number(isHung(a)) - Number(isHung(b)) || Number(b.state?.ready) - Number(a.state?.ready);
    return [...connected.sort(readyFirst), ...vanished].slice(0, maxAttempts);
  }

  function forward(req: Req, res: http.ServerResponse, r: ScrapeRequest, uri: string): boolean {
    const tried = holders(r.name);
    if (tried.length === 0) return false;
    const started = Date.now();
    const deadline = started + r.timeoutMs;
    const failures: string[] = [];
    const asked: string[] = [];
    /** The holder asked last, whether its request got a connection (left this replica), and whether it has answered (its head). */
    let askedNow: Peer | undefined;
    let leftNow = false;
    let answeredNow = false;
    const source = sourceKey(req.socket?.remoteAddress ?? "");
    /** Gives back the place held at the holder asked now. */
    let release = () => {};
    /** Why a holder had no place for it, the first time: then the answer is 503 (retry), not 502. */
    let full: NoPlace["outcome"] | undefined;
    let over = false;
    let current: http.ClientRequest | undefined;
    let watch: NodeJS.Timeout | undefined;
    const finish = (outcome: string, message = "") => {
      if (over) return false;
      over = true;
      release();
      clearTimeout(timer);
      clearInterval(watch);
      res.off("close", onClose);
      o.counter.inc({ outcome });
      if (message) o.onFailed(r, `forward_${outcome}`, message, Date.now() - started);
      return true;
    };
    const onClose = () => {
      if (finish("prometheus_gone")) current?.destroy();
    };
    res.on("close", onClose);
    // The peer is given a little less than the budget, so that its own answer (a 504 naming the client's cause)
    // comes first; this catches a peer that answers nothing at all, at the budget.
    const timer = setTimeout(() => {
      const s = +(r.timeoutMs / 1000).toFixed(3);
      // A request that never got a connection never reached its holder: not blamed, not marked hung.
      const message = leftNow
        ? `scrape of "${r.name}" forwarded to replica ${asked.join(", ")}: no answer within ${s}s`
        : `scrape of "${r.name}" not forwarded within ${s}s: no connection to replica ${asked.at(-1)} came free here (it was not asked)`;
      if (!finish("timeout", message)) return;
      if (askedNow && leftNow && !answeredNow) hung.set(askedNow, Date.now() + hungForMs);
      current?.destroy();
      reply(res, 504, message);
    }, r.timeoutMs);
    /** The next holder, or the end with every reason when none is left (or no time). */
    const next = (i: number, why: string): void => {
      failures.push(why);
      if (i + 1 < tried.length && Date.now() < deadline) return attempt(i + 1);
      if (full) {
        const message = `scrape of "${r.name}" not forwarded: ${failures.join("; ")}; retry later`;
        if (finish(full, message)) reply(res, 503, message);
        return;
      }
      const message = `scrape of "${r.name}" not forwarded: the replica${tried.length > 1 ? "s" : ""} holding it could not be reached (${failures.join("; ")})`;
      if (finish("unreachable", message)) reply(res, 502, message);
    };

    const attempt = (i: number, again = false): void => {
      const p = tried[i]!;
      const peerName = `${p.state?.id ?? "?"} (${p.address.url})`;
      release();
      release = () => {};
      const place = o.places.take(p.address.url, peerName, source);
      if (typeof place !== "function") {
        full ??= place.outcome;
        return next(i, place.why);
      }
      release = place;
      askedNow = p;
      leftNow = false;
      answeredNow = false;
      if (!again) asked.push(peerName);
      const left = deadline - Date.now();
      const timeout = String(Math.max(0.001, (left - Math.min(250, left * 0.1)) / 1000));
      const headers: Record<string, string> = {};
      for (const h of passed) {
        const v = req.headers[h];
        if (typeof v === "string") headers[h] = v;
      }
      headers["x-prometheus-scrape-timeout-seconds"] = timeout;
      headers[forwardedHeader] = o.replicaId;
      headers[peerAuthHeader] = o.auth.sign(req.method ?? "GET", uri, timeout, p.state?.id ?? "");
      const nonce = nonceOf(headers[peerAuthHeader]);
      // The holder judges the scrape's claim on a stalled place by the asker's address, not this replica's.
      headers[forwardedForHeader] = o.auth.signFor(nonce, req.socket?.remoteAddress ?? "");
      // Whether its answer must be signed, as its state said when the request went out: an impostor that answers a
      // state poll unsigned meanwhile has that state forgotten, and must not thereby be let off.
      const mustSign = p.state?.signedForwards === true;
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
      up.once("socket", () => {
        if (current === up) leftNow = true;
      });
      let answered = false;
      let abandoned = false;
      // A holder that stops answering its state polls after this request went out (stopped, frozen, cut off) will
      // not answer it either: the next holder is asked while there is time. A slow scrape of a live holder is not,
      // and the last holder is waited for (a poll lost under load must not turn a scrape it would answer into a 502).
      const sent = Date.now();
      clearInterval(watch);
      if (i + 1 < tried.length) watch = setInterval(() => {
        if (answered || over) return clearInterval(watch);
        if (p.error === undefined || p.lastOkAt >= sent) return;
        clearInterval(watch);
        abandoned = true;
        up.destroy();
        next(i, `${peerName}: stopped answering its state polls (${p.error}) before it answered`);
      }, holderWatchMs).unref();
      up.on("response", (ur) => {
        answered = true;
        hung.delete(p);
        if (askedNow === p) answeredNow = true;
        if (over || abandoned) return void ur.destroy();
        // Not this holder's to answer (it no longer holds the client, or it refused our signature: not the replica
        // we took it for): the next holder is asked. The answer of the last one asked is passed on.
        const refusedUs = ur.statusCode === 401 || ur.statusCode === 403;
        const unsigned = !refusedUs && mustSign && !o.auth.verifyForwardAnswer(nonce, ur.headers[peerAnswerHeader]);
        const miss = unsigned || ur.headers[notHeldHeader] !== undefined || refusedUs;
        const why = unsigned ? " without the peer signature (someone else at its address?)" : ur.headers[notHeldHeader] !== undefined ? " (it does not hold the client)" : "";
        if (miss && (unsigned || (i + 1 < tried.length && Date.now() < deadline))) {
          if (unsigned) ur.destroy(); // not read, and its connection not kept: someone else answers there
          else ur.resume();
          return next(i, `${peerName}: answered ${ur.statusCode}${why}`);
        }
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(ur.headers)) if (v !== undefined && !hopByHop.has(k) && k !== notHeldHeader && k !== peerAnswerHeader) out[k] = v;
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
        if (over || abandoned) return;
        if (answered) {
          if (finish("cut", `the answer of replica ${peerName} broke off: ${e.message}`)) res.destroy();
          return;
        }
        // A kept-alive connection the peer closed just as we reused it: the request never reached it; once more.
        if (up.reusedSocket && !again && (e as NodeJS.ErrnoException).code === "ECONNRESET") return attempt(i, true);
        next(i, `${peerName}: ${e.message}`);
      });
      up.end();
    };
    attempt(0);
    return true;
  }

  return { holders, forward };
}
