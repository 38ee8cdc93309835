/**
 * The coordinator: who holds which name, who may join, which client a scrape
 * is for, heartbeats and the drain. Like PushProx's coordinator, it reads top
 * to bottom; the Connect service and the HTTP front are thin adapters around
 * it. A scrape's life from its order on (the deadline, the wait for a place,
 * the end exactly once) is src/server/flights.ts. It speaks in outcomes
 * (src/server/scrape-types.ts); the front turns them into HTTP statuses, the
 * service into stream codes.
 *
 * @internal
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Hello } from "../../gen/promproxy/v1/scrape_pb.ts";
import type { Identity } from "../auth/stream/identity.ts";
import type { Activity } from "./activity.ts";
import type { ClientInfo } from "./client-info.ts";
import { createDiscovery, discoveryBytesOf, type ClientsDocument, type DiscoveryEntry } from "./discovery.ts";
import { createFlights } from "./flights.ts";
import { negotiateFeatures } from "./features.ts";
import { checkHello } from "./hello.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { ResolvedServerOptions } from "./options.ts";
import type { OrderRequest, ScrapeFailure, ScrapeHandle, ScrapeSink } from "./scrape-types.ts";
import { oneLine } from "../shared/one-line.ts";
import { nameTaken } from "./name-taken.ts";
import { createRetryHints } from "./retry-hints.ts";
import { createSession, type Session } from "./session.ts";
import { createVanished, type VanishedClient } from "./vanished.ts";
import { fairShareVictim } from "./fair-share.ts";
import { startHeartbeat } from "./heartbeat.ts";

/** Where the server is in its life: serving; draining (serving, not ready); refusing new scrapes; closed. */
export type Phase = "serving" | "draining" | "refusing" | "closed";

/** A scrape as the front asks for it. @internal */
export interface ScrapeRequest extends OrderRequest {
  /** The client's name, lower case. */
  name: string;
  /**
   * Answered busy at once when the client's places are taken, never waiting:
   * a scrape a peer forwarded (each waiting one would hold a connection of
   * the peer's pool to this replica, and starve its other forwards); but it
   * may take a stalled answer's place (first in line, for its cancel to be read).
   */
  noWait?: boolean;
  /** Not ready yet (warming up): an unknown name may not have found this replica yet; `warming_up` (503), not 404. */
  warming?: boolean;
  /** The address that asked (src/server/stalled-places.ts); of a forwarded scrape, the signed one of its Prometheus. */
  remote?: string;
}

/** @internal */
export interface Coordinator {
  readonly phase: Phase;
  /** Whether load balancers should send Prometheus here (`/readyz`). */
  readonly ready: boolean;
  /** Scrapes in flight. */
  readonly inFlight: number;
  /** Holds a place for a new stream until its hello; throws `Unavailable` or `ResourceExhausted`. Returns the release. */
  admit(): () => void;
  /** Checks a hello, takes its name (probing a holder), lists the client; throws the refusal as a ConnectError. */
  join(hello: Hello, identity: Identity | undefined, address?: string): Promise<Session>;
  /**
   * Frees the session's name and listing. A client that `vanished` (its stream
   * broke or went quiet, rather than ending cleanly) stays listed as
   * disconnected for `vanishedRetentionMs`, answered with 503.
   */
  leave(session: Session, end: { reason: string; broke: boolean }): void;
  /** Starts a scrape; a failure at once when it cannot start. The sink hears the result. */
  scrape(request: ScrapeRequest, sink: ScrapeSink): ScrapeHandle | ScrapeFailure;
  /** The `/clients` document (its pieces, never joined), and its size in UTF-8 bytes. */
  discovery(): { body: ClientsDocument; bytes: number };
  clients(): ClientInfo[];
  /** The connected client holding a name, if any (not a copy: do not change it). */
  holder(name: string): Readonly<Omit<ClientInfo, "scrapesInFlight">> | undefined;
  /** Clients that vanished recently, oldest first. */
  vanished(): VanishedClient[];
  /** Drains: not ready at once, serving for `drainDelayMs`, then refusing; resolves when nothing is in flight (or after `graceMs`) and every stream is told to go. */
  shutdown(options: { drainDelayMs: number; graceMs: number }): Promise<void>;
}

/** The coordinator of one server; a refused name names this replica (src/server/name-taken.ts). */
export function createCoordinator(o: ResolvedServerOptions, metrics: ServerMetrics, activity: Activity): Coordinator {
  const log = o.logger;
  const byName = new Map<string, Session>();
  const listings = new Map<Session, () => void>();
  const listing = createDiscovery({ maxBytes: o.maxDiscoveryBytes });
  // Live clients per identity ("" when anonymous): vanished records yield only to identities holding fewer.
  const liveBy = new Map<string, number>();
  const countLive = (identity = "", d: number) => {
    const n = (liveBy.get(identity) ?? 0) + d;
    if (n > 0) liveBy.set(identity, n);
    else liveBy.delete(identity);
  };
  const gone = createVanished({ retentionMs: o.vanishedRetentionMs, maxPerIdentity: o.maxVanishedPerIdentity, live: (k) => liveBy.get(k) ?? 0 });
  let phase: Phase = "serving";
  // Warm-up: a new replica is not ready before its clients have found it (see ServerOptions.warmupMs).
  const startedAt = Date.now();
  let lastJoinAt = startedAt;
  let warm = o.warmupMs === 0;
  let pendingHellos = 0;
  const hints = createRetryHints(o.maxRetryAfterMs); // on refusals that shed load (src/server/retry-hints.ts)
  const flights = createFlights(o, metrics);
  const sessionLimits = { maxScrapesInFlight: o.maxScrapesInFlight, maxResponseBytes: o.maxResponseBytes, maxChunkBytes: o.maxChunkBytes, creditBytes: o.creditBytes }; // each scrape's life, and the wait for a place (src/server/flights.ts)

  // Heartbeats (src/server/heartbeat.ts). A dead stream's handler may be stuck writing to a peer that does not
  // read: its name is freed now, not when that ends.
  const heartbeat = startHeartbeat({ intervalMs: o.heartbeatIntervalMs, timeoutMs: o.heartbeatTimeoutMs, logger: log }, () => byName.values(), (s, reason) => leave(s, { reason, broke: true }));

  function admit(): () => void {
    if (phase !== "serving") throw new ConnectError("the server is shutting down", Code.Unavailable);
    if (pendingHellos >= o.maxPendingHellos) {
      throw new ConnectError(`${o.maxPendingHellos} streams are waiting for their hello, the maximum; try again later`, Code.ResourceExhausted, hints.refusal());
    }
    pendingHellos++;
    let held = true;
    return () => {
      if (held) pendingHellos--;
      held = false;
    };
  }

  async function join(hello: Hello, identity: Identity | undefined, address?: string): Promise<Session> {
    const { name, labels, targets } = checkHello(hello, o);
    if (identity && !identity.allows(name)) {
      throw new ConnectError(`identity "${identity.name}" may not use the name "${name}"`, Code.PermissionDenied);
    }
    const info = { name, labels, targets, sessionId: randomUUID(), version: oneLine(hello.version, 128), connectedAt: new Date(), identity: identity?.name, address };
    // A client that reconnects after its path died silently finds its old session still holding the name. Probe
    // the holder: a live one keeps it (AlreadyExists: no one steals a live client's name); a dead one is replaced.
    const holder = byName.get(name);
    // A searching client names the replicas it holds: this one, and its stream here was heard within 1.5 heartbeats,
    // so no probe (one slowed by load would let each search replace the live stream); a silent one is probed below.
    const heard = holder && Date.now() - holder.lastHeard < o.heartbeatIntervalMs * 1.5;
    if (heard && hello.heldReplicaIds.slice(0, 64).includes(o.replicaId)) throw nameTaken(name, holder.info.sessionId, o.replicaId);
    let replaced: Session | undefined; // its waiting scrapes move to the new stream, or fail if it is refused
    if (holder && !(await holder.probe(o.takeoverProbeMs)) && byName.get(name) === holder) {
      log.info("replacing a session that did not answer", { client: name, session: holder.info.sessionId });
      holder.close(new ConnectError("replaced by a new stream for the same name; this one did not answer a ping", Code.Aborted));
      leave(holder, { reason: "replaced by a new stream for the same name", broke: false }, true);
      replaced = holder;
    }
    try {
      const session = admitName(hello, info, identity);
      if (replaced) flights.moved(replaced, session);
      replaced = undefined;
      return session;
    } finally {
      if (replaced) flights.gone(replaced, { outcome: "disconnected", message: `client "${name}" disconnected while the scrape waited for a place: replaced by a new stream, which was refused` });
    }
  }

  /** Lists a client whose name is free (or just freed): throws the refusal as a ConnectError. */
  function admitName(hello: Hello, info: Omit<ClientInfo, "scrapesInFlight">, identity: Identity | undefined): Session {
    const name = info.name;
    if (phase !== "serving") throw new ConnectError("the server is shutting down", Code.Unavailable);
    const current = byName.get(name);
    if (current) throw nameTaken(name, current.info.sessionId, o.replicaId);
    // Vanished clients make room for live ones, in the count and in /clients: their own identity's, or a bigger one's.
    // A client coming back frees its own vanished place (forgotten below, once admitted).
    const full = () => byName.size + gone.size - (gone.get(name) ? 1 : 0) >= o.maxClients;
    const once = { live: false }; // a newcomer takes one live client's place at most
    while (full() && makeRoom(info.identity, once));
    if (full()) {
      const kept = gone.size ? ` (${gone.size} of them vanished clients of identities that hold no more clients than this one's)` : "";
      throw new ConnectError(`the server has its maximum of ${o.maxClients} clients${kept}`, Code.ResourceExhausted);
    }
    // A client that works on fewer scrapes at once than the server allows says so: the rest wait here for a place.
    const limits = hello.maxInFlight > 0 && hello.maxInFlight < o.maxScrapesInFlight ? { ...sessionLimits, maxScrapesInFlight: hello.maxInFlight } : sessionLimits;
    const session = createSession(info, negotiateFeatures(hello.features, o), limits, () => flights.room(session), metrics.lateFrames);
    listings.set(session, listWithRoom(info, once)); // throws ResourceExhausted when /clients would grow past its bound
    gone.forget(name); // back (only now that it is admitted): no longer listed as vanished
    byName.set(name, session);
    countLive(info.identity, 1);
    lastJoinAt = Date.now();
    hints.admitted();
    metrics.clients.set(byName.size);
    activity.emit("clientConnected", { ...session.info, scrapesInFlight: 0 });
    return session;
  }

  function listWithRoom(entry: DiscoveryEntry & { identity?: string }, once: { live: boolean }): () => void {
    const bytes = discoveryBytesOf(entry);
    for (;;) {
      try {
        return listing.add(entry);
      } catch (e) {
        if (!makeRoom(entry.identity, once, (freed) => listing.bytes - freed + bytes <= o.maxDiscoveryBytes)) throw e;
      }
    }
  }

  /**
   * Room for a newcomer of `identity`: a vanished record, else, once per newcomer and only if it makes the room
   * (`fits` the bytes it frees), the newest place of an identity beyond a fair share (src/server/fair-share.ts).
   */
  function makeRoom(identity: string | undefined, once: { live: boolean }, fits: (freedBytes: number) => boolean = () => true): boolean {
    if (gone.evictFor(identity)) return true;
    const victim = once.live ? undefined : fairShareVictim(byName.values(), liveBy, identity);
    if (!victim || !fits(discoveryBytesOf(victim.info))) return false;
    once.live = true;
    const reason = `the server is full: room made for a client of an identity holding fewer than "${victim.info.identity}" (${liveBy.get(victim.info.identity ?? "")} clients)`;
    log.warn("closing a client's stream: a full server is shared between identities", { client: victim.info.name, identity: victim.info.identity, for: identity });
    victim.close(new ConnectError(reason, Code.ResourceExhausted));
    leave(victim, { reason, broke: false });
    return true;
  }

  function leave(session: Session, end: { reason: string; broke: boolean }, keepWaiting = false) {
    if (!keepWaiting) flights.gone(session, { outcome: "disconnected", message: `client "${session.info.name}" disconnected while the scrape waited for a place: ${end.reason}` });
    const held = byName.get(session.info.name) === session;
    if (!held) return;
    byName.delete(session.info.name);
    countLive(session.info.identity, -1);
    listings.get(session)?.();
    listings.delete(session);
    metrics.clients.set(byName.size);
    if (!end.broke || phase !== "serving" || o.vanishedRetentionMs <= 0) {
      return activity.emit("clientDisconnected", { ...session.info, scrapesInFlight: 0 }, phase === "serving" ? end.reason : "the server is shutting down");
    }
    const { scrapesInFlight: _, ...info } = session.info;
    const vanished = { info, since: Date.now(), reason: end.reason };
    try {
      gone.add(vanished, listing.add({ ...info, connected: false }));
    } catch {
      // /clients is full: the vanished client is not listed
    }
    activity.emit("clientVanished", vanished);
  }

  // A scrape: find the client and what it serves; its life from the order on is src/server/flights.ts.
  function scrape(r: ScrapeRequest, sink: ScrapeSink): ScrapeHandle | ScrapeFailure {
    if (phase === "refusing" || phase === "closed") return { outcome: "shutting_down", message: "server is shutting down" };
    const session = byName.get(r.name);
    if (!session) {
      const v = gone.get(r.name);
      if (v) return { outcome: "vanished", message: `client "${r.name}" disconnected ${Math.round((Date.now() - v.since) / 1000)}s ago: ${v.reason}` };
      const none = `no client "${r.name.slice(0, 253)}" connected`;
      return r.warming ? { outcome: "warming_up", message: `${none} yet: this replica is warming up (clients are still finding it); retry shortly` } : { outcome: "unknown_client", message: none };
    }
    if (!session.serves(r.port, r.path)) {
      const path = JSON.stringify(r.path.split("?")[0]?.slice(0, 200));
      return { outcome: "not_found", message: `client "${r.name}" serves nothing at port ${r.port || "(none)"} path ${path}` };
    }
    return flights.start(r, sink, session);
  }

  async function shutdown({ drainDelayMs, graceMs }: { drainDelayMs: number; graceMs: number }) {
    if (phase !== "serving") return;
    phase = "draining";
    log.info("draining: not ready, still serving", { drainDelayMs, graceMs });
    await new Promise((r) => setTimeout(r, drainDelayMs));
    phase = "refusing";
    if (flights.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, graceMs);
        flights.onIdle = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    phase = "closed";
    clearInterval(heartbeat);
    gone.close();
    for (const s of [...byName.values()]) {
      flights.gone(s, { outcome: "shutting_down", message: "server is shutting down" });
      s.close(new ConnectError("the server is shutting down", Code.Unavailable));
    }
  }

  return {
    get phase() {
      return phase;
    },
    get ready() {
      if (phase !== "serving") return false;
      if (!warm) {
        const now = Date.now();
        const settled = now - startedAt >= o.warmupMs && now - lastJoinAt >= o.warmupSettleMs;
        warm = settled || now - startedAt >= o.warmupMaxMs;
      }
      return warm;
    },
    get inFlight() {
      return flights.inFlight;
    },
    admit,
    join,
    leave,
    scrape,
    discovery: () => ({ body: listing.body(), bytes: listing.bytes }),
    clients: () =>
      [...byName.values()].map((s) => ({ ...s.info, labels: { ...s.info.labels }, scrapesInFlight: s.inFlight })),
    holder: (name) => byName.get(name)?.info,
    vanished: () => gone.all(),
    shutdown,
  };
}
