/**
 * One scrape's life once its client is found: the order (its timeout trimmed
 * so that the client's own error wins the race with the deadline), the
 * deadline, the end exactly once, and a wait for a place when the client's places are all taken.
 *
 * The wait: a scrape that finds `maxScrapesInFlight` places taken waits for
 * one, in order of arrival, at most `maxScrapesWaiting` per client and at
 * most half its timeout (the answer must reach Prometheus before Prometheus
 * gives up); then it is answered `busy`. A scrape whose Prometheus hangs up
 * leaves the wait at once, so requests that hang up after a few milliseconds
 * cannot keep a patient one from the next place. Places free when a scrape
 * ends, and when the client shows it read a cancel (src/server/given-up.ts):
 * the session calls {@link Flights.room}; a timer looks again every
 * `recheckMs` for places whose hold ran out on its own.
 *
 * A place held by an answer nobody reads yields to another address's scrape that finds none, also one the client
 * answered busy (src/server/stalled-places.ts): the stalled one is cancelled, the asker goes first for its place.
 *
 * @internal
 */
import type { Logger } from "../shared/logger.ts";
import { createRefusalLog } from "../shared/refusal-log.ts";
import type { ServerMetrics } from "./metrics.ts";
import { pickStalled } from "./stalled-places.ts";
import type { ScrapeFailure, ScrapeHandle, ScrapeSink } from "./scrape-types.ts";
import type { ScrapeRequest } from "./coordinator.ts";
import type { Session } from "./session.ts";

/** How often waiting scrapes look for a place freed by time alone (a given-up place's hold running out). */
const recheckMs = 100;

/** @internal */
export interface Flights {
  /** Scrapes accepted and not ended: ordered or waiting for a place. */
  readonly inFlight: number;
  /** Scrapes waiting for a place, over every client. */
  readonly waiting: number;
  /** Orders the scrape, or queues it for a place; a failure at once when neither can be. */
  start(r: ScrapeRequest, sink: ScrapeSink, session: Session): ScrapeHandle | ScrapeFailure;
  /** A place may have freed on this session: waiting scrapes take places in order. */
  room(session: Session): void;
  /** The session's stream ended: its waiting scrapes fail with `failure`. */
  gone(session: Session, failure: ScrapeFailure): void;
  /** A new stream replaced `from` for the same client: its waiting scrapes wait for the new one's places, in order. */
  moved(from: Session, to: Session): void;
  /** Called whenever the last scrape in flight ends. */
  onIdle?: () => void;
}

const timedOut = (r: ScrapeRequest) => `scrape of "${r.name}" timed out after ${+(r.timeoutMs / 1000).toFixed(3)}s`;

function busy(o: { maxScrapesInFlight: number }, r: ScrapeRequest, session: Session, extra: string): ScrapeFailure {
  const held = session.givenUp > 0 ? ` (${session.givenUp} given up on, their cancels not yet read by the client)` : "";
  const most = session.maxInFlight < o.maxScrapesInFlight ? "the most it said it works on at once" : "the maximum";
  return { outcome: "busy", message: `client "${r.name}" has ${session.maxInFlight} scrapes in flight${held}, ${most}${extra}` };
}

interface Waiter {
  /** Not before this time (ms): a scrape the client answered busy waits for the cancel it caused to be read. */
  notBefore?: number;
  /** Orders the scrape if the session has a place; whether it did. */
  take(): boolean;
  fail(failure: ScrapeFailure): void;
  /** Waits on `to` from now on (a stream that replaced its session). */
  move(to: Session): void;
}

export function createFlights(o: { maxScrapesInFlight: number; maxScrapesWaiting: number; stalledAnswerMs?: number; logger?: Logger }, metrics: ServerMetrics): Flights {
  /** Waiting scrapes per session, in order of arrival (a Set keeps insertion order). */
  const queues = new Map<Session, Set<Waiter>>();
  /** Ordered scrapes per session: those a stalled answer's place may be taken from (kept empty: no new Set per scrape). */
  const placed = new WeakMap<Session, Set<Flight>>();
  const yields = o.logger && createRefusalLog(o.logger);
  let inFlight = 0;
  let waiting = 0;
  /**
   * Sessions with scrapes waiting while places are held for scrapes given up
   * on: such a place also frees by time alone, so they are looked at every
   * `recheckMs`. Any other place frees with an end, which calls room().
   */
  const rechecks = new Set<Session>();
  let recheck: NodeJS.Timeout | undefined;

  const unqueue = (session: Session, w: Waiter) => {
    const q = queues.get(session);
    if (!q?.delete(w)) return;
    waiting--;
    metrics.waiting.dec();
    if (q.size > 0) return;
    queues.delete(session);
    watch(session);
  };
  const enqueue = (session: Session, w: Waiter, first = false) => {
    let q = queues.get(session);
    if (!q) queues.set(session, (q = new Set()));
    if (first) queues.set(session, (q = new Set([w, ...q])));
    else q.add(w);
    waiting++;
    metrics.waiting.inc();
    watch(session);
  };
  /** Recheck the session while it has scrapes waiting and places held for scrapes given up on. */
  function watch(session: Session) {
    if (queues.has(session) && session.givenUp > 0) rechecks.add(session);
    else rechecks.delete(session);
    if (rechecks.size === 0) recheck = void clearInterval(recheck);
    else
      recheck ??= setInterval(() => {
        for (const s of [...rechecks]) room(s);
      }, recheckMs).unref();
  }
  function room(session: Session) {
    const q = queues.get(session);
    if (!q) return;
    for (const w of q) {
      if (!w.take()) break;
      unqueue(session, w);
    }
    watch(session);
  }

  /** One scrape from its acceptance: ordered at once, or waiting for a place first. Its end is said exactly once. */
  class Flight implements ScrapeHandle, ScrapeSink {
    id = 0n;
    readonly acceptedAt = Date.now();
    orderedAt = this.acceptedAt;
    orderTimeoutMs = 0;
    handle: ScrapeHandle | undefined;
    waiter: Waiter | undefined;
    /** Its session's placed scrapes, while it is one of them; times it waited again (waitAgain). */
    placedOn: Set<Flight> | undefined;
    again = 0;
    timer: NodeJS.Timeout | undefined;
    over = false;
    readonly r: ScrapeRequest;
    readonly sink: ScrapeSink;
    /** Its client's stream; a waiting scrape moves to the stream that replaces it (Flights.moved). */
    session: Session;
    constructor(r: ScrapeRequest, sink: ScrapeSink, session: Session) {
      this.r = r;
      this.sink = sink;
      this.session = session;
    }

    /** Orders the scrape if the session has a place (with the time left, a little less: the client's own error then wins the race). */
    order(): boolean {
      const { r } = this;
      this.orderedAt = Date.now();
      const left = r.timeoutMs - (this.orderedAt - this.acceptedAt);
      const timeoutMs = (this.orderTimeoutMs = Math.max(1, left - Math.min(500, left * 0.1)));
      // Exporters that honour Prometheus' timeout header (blackbox, snmp) get the time the client really has.
      const headers = r.headers.map((h) => (h.name === "x-prometheus-scrape-timeout-seconds" ? { ...h, value: String(timeoutMs / 1000) } : h));
      const { method, port, path, scheme, creditBytes } = r; // the order's fields alone, not a spread of the whole request
      const handle = (this.handle = this.session.scrape({ method, port, path, scheme, headers, timeoutMs, creditBytes }, this));
      if (!handle) return false;
      this.id = handle.id;
      let p = placed.get(this.session);
      if (!p) placed.set(this.session, (p = new Set()));
      p.add(this);
      this.placedOn = p;
      clearTimeout(this.timer);
      this.timer = setTimeout(deadline, left, this);
      return true;
    }
    end(failure: ScrapeFailure | undefined, tell: boolean) {
      if (this.over) return;
      this.over = true;
      clearTimeout(this.timer);
      if (this.waiter) unqueue(this.session, this.waiter);
      this.unplace();
      inFlight--;
      metrics.inFlight.dec();
      if (inFlight === 0) flights.onIdle?.();
      // The client gives up a little early: its timeout near the deadline is the deadline's; one well before, its own.
      if (failure?.outcome === "timeout" && !failure.message.startsWith(timedOut(this.r)) && Date.now() - this.orderedAt >= this.orderTimeoutMs - 100) {
        failure = { ...failure, message: `${timedOut(this.r)}: ${failure.message}` };
      }
      if (tell) this.sink.onEnd(failure);
      if (this.handle) room(this.session); // its place may be free now (a cancelled one's stays held until the client read the cancel)
    }
    // The session's sink: the head and chunks go straight through, the end through end().
    onHead(h: Parameters<ScrapeSink["onHead"]>[0]) {
      this.sink.onHead(h);
    }
    onChunk(data: Uint8Array) {
      this.sink.onChunk(data);
    }
    onEnd(failure?: ScrapeFailure) {
      // The client's own busy (its target's places taken): a stalled answer of that target may yield its place.
      if (failure?.outcome === "busy" && this.waitAgain()) return;
      this.end(failure, true);
    }
    stalledMs() {
      return this.sink.stalledMs?.() ?? 0;
    }
    unplace() {
      this.placedOn?.delete(this);
      this.placedOn = undefined;
    }
    /** Waits first in line again, once the cancel of a stalled answer it took the place of has been read; whether it does. */
    waitAgain(): boolean {
      const left = this.acceptedAt + this.r.timeoutMs / 2 - Date.now();
      if (this.again >= 3 || left <= 0 || (this.again === 0 && !yieldTo(this, true))) return false;
      this.again++;
      this.unplace();
      this.handle = undefined;
      clearTimeout(this.timer);
      const w = (this.waiter = waiterOf(this));
      w.notBefore = Date.now() + 50 * 2 ** this.again; // the client frees the target's place once the cancelled work has ended
      enqueue(this.session, w, true);
      setTimeout(() => room(this.session), 50 * 2 ** this.again + 10).unref();
      this.timer = setTimeout(() => this.end(busy(o, this.r, this.session, `; a stalled answer's place did not come free within ${+(left / 1000).toPrecision(3)}s`), true), left);
      return true;
    }
    // The front's grip.
    grant(bytes: number) {
      this.handle?.grant(bytes);
    }
    cancel(reason: string) {
      this.handle?.cancel(reason);
      this.end(undefined, false);
    }
  }
  /** Cancels the placed scrape of `f`'s client that yields to it (stalled-places.ts); whether one did. */
  function yieldTo(f: Flight, sameTarget: boolean): boolean {
    const v = pickStalled(placed.get(f.session) ?? [], f.r, sameTarget, o.stalledAnswerMs ?? 5_000);
    if (!v) return false;
    const message = `its answer took nothing for ${Math.round(v.stalledMs() / 1000)}s while a scrape from another address found no place`;
    yields?.refused(`scrape of "${v.r.name}" cancelled, its place given up: ${message}`, { remote: v.r.remote, for: f.r.remote, stalledAnswerMs: o.stalledAnswerMs });
    v.handle!.cancel(message);
    v.end({ outcome: "cancelled", message: `scrape of "${v.r.name}" cancelled: ${message}` }, true);
    return true;
  }
  const waiterOf = (f: Flight): Waiter => {
    const w: Waiter = {
      take() {
        // Looked at every recheck while places are taken: no order is built until one is free.
        const s = f.session;
        if ((w.notBefore ?? 0) > Date.now() || s.inFlight + s.givenUp >= s.maxInFlight || !f.order()) return false;
        f.waiter = undefined; // placed: the queue lets it go (room), its end has nothing to unqueue
        return true;
      },
      fail: (failure) => f.end(failure, true),
      move: (to) => void (f.session = to),
    };
    return w;
  };
  const deadline = (f: Flight) => {
    f.handle!.cancel("deadline exceeded");
    f.end({ outcome: "timeout", message: timedOut(f.r) }, true);
  };

  function start(r: ScrapeRequest, sink: ScrapeSink, session: Session): ScrapeHandle | ScrapeFailure {
    const f = new Flight(r, sink, session);
    // Scrapes waiting go first (a place freed by time alone may not have been seen yet): a new one queues behind them.
    if (queues.has(session)) room(session);
    if (queues.has(session) || !f.order()) {
      const q = queues.get(session);
      // A stalled answer's place goes to it, first in line (freed once the client read the cancel); noWait: only that.
      const first = o.maxScrapesWaiting > 0 && yieldTo(f, false);
      if ((r.noWait && !first) || o.maxScrapesWaiting === 0) return busy(o, r, session, "");
      if (!first && (q?.size ?? 0) >= o.maxScrapesWaiting) return busy(o, r, session, `, and ${o.maxScrapesWaiting} more wait for a place`);
      const waitMs = r.timeoutMs / 2;
      const w = (f.waiter = waiterOf(f));
      enqueue(session, w, first);
      f.timer = setTimeout(() => f.end(busy(o, r, f.session, `; none came free within ${+(waitMs / 1000).toPrecision(3)}s (half the scrape's timeout)`), true), waitMs);
    }
    inFlight++;
    metrics.inFlight.inc();
    return f;
  }

  const flights: Flights = {
    get inFlight() {
      return inFlight;
    },
    get waiting() {
      return waiting;
    },
    start,
    room,
    gone(session, failure) {
      const q = queues.get(session);
      if (q) for (const w of [...q]) w.fail(failure);
    },
    moved(from, to) {
      const q = queues.get(from);
      if (!q) return;
      queues.delete(from);
      watch(from);
      const into = queues.get(to);
      if (into) for (const w of q) into.add(w);
      else queues.set(to, q);
      for (const w of q) w.move(to);
      room(to);
    },
  };
  return flights;
}
