/**
 * The client's streams to every replica: a small fleet of connection slots,
 * each a loop over single connection attempts (`connectOnce`).
 *
 * - Several endpoints (a list of URLs, or every address of a DNS name): one
 *   slot per endpoint, dialling only it.
 * - One endpoint (one address, typically a load balancer): slots that dial it
 *   again and again, each a NEW connection, until they hold a stream to every
 *   replica: `replicaCount` distinct replica ids when the welcome announces a
 *   count; otherwise the ids met (a lost one is searched for 10 minutes),
 *   plus probes for replicas not met yet (every `discoverIntervalMs`, doubling
 *   to 32 times that while they find nothing new); while one is missing, rounds
 *   are at most 10 s apart (src/client/discovery-schedule.ts). A stream landing
 *   on a replica held (refused with `AlreadyExists` naming it) is a step of the
 *   search; a refusal naming another replica, or none, a real name clash.
 * - A server that names no replica: one stream. Hellos list the replicas held.
 *
 * Servers are not trusted (src/client/fleet-limits.ts): at most `maxReplicas`
 * replicas are held through one address, at most 8 connections search at
 * once, and a welcome that claims a replica id already held ends the older
 * stream only when both were dialled through the same address: there the
 * server welcomes a second stream for our name only after its probe found the
 * first one dead. Through another address (a stale DNS entry, a rogue) the
 * claim proves nothing, and ending our stream to the real replica would delist
 * us there: both streams are kept, and a dead one ends by its own heartbeat.
 *
 * @internal
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Welcome } from "../../gen/promproxy/v1/scrape_pb.ts";
import { createBackoff, type BackoffOptions } from "./backoff.ts";
import { connectOnce, type ConnectionContext } from "./connection.ts";
import { createDiscoverySchedule } from "./discovery-schedule.ts";
import { createSearchRefusals } from "./search-refusal.ts";
import { watchEndpoints, type Endpoint, type Resolver } from "./endpoints.ts";
import { fleetLimits, maxSearchers, onceLog, sparseLog } from "./fleet-limits.ts";
import { sleep } from "../shared/sleep.ts";

/** One established stream, as the callbacks report it. */
export interface StreamInfo {
  sessionId: string;
  /** The replica holding the stream, as its welcome named it; "" from servers that predate replica ids. */
  replicaId: string;
  /** Where it was dialled: "host:port", or "host:port (address)". */
  server: string;
}

/** @internal */
export interface FleetOptions {
  /** What every connection attempt shares. */
  connection: Omit<ConnectionContext, "base" | "address" | "stopped" | "onWelcome">;
  urls: URL[];
  resolve: Resolver;
  resolveIntervalMs: number;
  discoverIntervalMs: number;
  backoff: BackoffOptions | undefined;
  discoveryBackoff: BackoffOptions | undefined;
  /** Aborted when the client stops: every stream says goodbye. */
  stopped: AbortSignal;
  onUp(info: StreamInfo): void;
  /** A welcomed stream ended; `byUs` when the fleet closed it itself (endpoint gone, replaced). */
  onDown(info: StreamInfo, error: ConnectError | undefined, byUs: boolean): void;
  /** An attempt failed before a welcome (not a duplicate). Returns true when the client is to stop. */
  onFailed(error: ConnectError): boolean;
}

/** Consecutive attempts without a welcome after which a slot searching without a replica count gives up. */
const searchAttempts = 8;
const discoveryDefaults: BackoffOptions = { initialMs: 100, maxMs: 2_000, multiplier: 2, jitter: 0.5 };

interface Slot {
  /** The endpoint a bound slot dials; free slots dial the single endpoint. */
  endpoint?: Endpoint;
  /** A one-off probe for a replica not met yet. */
  probe: boolean;
  /** The replica id of the stream it holds now ("" for a server without ids). */
  held?: string;
  /** The key of the endpoint that stream was dialled through. */
  via?: string;
  /** Retires the slot: its stream (if any) says goodbye, its loop ends. */
  cancel: AbortController;
  /** Ends the current attempt (its stream cleanly), the slot going on; set while one runs. */
  attempt?: AbortController;
}

/** Runs the fleet until `stopped` aborts; resolves once every stream has ended. @internal */
export function runFleet(o: FleetOptions): Promise<void> {
  const { log, name } = o.connection;
  const slots = new Set<Slot>();
  const running = new Set<Promise<void>>();
  let endpoints: Endpoint[] = [];
  /** The replica count the latest welcome announced; 0: unknown. */
  let count = 0;
  /** Whether any welcome named its replica (else: an older server, one stream). */
  let ids = false;
  const limits = fleetLimits(o.connection.options, (message) => log.error(message, { name }));
  const urgent = () => (count > 0 ? holding() < count : schedule.recentlyLost()); // a replica is missing
  const schedule = createDiscoverySchedule({ backoff: o.discoveryBackoff ?? discoveryDefaults, intervalMs: o.discoverIntervalMs, urgent, maxLost: limits.maxReplicas });
  const overCap = onceLog(log);
  /** The replica cap bites: said once. */
  const capped = (server: string | undefined) =>
    overCap(`holding streams to ${limits.maxReplicas} replicas through one address; no more are kept or searched for (option maxReplicas)`, { name, server });
  const duplicateClaim = sparseLog(log);
  const searchRefusal = createSearchRefusals(log, name);

  const live = (s: Slot) => !s.cancel.signal.aborted;
  const freeSlots = () => [...slots].filter((s) => !s.endpoint && live(s));
  /** The distinct replicas held. */
  const heldIds = () => new Set([...slots].flatMap((s) => (s.held === undefined ? [] : [s.held])));
  const holding = () => heldIds().size;
  /** Free slots that hold nothing: searching (or about to). */
  const searchers = (except?: Slot) => freeSlots().filter((s) => s !== except && s.held === undefined);

  function spawn(slot: Omit<Slot, "cancel">) {
    const s: Slot = { ...slot, cancel: new AbortController() };
    slots.add(s);
    const p = runSlot(s).finally(() => {
      slots.delete(s);
      running.delete(p);
    });
    running.add(p);
  }

  function setEndpoints(next: Endpoint[]) {
    endpoints = next;
    const keys = new Set(next.map((e) => e.key));
    for (const s of slots) {
      const stale = s.endpoint ? next.length === 1 || !keys.has(s.endpoint.key) : next.length > 1;
      if (stale && live(s)) {
        log.info("dropping a stream: its server address is gone", { name, server: s.endpoint?.display ?? "" });
        s.cancel.abort();
      }
    }
    reconcile();
  }

  /** Starts the slots that are missing. */
  function reconcile() {
    if (o.stopped.aborted) return;
    if (endpoints.length > 1) {
      const bound = new Set([...slots].filter(live).map((s) => s.endpoint?.key));
      for (const e of endpoints) if (!bound.has(e.key)) spawn({ endpoint: e, probe: false });
    } else if (endpoints.length === 1) {
      const want = wantedSearchers();
      if (count === 0 && freeSlots().length === 0) spawn({ probe: false });
      for (let n = searchers().length; n < want; n++) spawn({ probe: false });
      // Every replica found: the searchers left over stop at once.
      if (count > 0 && want === 0) for (const s of searchers()) if (!s.attempt) s.cancel.abort();
    }
  }

  /**
   * Through one address, with a count: while a replica is missing, `count`
   * searchers (at most 8): a round of `count` connections through a
   * round-robin balancer meets every replica. Without a count, one free slot
   * (more come from probes and stay while they hold a replica).
   */
  function wantedSearchers(): number {
    if (count === 0) return 0;
    return holding() >= count ? 0 : Math.min(count, maxSearchers);
  }

  /** A welcome on `slot`'s attempt: what it holds now, or undefined when the stream is closed again (over the cap). */
  function welcomed(slot: Slot, w: Welcome, endpoint: Endpoint): StreamInfo | undefined {
    const id = w.replicaId;
    const older = [...slots].filter((s) => s !== slot && live(s) && s.held === id);
    if (id && older.length === 0 && !slot.endpoint && holding() >= limits.maxReplicas) {
      capped(endpoint.display);
      slot.attempt?.abort(); // a goodbye: that server delists us at once
      return undefined;
    }
    if (w.replicaCount > limits.maxReplicas) capped(endpoint.display); // the count is believed up to the cap
    count = Math.min(w.replicaCount, limits.maxReplicas);
    slot.probe = false;
    slot.held = id;
    slot.via = endpoint.key;
    if (id) {
      ids = true;
      schedule.found(id);
      if (older.length === 0) schedule.changed(); // a new replica: searching and probing start fast again
      for (const s of older) {
        if (s.via === endpoint.key) {
          // Through the same address the server welcomes a second stream for our name only after its probe found
          // the first one dead: keep the new stream, end the old one (its session on the server is gone already).
          log.info("a new stream replaced ours to the same replica", { name, replica: id });
          s.attempt?.abort();
        } else {
          const servers = `${endpoint.display}, ${s.endpoint?.display ?? ""}`;
          duplicateClaim("two of the server's addresses claim the same replica id; keeping both streams", { name, replica: id, servers });
        }
      }
    }
    const info = { sessionId: w.sessionId, replicaId: id, server: endpoint.display };
    o.onUp(info);
    reconcile();
    return info;
  }

  /** One connection attempt of a slot; what became of it. */
  async function attemptOnce(slot: Slot, endpoint: Endpoint) {
    const attempt = new AbortController();
    slot.attempt = attempt;
    const onCancel = () => attempt.abort();
    slot.cancel.signal.addEventListener("abort", onCancel);
    let info: StreamInfo | undefined;
    let error: ConnectError | undefined;
    const seen = { welcomed: false };
    try {
      await connectOnce(
        { ...o.connection, hello: { ...o.connection.hello, heldReplicaIds: [...heldIds()] }, base: endpoint.url, address: endpoint.address, stopped: attempt.signal, onWelcome: (w) => (info = welcomed(slot, w, endpoint)) },
        seen,
      );
    } catch (e) {
      error = ConnectError.from(e);
    } finally {
      slot.cancel.signal.removeEventListener("abort", onCancel);
      slot.attempt = undefined;
    }
    const refused = seen.welcomed && !info; // welcomed, and closed again at once: over the cap
    if (info) {
      const id = slot.held;
      slot.held = slot.via = undefined;
      if (!o.stopped.aborted) o.onDown(info, error, attempt.signal.aborted);
      if (id === undefined || !heldIds().has(id)) schedule.lost(id);
      reconcile(); // a replica lost: searchers for it
      return { welcomed: true, duplicate: false, refused, error };
    }
    if (refused) return { welcomed: false, duplicate: false, refused, error: undefined };
    // AlreadyExists while holding a replica: a step of the search (or a name clash there, said sparsely).
    const duplicate = error?.code === Code.AlreadyExists && holding() > 0;
    if (duplicate && error) searchRefusal(error, heldIds(), endpoint.display);
    return { welcomed: false, duplicate, refused, error };
  }

  /** Whether a free slot whose attempt found nothing new should end. */
  function surplus(slot: Slot, misses: number, refused: boolean): boolean {
    if (slot.endpoint) return false;
    const others = freeSlots().filter((s) => s !== slot).length;
    if (others === 0) return false;
    if (refused) return true;
    if (count > 0) return searchers(slot).length >= wantedSearchers();
    return slot.probe || (misses >= searchAttempts && !urgent());
  }

  async function runSlot(slot: Slot) {
    const reconnect = createBackoff(o.backoff);
    let misses = 0, last: Headers | undefined; // last: the last attempt's error metadata (a retry hint there sets the next wait)
    /** Through one address with a replica held, finding another is a search: in rounds, with the other searchers. */
    const searching = () => !slot.endpoint && holding() > 0;
    let pause: "none" | "backoff" | "round" = searching() ? "round" : "none";
    const onStop = () => slot.cancel.abort();
    o.stopped.addEventListener("abort", onStop);
    if (o.stopped.aborted) slot.cancel.abort();
    try {
      while (live(slot)) {
        if (pause === "round") await schedule.nextRound(slot.cancel.signal);
        else if (pause === "backoff") await sleep(searching() ? schedule.cap(reconnect.next(last)) : reconnect.next(last), slot.cancel.signal);
        const endpoint = slot.endpoint ?? (endpoints.length === 1 ? endpoints[0] : undefined);
        if (!endpoint || !live(slot)) break;
        const r = await attemptOnce(slot, endpoint);
        last = r.error?.metadata;
        if (!live(slot)) break;
        if (r.welcomed) {
          misses = 0;
          reconnect.reset();
          pause = searching() ? "round" : "backoff";
        } else {
          misses++;
          if (!r.duplicate && r.error && o.onFailed(r.error)) break;
          if (surplus(slot, misses, r.refused)) break;
          // A duplicate through one address is a step of the search; through one of several addresses, a second
          // path to a replica held through another: retried as seldom as after any failure.
          pause = r.duplicate && searching() ? "round" : "backoff";
        }
      }
    } finally {
      o.stopped.removeEventListener("abort", onStop);
      slot.cancel.abort();
    }
  }

  // Without a count, probe for replicas not met yet (schedule: src/client/discovery-schedule.ts).
  schedule.probeEvery(() => {
    if (endpoints.length !== 1 || count > 0 || !ids || freeSlots().some((s) => s.held === undefined)) return;
    if (holding() < limits.maxReplicas) spawn({ probe: true });
    else capped(endpoints[0]?.display);
  }, o.stopped);

  const watch = { resolve: o.resolve, intervalMs: o.resolveIntervalMs, maxAddresses: limits.maxServerAddresses, log, stopped: o.stopped };
  watchEndpoints(o.urls, watch, setEndpoints);

  return new Promise<void>((resolve) => {
    const done = async () => {
      while (running.size > 0) await Promise.allSettled([...running]);
      resolve();
    };
    if (o.stopped.aborted) void done();
    else o.stopped.addEventListener("abort", () => void done(), { once: true });
  });
}
