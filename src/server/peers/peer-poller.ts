/**
 * Polls every peer's state every `pollIntervalMs`, a failing one with a backoff up to `maxBackoffMs`, those that
 * answered first (./poll-schedule.ts): at most `concurrency` requests at once (a poll that ends frees its slot for
 * the next due peer at once), at most one per peer, each bounded by `timeoutMs` (a large state's body by more, as
 * it needs) and `maxStateBytes`. A peer that stalls, answers garbage or too much is marked failing with the reason;
 * one not heard from for `staleMs` (nor sending a state) counts as gone (its clients leave the merged `/clients`,
 * nothing is forwarded to it); one whose answer is not signed with the secret at once. Unchanged states cost a 304
 * (ETag). A poll on the wire: ./state-fetch.ts. An address that answers with this replica's id and this process's
 * instance token is this replica (polled again now and then); another process with this id is neither it nor a
 * peer, and said.
 *
 * @internal
 */
import type * as http from "node:http";
import type * as https from "node:https";
import type { Logger } from "../../shared/logger.ts";
import type { PeerAuth } from "./peer-auth.ts";
import type { PeerAddress, PeerList } from "./peer-list.ts";
import { parsePeerState, processInstance, type PeerState } from "./peer-state.ts";
import { duePeers, heldBack, nextDueAt, quickOnes, type ScheduleOptions } from "./poll-schedule.ts";
import { createPeerStatusLog } from "./peer-status-log.ts";
import { fetchState, type Fetched } from "./state-fetch.ts";

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
  /** Until when (Date.now()) the body of the state it is sending may take, 0 none. */
  receivingUntil: number;
  /** Why its last poll failed, if it did. */
  error?: string;
  /** Its polls that failed in a row, 0 after an answer (a failing peer is polled with a backoff). */
  failures: number;
  /** This replica itself (its state names our id and this process's instance token). */
  self: boolean;
  polling: boolean;
  /** When its last poll started (Date.now()), 0 never. */
  polledAt: number;
  /** To be polled at once, whatever its backoff (a replica unknown here polled this one). */
  retryNow: boolean;
  /** Its last answer took more than `slowMs`. */
  slow: boolean;
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
  /**
   * Polls at once at most (a slot is free again as soon as its poll ends). Failing peers take at most half of them;
   * failing and slow ones together all but one while another peer answers quickly, which goes first.
   */
  concurrency: number;
  /** A peer whose last answer took longer is slow. Default: a quarter of `timeoutMs`. */
  slowMs?: number;
  /** The longest wait between two polls of a peer whose polls fail (doubling from `pollIntervalMs`). Default 30 s. */
  maxBackoffMs?: number;
  /** How often this replica's own address is polled again (whoever answers there may change). Default 30 s. */
  selfRecheckMs?: number;
  /** The least time between two warnings that one peer's polls fail (and two lines that it answers again). Default 60 s. */
  statusQuietMs?: number;
  /** The least time between two warnings that another process answers with this replica's id. Default 60 s. */
  sameIdWarnMs?: number;
  agents: { http: http.Agent; https: https.Agent };
  logger: Logger;
}

export interface Poller {
  /** Every peer polled, self included. */
  readonly peers: readonly Peer[];
  /** Peers other than this replica that answered within `staleMs` (or send a state's body, for a poll begun while fresh: state-fetch.ts). */
  fresh(): Peer[];
  /** Whether the list is resolved and every peer other than this replica has answered at least once. */
  readonly synced: boolean;
  /**
   * A verified state poll came from replica `id`: if no fresh peer has that id (a replica back, or new, perhaps
   * at an address failing here), every failing peer is polled at once rather than at the end of its backoff.
   * At most once a `pollIntervalMs`.
   */
  heardFrom(id: string): void;
  close(): void;
}

export function createPoller(o: PollerOptions): Poller {
  const byUrl = new Map<string, Peer>();
  let running = 0;
  /** Polls of failing peers running: at most `failingSlots`, so that the peers that answer always find a slot. */
  let runningFailing = 0;
  const failingSlots = Math.max(1, Math.floor(o.concurrency / 2));
  /** Polls of failing peers and slow ones (while some peer answers quickly) running: all slots but one at most. */
  let runningHeld = 0;
  const heldSlots = Math.max(1, o.concurrency - 1);
  const slowMs = o.slowMs ?? o.timeoutMs / 4;
  const statusLog = createPeerStatusLog(o.logger, o.statusQuietMs);
  let lastResolve = -Infinity;
  let resolving = false;
  let closed = false;
  const requests = new Set<{ destroy(): void }>();
  const schedule: ScheduleOptions = { pollIntervalMs: o.pollIntervalMs, maxBackoffMs: Math.max(o.pollIntervalMs, o.maxBackoffMs ?? 30_000), staleMs: o.staleMs, selfRecheckMs: o.selfRecheckMs ?? 30_000 };
  let sameIdWarnedAt = -Infinity;
  let retriedAt = -Infinity;
  /** Wakes {@link pump} when the next peer falls due while a slot is free. */
  let wake: NodeJS.Timeout | undefined;
  let wakeAt = Infinity;

  /**
   * Another process answers with this replica's id (two replicas given one id): not this replica, not a peer
   * to list or forward to (the replica set and forwarding go by id); polled on, said at most once a minute.
   */
  function sameId(p: Peer) {
    p.self = false;
    if (Date.now() - sameIdWarnedAt >= (o.sameIdWarnMs ?? 60_000)) {
      sameIdWarnedAt = Date.now();
      o.logger.warn("another process answers with this replica's own id: give each replica its own --replica-id", { peer: p.address.url, replicaId: o.replicaId });
    }
    return `another process answers with this replica's own id "${o.replicaId}" (give each replica its own --replica-id)`;
  }

  /** What the peer said no longer counts: its clients leave `/clients`, nothing is forwarded to it. */
  function forget(p: Peer) {
    if (!p.state) return;
    p.state = undefined;
    p.etag = undefined;
    p.generation++;
  }

  /** Whether a poll of `p` may start now (`quick`: {@link quickOnes}). */
  function mayStart(p: Peer, quick: boolean): boolean {
    if (p.failures > 0 && runningFailing >= failingSlots) return false;
    return runningHeld < heldSlots || !heldBack(p, quick);
  }

  function poll(p: Peer, held: boolean) {
    p.polling = true;
    p.retryNow = false;
    p.polledAt = Date.now();
    running++;
    const failing = p.failures > 0;
    if (failing) runningFailing++;
    if (held) runningHeld++;
    // Addressed to the id it last named; after a failed poll to nobody: a replacement at the same address (a
    // restarted process, a new id) refuses a poll addressed to its predecessor, and must still be learned.
    const to = p.error === undefined ? (p.state?.id ?? "") : "";
    const fetch = fetchState({ address: p.address, auth: o.auth, to, etag: p.etag, timeoutMs: o.timeoutMs, maxStateBytes: o.maxStateBytes, agents: o.agents, onBody: (until) => (p.receivingUntil = until) }, (r) => {
      requests.delete(fetch);
      p.polling = false;
      p.receivingUntil = 0;
      running--;
      if (failing) runningFailing--;
      if (held) runningHeld--;
      ended(p, r);
      pump();
    });
    requests.add(fetch);
  }

  /** Takes in how a poll of `p` ended. */
  function ended(p: Peer, r: Fetched) {
    let error: string | undefined;
    let answered = true;
    if ("error" in r) {
      error = r.error;
      answered = false;
      // Someone without the secret answers at the address: what the peer said is forgotten at once, where a peer
      // that is only silent keeps counting for `staleMs`.
      if (r.unsigned) forget(p);
    } else if (!r.unchanged) {
      try {
        const state = parsePeerState(r.text);
        if (state.id === o.replicaId && state.instance !== processInstance) {
          error = sameId(p);
          forget(p);
        } else {
          if (state.dropped > 0 && state.dropped !== p.state?.dropped) {
            o.logger.warn("peer lists clients whose names a hello would be refused: left out", { peer: p.address.url, dropped: state.dropped, first: state.droppedWhy });
          }
          p.state = state;
          p.self = state.id === o.replicaId;
          p.generation++;
          p.etag = r.etag;
        }
      } catch (e) {
        error = `its state is not valid: ${(e as Error).message}`;
        answered = false;
      }
    }
    if (error === undefined && p.error !== undefined && p.lastOkAt > 0) statusLog.answersAgain(p, p.address.url);
    if (error !== undefined && p.error === undefined && !answered) statusLog.failed(p, p.address.url, error);
    p.error = error;
    if (answered) {
      p.failures = 0;
      p.lastOkAt = Date.now();
      p.slow = p.lastOkAt - p.polledAt > slowMs;
    } else p.failures++;
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
    for (const a of o.list.current) if (!byUrl.has(a.url)) byUrl.set(a.url, { address: a, generation: 0, lastOkAt: 0, receivingUntil: 0, failures: 0, self: false, polling: false, polledAt: 0, retryNow: false, slow: false });
    pump();
  }

  /** Starts the polls due while slots are free; when slots are left, wakes again when the next peer falls due. */
  function pump() {
    if (closed) return;
    const now = Date.now();
    const quick = quickOnes(byUrl.values());
    if (running < o.concurrency) {
      for (const p of duePeers(byUrl.values(), now, schedule)) {
        if (!mayStart(p, quick)) continue; // slow and failing ones come last
        poll(p, heldBack(p, quick));
        if (running >= o.concurrency) break;
      }
    }
    // A full house wakes on the next poll's end instead.
    const next = running < o.concurrency ? nextDueAt(byUrl.values(), schedule, (p) => !mayStart(p, quick)) : Infinity;
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
      return [...byUrl.values()].filter((p) => !p.self && p.state && (now - p.lastOkAt <= o.staleMs || (p.receivingUntil > now && p.polledAt - p.lastOkAt <= o.staleMs)));
    },
    heardFrom(id) {
      const now = Date.now();
      if (closed || id === o.replicaId || now - retriedAt < o.pollIntervalMs) return;
      const fresh = this.fresh();
      if (fresh.some((p) => p.state?.id === id)) return;
      retriedAt = now;
      for (const p of byUrl.values()) if (p.failures > 0 && !p.self) p.retryNow = true;
      pump();
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
