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
 *   plus probes for replicas not met yet (every `probeIntervalMs`, doubling
 *   to 32 times that while they find nothing new); while one is missing, rounds
 *   are at most 10 s apart (src/client/search-schedule.ts). A stream landing
 *   on a replica held (refused with `AlreadyExists` naming it) is a step of the
 *   search; a refusal naming another replica, or none, a real name clash.
 * - A replica set announced (src/client/replica-target.ts): the replicas of the
 *   set assigned to the client, searched for at once when it changes, then at
 *   most 10 s apart while one is missing; streams to others closed. A refusal
 *   `Unavailable` naming a replica (it does not serve us) is a search step; a
 *   slot bound to it waits for a change (src/client/unassigned-wait.ts).
 * - A server that names no replica: one stream. Hellos list the replicas held.
 * Servers are not trusted (src/client/fleet-limits.ts): at most `maxReplicas`
 * streams through one address whatever their ids (a welcome naming no replica
 * is one stream, whatever count it claims), 8 connections searching at once; a
 * welcome claiming a replica already held ends the older stream only through
 * the same address (its probe found the first dead); through another (a stale
 * DNS entry, a rogue) both are kept, a dead one ending by its own heartbeat.
 * A refusal retrying cannot fix stops the client only when every endpoint
 * refused so before any welcome (src/client/fatal-refusal.ts).
 * @internal
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Welcome } from "../../gen/promproxy/v1/scrape_pb.ts";
import { createBackoff } from "./backoff.ts";
import { connectOnce } from "./connection.ts";
import { createSearchSchedule, missingRoundMs } from "./search-schedule.ts";
import { replicaIdKey } from "../shared/replica-header.ts";
import { createNotServedWarning, createSearchRefusals, notServedHere, notServedTriesFor } from "./search-refusal.ts";
import { assigns, createReplicaTarget } from "./replica-target.ts";
import type { ReplicaSet } from "./replica-set.ts";
import { createUnassignedWaits, mayRedial, unassignedBy } from "./unassigned-wait.ts";
import { createWelcomePatience } from "./welcome-patience.ts";
import { watchEndpoints, type Endpoint } from "./endpoints.ts";
import type { Slot } from "./fleet-slot.ts";
import { createSurplus } from "./fleet-surplus.ts";
import { onceLog, sparseLog } from "./fleet-limits.ts";
import type { StreamInfo } from "./options.ts";
import type { FleetOptions } from "./fleet-options.ts";
import { settledAfter } from "../shared/settled-after.ts";
import { createFatalRefusals, notPromproxy } from "./fatal-refusal.ts";
import { sleep } from "../shared/sleep.ts";
import { createFaultBackoff } from "./fault-backoff.ts";

/** Runs the fleet until `stopped` aborts; resolves once every stream has ended. @internal */
export function runFleet(o: FleetOptions): Promise<void> {
  const options = o.connection.options;
  const { log, name } = options;
  const slots = new Set<Slot>();
  const running = new Set<Promise<void>>();
  let endpoints: Endpoint[] = [];
  /** Whether any welcome named its replica (else: a server that names none, one stream). */
  let ids = false;
  const limits = { maxReplicas: options.maxReplicas, maxServerAddresses: options.maxServerAddresses };
  const target = createReplicaTarget(name, limits.maxReplicas);
  const urgent = () => (target.known ? target.missing(heldIds()) : schedule.recentlyLost()); // a replica is missing
  const schedule = createSearchSchedule({ backoff: options.searchBackoff, intervalMs: options.probeIntervalMs, urgent, maxLost: limits.maxReplicas });
  const [overCap, countOverCap] = [onceLog(log), onceLog(log)]; // the replica cap bites: each way said once
  const capped = (server?: string) => overCap(`holding streams to ${limits.maxReplicas} replicas through one address; no more are kept or searched for (option maxReplicas)`, { name, server });
  const countCapped = (count: number, server: string) => countOverCap(`a server announced ${count} replicas (replica_count): believing at most ${limits.maxReplicas} (option maxReplicas)`, { name, server });
  const [duplicateClaim, notInSet] = [sparseLog(log), sparseLog(log)];
  const [replaced, unassigned] = [sparseLog(log, 60_000, "info"), sparseLog(log, 60_000, "info")]; // per stream: "closed a stream" (client.ts)
  const [searchRefusal, notServedAnywhere] = [createSearchRefusals(log, name), createNotServedWarning(log, name)];
  const welcomePatience = createWelcomePatience(options); // one wait for a welcome over all of the client's streams
  const fatal = createFatalRefusals(); // the endpoints whose last attempt was refused for good
  const waits = createUnassignedWaits({ mayRedial: (id) => mayRedial(id, target.ids, target.wanted, holding()) });
  const faults = createFaultBackoff({ backoff: options.backoff, log, name }); // a budget cut, client-wide: the next dials wait (src/client/fault-backoff.ts)

  const live = (s: Slot) => !s.cancel.signal.aborted;
  const freeSlots = () => [...slots].filter((s) => !s.endpoint && live(s));
  /** The distinct replicas held. */
  const heldIds = () => new Set([...slots].flatMap((s) => (s.held === undefined ? [] : [s.held])));
  const holding = () => heldIds().size;
  /** The streams through one address that stay held if `slot` is welcomed now (an older one to its replica there is replaced). */
  const kept = (slot: Slot, older: Slot[], endpoint: Endpoint) =>
    [...slots].filter((s) => s !== slot && live(s) && !s.endpoint && s.held !== undefined && !(older.includes(s) && s.via === endpoint.key)).length;
  /** Free slots that hold nothing: searching (or about to). */
  const searchers = (except?: Slot) => freeSlots().filter((s) => s !== except && s.held === undefined);
  const { surplus, spare } = createSurplus({ freeSlots, searchers, heldIds, urgent, target });

  function spawn(slot: Omit<Slot, "cancel">) {
    const s: Slot = { ...slot, cancel: new AbortController() };
    slots.add(s);
    const p = runSlot(s).finally(() => void (slots.delete(s), running.delete(p)));
    running.add(p);
  }

  function setEndpoints(next: Endpoint[]) {
    endpoints = next;
    const keys = new Set(next.map((e) => e.key));
    fatal.keepOnly(keys);
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
      const want = target.searchers(heldIds());
      if (!target.known && freeSlots().length === 0) spawn({ probe: false });
      for (let n = searchers().length; n < want; n++) spawn({ probe: false });
      // Every replica found: the searchers left over stop at once.
      if (target.known && want === 0) for (const s of searchers()) if (!s.attempt) s.cancel.abort();
    }
  }

  /**
   * A set arrived (on `from`'s stream, for a frame). Each stream is governed by its own replica's set only: the
   * stream it came on is closed when that set no longer gives its replica to this client (the replica left, or
   * K of N moved the client). A set from one replica never closes the stream to another, so a rogue or a
   * replica with a stale view cannot cut the client off the others; it only steers the search. Changed: ghosts
   * outside it are forgotten and the search starts.
   */
  function follow(set: ReplicaSet | undefined, changed: boolean, from?: Slot) {
    if (!set) return;
    if (from && live(from) && from.held && !assigns(name, set, from.held)) {
      unassigned("closing a stream: its replica's own replica set no longer gives it this client", { name, replica: from.held });
      if (from.endpoint) from.unassigned = from.held; // its address: dialled again once the set changes
      from.attempt?.abort(); // a goodbye; a free slot searches on as after any ended stream
    }
    waits.changed();
    if (!changed) return;
    schedule.keepOnly(target.wanted ?? new Set());
    schedule.changed(true);
    reconcile();
  }

  /** A welcome on `slot`'s attempt: what it holds now, or undefined when the stream is closed again (over the cap). */
  function welcomed(slot: Slot, w: Welcome, set: ReplicaSet | undefined, endpoint: Endpoint): StreamInfo | undefined {
    const id = w.replicaId;
    const older = [...slots].filter((s) => s !== slot && live(s) && s.held === id);
    // A welcome naming no replica says nothing of the others (an older server: one stream), whatever count it claims.
    if (id && w.replicaCount > limits.maxReplicas) countCapped(w.replicaCount, endpoint.display); // believed up to the cap
    // A replica whose own set does not give it this client should have refused the hello: closed, its set not believed.
    const outside = set !== undefined && !assigns(name, set, id);
    const changed = outside || !id ? false : target.welcome(w.replicaCount, set, id); // followed once this stream counts as held (or closed)
    // Over the cap (streams through one address, whatever their ids; a second one naming no replica), or outside
    // its own set: a goodbye, delisted there at once.
    const full = !slot.endpoint && kept(slot, older, endpoint) >= limits.maxReplicas;
    const second = !slot.endpoint && !id && older.length > 0; // closed quietly: one stream to a server naming no replica
    if (full || second || outside) {
      if (outside) notInSet("a replica outside the replica set (or not one this client holds) welcomed us; closing that stream", { name, replica: id, server: endpoint.display });
      else if (full) capped(endpoint.display);
      slot.attempt?.abort();
      follow(set, changed);
      return undefined;
    }
    Object.assign(slot, { probe: false, held: id, via: endpoint.key });
    follow(set, changed);
    if (id) {
      ids = true;
      schedule.found(id);
      if (older.length === 0) schedule.foundNew(); // a new replica: searching and probing start fast again
      for (const s of older) {
        if (s.via === endpoint.key) {
          if (s.attempt?.signal.aborted) continue; // replaced already, its goodbye under way
          // Through the same address the server welcomes a second stream for our name only after its probe found
          // the first one dead: keep the new stream, end the old one (its session on the server is gone already).
          replaced("a new stream replaced ours to the same replica", { name, replica: id });
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
    [slot.attempt, slot.unassigned] = [attempt, undefined];
    const onCancel = () => attempt.abort();
    slot.cancel.signal.addEventListener("abort", onCancel);
    let info: StreamInfo | undefined, error: ConnectError | undefined;
    const seen: { welcomed: boolean; welcomedAt?: number } = { welcomed: false };
    faults.started(seen);
    try {
      await connectOnce(
        { ...o.connection, welcomePatience, hello: { ...o.connection.hello, heldReplicaIds: [...heldIds()] }, base: endpoint.url, address: endpoint.address, stopped: attempt.signal, onWelcome: (w, set) => (info = welcomed(slot, w, set, endpoint)), onReplicaSet: (set) => follow(set, target.follow(set, slot.held ?? ""), slot) },
        seen,
      );
    } catch (e) {
      error = notPromproxy(ConnectError.from(e), endpoint.url, endpoint.display); // an HTTP 401 from an auth proxy is no refusal
    } finally {
      slot.cancel.signal.removeEventListener("abort", onCancel);
      slot.attempt = undefined;
    }
    const stable = faults.ended(seen, error); // lived stableStreamMs, not cut for a fault: the slot's backoff starts over
    const refused = seen.welcomed && !info; // welcomed, and closed again at once: over the cap
    if (info) {
      const id = slot.held;
      slot.held = slot.via = undefined;
      if (!o.stopped.aborted) o.onDown(info, error, attempt.signal.aborted);
      if (id === undefined || !heldIds().has(id)) schedule.lost(id, stable);
      waits.changed(); // holding none: slots waiting for a set dial again
      reconcile(); // a replica lost: searchers for it
      return { welcomed: true, stable, duplicate: false, refused, error, held: id };
    }
    if (refused) return { welcomed: false, stable: false, duplicate: false, refused, error: undefined };
    // AlreadyExists while holding a replica: a step of the search (or a name clash there, said sparsely); so is a
    // replica that does not serve this client (another one of the set does).
    const duplicate = notServedHere(error) || (error?.code === Code.AlreadyExists && holding() > 0);
    if (duplicate && error) searchRefusal(error, heldIds(), endpoint.display);
    return { welcomed: false, stable: false, duplicate, refused, error };
  }

  async function runSlot(slot: Slot) {
    const reconnect = createBackoff(options.backoff);
    let misses = 0, last: Headers | undefined; // last: the last attempt's error metadata (a retry hint there sets the next wait)
    let notServed = 0; // refusals "not served here" in a row while holding none
    const refusedBy = new Set<string>(); // the distinct replicas that said so (up to maxReplicas)
    /** Through one address with a replica held, finding another is a search: in rounds, with the other searchers. */
    const searching = () => !slot.endpoint && holding() > 0;
    let pause: "none" | "backoff" | "round" | "longest" = searching() ? "round" : "none";
    const onStop = () => slot.cancel.abort();
    o.stopped.addEventListener("abort", onStop);
    if (o.stopped.aborted) slot.cancel.abort();
    try {
      while (live(slot)) {
        if (await waits.park(slot.unassigned, slot.cancel.signal)) slot.unassigned = undefined; // waited for a change: dial now
        else if (pause === "round") await schedule.nextRound(slot.cancel.signal);
        else if (pause === "longest") await sleep(options.backoff.maxMs, slot.cancel.signal);
        // Past the prompt retries of "not served here", the one that serves us may be behind the same address: 10 s apart at most.
        else if (pause === "backoff") await sleep(searching() ? schedule.cap(reconnect.next(last)) : notServed > 0 ? Math.min(reconnect.next(last), missingRoundMs) : reconnect.next(last), slot.cancel.signal);
        await faults.gate(slot.cancel.signal); // after a server's fault: the client's dials one at a time, backed off
        const endpoint = slot.endpoint ?? (endpoints.length === 1 ? endpoints[0] : undefined);
        if (!endpoint || !live(slot)) break;
        const r = await attemptOnce(slot, endpoint);
        last = r.error?.metadata;
        fatal.note(endpoint.key, r.welcomed ? undefined : r.error);
        if (!live(slot)) break;
        if (r.welcomed) {
          misses = notServed = 0;
          refusedBy.clear();
          // Only a stream that lived (stableStreamMs) starts the backoff over; one welcomed and ended soon after is a
          // failed attempt, so a server that welcomes and resets every stream is not redialled every half second.
          if (r.stable) reconnect.reset();
          if (spare(slot, r.held)) break;
          pause = searching() ? "round" : "backoff";
        } else {
          misses++;
          if (slot.endpoint) slot.unassigned = unassignedBy(r.error);
          // Holding none, "not served here" is a step of the search (the next attempt soon) a few times in a row; then a
          // failure like any other, backed off: a server refusing every hello so is not redialled twice a second.
          notServed = r.duplicate && !searching() && !slot.endpoint ? notServed + 1 : 0;
          if (notServed > 0 && refusedBy.size < limits.maxReplicas) refusedBy.add(r.error?.metadata.get(replicaIdKey) ?? "");
          const failed = r.error !== undefined && (!r.duplicate || notServed > notServedTriesFor(refusedBy.size));
          if (failed && notServed > 0) notServedAnywhere(r.error!, endpoint.display);
          const where = { server: endpoint.display, several: endpoints.length > 1, everywhere: fatal.everywhere(endpoints.map((e) => e.key)) };
          const verdict = failed ? o.onFailed(r.error!, where) : "retry";
          if (verdict === "stop") break;
          if (surplus(slot, misses, r.refused)) break;
          // A duplicate through one address is a step of the search; through one of several addresses, a second
          // path to a replica held through another: retried as seldom as after any failure.
          if (notServed > 0 && !failed) reconnect.reset();
          pause = verdict === "hold" ? "longest" : r.duplicate && searching() ? "round" : "backoff";
        }
      }
    } finally {
      o.stopped.removeEventListener("abort", onStop);
      slot.cancel.abort();
    }
  }

  // Without a count, probe for replicas not met yet (schedule: src/client/search-schedule.ts).
  schedule.probeEvery(() => {
    if (endpoints.length !== 1 || target.known || !ids || freeSlots().some((s) => s.held === undefined)) return;
    if (holding() < limits.maxReplicas) spawn({ probe: true });
    else capped(endpoints[0]?.display);
  }, o.stopped);

  const watch = { resolve: options.resolve, intervalMs: options.resolveIntervalMs, maxAddresses: limits.maxServerAddresses, log, stopped: o.stopped };
  watchEndpoints(options.urls, watch, setEndpoints);

  return settledAfter(o.stopped, running);
}
