/**
 * Polls every peer's state every `pollIntervalMs`, a failing one with a
 * backoff up to `maxBackoffMs`, those that answered first
 * (./poll-schedule.ts): at most `concurrency` requests at once (a poll that
 * ends frees its slot for the next due peer at once), at most one per peer,
 * each bounded by `timeoutMs` and its body by `maxStateBytes`. A peer that
 * stalls, answers garbage or too much is marked failing with the reason; one
 * not heard from for `staleMs` counts as gone (its clients leave the merged
 * `/clients`, nothing is forwarded to it); one whose answer is not signed
 * with the secret at once. Unchanged states cost a 304 (ETag).
 *
 * @internal
 */
import * as http from "node:http";
import * as https from "node:https";
import type { Logger } from "../../shared/logger.ts";
import { peerAnswerHeader, peerAuthHeader, type PeerAuth } from "./peer-auth.ts";
import type { PeerAddress, PeerList } from "./peer-list.ts";
import { parsePeerState, peerStatePath, type PeerState } from "./peer-state.ts";
import { duePeers, nextDueAt, type ScheduleOptions } from "./poll-schedule.ts";

/** What this replica knows of one peer. */
export interface Peer {
  address: PeerAddress;
  /** The last state it sent; undefined before its first answer. */
  state?: PeerState;
  /** Bumped on every new state (for caches built on it). */
  generation: number;
  etag?: string;
  /** When it last answered (Date.now()), 0 never. */
  lastOkAt: number;
  /** Why its last poll failed, if it did. */
  error?: string;
  /** Its polls that failed in a row, 0 after an answer (a failing peer is polled with a backoff). */
  failures: number;
  /** This replica itself (its state names our id). */
  self: boolean;
  polling: boolean;
  /** When its last poll started (Date.now()), 0 never. */
  polledAt: number;
}

export interface PollerOptions {
  list: PeerList;
  auth: PeerAuth;
  replicaId: string;
  pollIntervalMs: number;
  resolveIntervalMs: number;
  timeoutMs: number;
  staleMs: number;
  maxStateBytes: number;
  /** Polls at once at most (a slot is free again as soon as its poll ends); failing peers take at most half of them. */
  concurrency: number;
  /** The longest wait between two polls of a peer whose polls fail (doubling from `pollIntervalMs`). Default 30 s. */
  maxBackoffMs?: number;
  agents: { http: http.Agent; https: https.Agent };
  logger: Logger;
}

export interface Poller {
  /** Every peer polled, self included. */
  readonly peers: readonly Peer[];
  /** Peers other than this replica that answered within `staleMs`. */
  fresh(): Peer[];
  /** Whether the list is resolved and every peer other than this replica has answered at least once. */
  readonly synced: boolean;
  close(): void;
}

export function createPoller(o: PollerOptions): Poller {
  const byUrl = new Map<string, Peer>();
  let running = 0;
  /** Polls of failing peers running: at most `failingSlots`, so that the peers that answer always find a slot. */
  let runningFailing = 0;
  const failingSlots = Math.max(1, Math.floor(o.concurrency / 2));
  let lastResolve = -Infinity;
  let resolving = false;
  let closed = false;
  const requests = new Set<http.ClientRequest>();
  const schedule: ScheduleOptions = { pollIntervalMs: o.pollIntervalMs, maxBackoffMs: Math.max(o.pollIntervalMs, o.maxBackoffMs ?? 30_000), staleMs: o.staleMs };
  /** Wakes {@link pump} when the next peer falls due while a slot is free. */
  let wake: NodeJS.Timeout | undefined;
  let wakeAt = Infinity;

  /**
   * An answer not signed with the secret: someone else answers at the peer's address (its process gone, the
   * address taken): what the peer said is forgotten at once (its clients leave `/clients`, nothing is forwarded
   * there), where a peer that is only silent keeps counting for `staleMs`.
   */
  const unsigned = "its answer is not signed with the peer secret";

  function poll(p: Peer) {
    p.polling = true;
    p.polledAt = Date.now();
    running++;
    const failing = p.failures > 0;
    if (failing) runningFailing++;
    const u = new URL(peerStatePath, p.address.url);
    const mod = u.protocol === "https:" ? https : http;
    // Addressed to the id it last named; after a failed poll to nobody: a replacement at the same address (a
    // restarted process, a new id) refuses a poll addressed to its predecessor, and must still be learned.
    const signed = o.auth.sign("GET", peerStatePath, undefined, p.error === undefined ? (p.state?.id ?? "") : "");
    const nonce = signed.split(";")[2] ?? "";
    let done = false;
    /** Ends the poll: answered (no error), or failed; `forget`: what the peer said no longer counts (someone else answers there). */
    const finish = (error?: string, forget = false) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      requests.delete(req);
      p.polling = false;
      running--;
      if (failing) runningFailing--;
      if (error) {
        if (p.error === undefined) o.logger.warn("peer state not fetched", { peer: p.address.url, error });
        p.error = error;
        p.failures++;
        if (forget && p.state) {
          p.state = undefined;
          p.etag = undefined;
          p.generation++;
        }
      } else {
        if (p.error !== undefined && p.lastOkAt > 0) o.logger.info("peer answers again", { peer: p.address.url });
        p.error = undefined;
        p.failures = 0;
        p.lastOkAt = Date.now();
      }
      pump();
    };
    const req = mod.request(u, {
      method: "GET",
      agent: u.protocol === "https:" ? o.agents.https : o.agents.http,
      servername: p.address.servername,
      headers: { [peerAuthHeader]: signed, ...(p.etag ? { "if-none-match": p.etag } : {}) },
    });
    let res0: http.IncomingMessage | undefined;
    // Whoever answers must know the secret too: the answer is signed over this request's nonce.
    const answered = (status: number, body: string) => o.auth.verifyAnswer(nonce, status, String(res0?.headers["etag"] ?? ""), body, res0?.headers[peerAnswerHeader]);
    requests.add(req);
    const timer = setTimeout(() => {
      req.destroy();
      finish(`no answer within ${o.timeoutMs / 1000}s`);
    }, o.timeoutMs);
    req.on("error", (e) => finish(e.message));
    req.on("response", (res) => {
      res0 = res;
      if (res.statusCode === 304) {
        res.resume();
        return answered(304, "") ? finish() : finish(unsigned, true);
      }
      const declared = Number(res.headers["content-length"] ?? 0);
      if (declared > o.maxStateBytes) {
        req.destroy();
        return finish(`its state is ${declared} bytes, more than maxPeerStateBytes (${o.maxStateBytes})`);
      }
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on("data", (c: Buffer) => {
        bytes += c.length;
        if (bytes > o.maxStateBytes) {
          req.destroy();
          return finish(`its state passed maxPeerStateBytes (${o.maxStateBytes})`);
        }
        chunks.push(c);
      });
      res.on("error", (e) => finish(e.message));
      res.on("end", () => {
        if (done) return;
        const text = Buffer.concat(chunks).toString("utf8");
        if (res.statusCode !== 200) return finish(`status ${res.statusCode}: ${text.split("\n")[0]?.slice(0, 200)}`);
        if (!answered(200, text)) return finish(unsigned, true);
        try {
          const state = parsePeerState(text);
          p.state = state;
          p.self = state.id === o.replicaId;
          p.generation++;
          const etag = res.headers["etag"];
          p.etag = typeof etag === "string" && etag.length <= 100 ? etag : undefined;
          finish();
        } catch (e) {
          finish(`its state is not valid: ${(e as Error).message}`);
        }
      });
    });
    req.end();
  }

  function tick() {
    if (closed) return;
    const now = Date.now();
    void o.auth.refresh().catch(() => {});
    if (!resolving && now - lastResolve >= o.resolveIntervalMs) {
      resolving = true;
      lastResolve = now;
      o.list
        .refresh()
        .catch(() => {})
        .finally(() => {
          resolving = false;
          if (!closed) sync();
        });
    }
    sync();
  }

  /** Follows the list (new peers, dropped ones), then polls those due. */
  function sync() {
    const urls = new Set(o.list.current.map((a) => a.url));
    for (const [url] of byUrl) {
      if (!urls.has(url)) byUrl.delete(url);
    }
    for (const a of o.list.current) if (!byUrl.has(a.url)) byUrl.set(a.url, { address: a, generation: 0, lastOkAt: 0, failures: 0, self: false, polling: false, polledAt: 0 });
    pump();
  }

  /** Starts the polls due while slots are free; when slots are left, wakes again when the next peer falls due. */
  function pump() {
    if (closed) return;
    const now = Date.now();
    if (running < o.concurrency) {
      for (const p of duePeers(byUrl.values(), now, schedule)) {
        if (p.failures > 0 && runningFailing >= failingSlots) break; // failing ones come last
        poll(p);
        if (running >= o.concurrency) break;
      }
    }
    // A full house wakes on the next poll's end instead.
    const next = running < o.concurrency ? nextDueAt(byUrl.values(), schedule, runningFailing < failingSlots) : Infinity;
    if (next === wakeAt) return;
    clearTimeout(wake);
    wake = undefined;
    wakeAt = next;
    if (next === Infinity) return;
    wake = setTimeout(() => {
      wake = undefined;
      wakeAt = Infinity;
      pump();
    }, Math.max(0, next - now));
    wake.unref();
  }

  // The first round shortly after creation, when the server listens (it polls itself, too, to learn its address).
  const timer = setInterval(tick, o.pollIntervalMs);
  timer.unref();
  setTimeout(tick, Math.min(250, o.pollIntervalMs)).unref();

  return {
    get peers() {
      return [...byUrl.values()];
    },
    fresh() {
      const now = Date.now();
      return [...byUrl.values()].filter((p) => !p.self && p.state && now - p.lastOkAt <= o.staleMs);
    },
    get synced() {
      if (!o.list.resolved) return false;
      for (const a of o.list.current) {
        const p = byUrl.get(a.url);
        if (!p || (!p.self && p.lastOkAt === 0)) return false;
      }
      return true;
    },
    close() {
      closed = true;
      clearInterval(timer);
      clearTimeout(wake);
      for (const r of requests) r.destroy();
    },
  };
}
