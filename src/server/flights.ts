/**
 * One scrape's life once its client is found: the order (its timeout trimmed
 * so that the client's own error wins the race with the deadline), the
 * deadline, the end exactly once, and a wait for a place when the client's
 * places are all taken.
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
 * @internal
 */
import type { ServerMetrics } from "./metrics.ts";
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
  /** Called whenever the last scrape in flight ends. */
  onIdle?: () => void;
}

interface Waiter {
  /** Orders the scrape if the session has a place; whether it did. */
  take(): boolean;
  fail(failure: ScrapeFailure): void;
}

export function createFlights(o: { maxScrapesInFlight: number; maxScrapesWaiting: number }, metrics: ServerMetrics): Flights {
  /** Waiting scrapes per session, in order of arrival (a Set keeps insertion order). */
  const queues = new Map<Session, Set<Waiter>>();
  let inFlight = 0;
  let waiting = 0;
  let recheck: NodeJS.Timeout | undefined;

  const unqueue = (session: Session, w: Waiter) => {
    const q = queues.get(session);
    if (!q?.delete(w)) return;
    waiting--;
    metrics.waiting.dec();
    if (q.size === 0) queues.delete(session);
    if (queues.size === 0) recheck = void clearInterval(recheck);
  };
  const enqueue = (session: Session, w: Waiter) => {
    let q = queues.get(session);
    if (!q) queues.set(session, (q = new Set()));
    q.add(w);
    waiting++;
    metrics.waiting.inc();
    recheck ??= setInterval(() => {
      for (const s of [...queues.keys()]) room(s);
    }, recheckMs).unref();
  };
  function room(session: Session) {
    const q = queues.get(session);
    if (!q) return;
    for (const w of q) {
      if (!w.take()) return;
      unqueue(session, w);
    }
  }

  function start(r: ScrapeRequest, sink: ScrapeSink, session: Session): ScrapeHandle | ScrapeFailure {
    const acceptedAt = Date.now();
    const timedOut = () => `scrape of "${r.name}" timed out after ${+(r.timeoutMs / 1000).toFixed(3)}s`;
    const busy = (extra = "") => {
      const held = session.givenUp > 0 ? ` (${session.givenUp} given up on, their cancels not yet read by the client)` : "";
      return { outcome: "busy" as const, message: `client "${r.name}" has ${o.maxScrapesInFlight} scrapes in flight${held}, the maximum${extra}` };
    };
    let handle: ScrapeHandle | undefined;
    let waiter: Waiter | undefined;
    let timer: NodeJS.Timeout | undefined;
    let orderedAt = acceptedAt;
    let orderTimeoutMs = 0;
    let over = false;
    const end = (failure: ScrapeFailure | undefined, tell: boolean) => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      if (waiter) unqueue(session, waiter);
      inFlight--;
      metrics.inFlight.dec();
      if (inFlight === 0) flights.onIdle?.();
      // The client gives up a little early: its timeout near the deadline is the deadline's; one well before, its own.
      const nearDeadline = failure?.outcome === "timeout" && !failure.message.startsWith(timedOut()) && Date.now() - orderedAt >= orderTimeoutMs - 100;
      if (nearDeadline) failure = { ...failure!, message: `${timedOut()}: ${failure!.message}` };
      if (tell) sink.onEnd(failure);
      if (handle) room(session); // its place may be free now (a cancelled one's stays held until the client read the cancel)
    };
    const order = (): boolean => {
      // Ask the client to finish a little before the deadline, so that its own error wins the race.
      orderedAt = Date.now();
      const left = r.timeoutMs - (orderedAt - acceptedAt);
      orderTimeoutMs = Math.max(1, left - Math.min(500, left * 0.1));
      // Exporters that honour Prometheus' timeout header (blackbox, snmp) get the time the client really has.
      const headers = r.headers.map((h) => (h.name === "x-prometheus-scrape-timeout-seconds" ? { ...h, value: String(orderTimeoutMs / 1000) } : h));
      handle = session.scrape({ ...r, headers, timeoutMs: orderTimeoutMs }, { onHead: sink.onHead, onChunk: sink.onChunk, onEnd: (f) => end(f, true) });
      if (!handle) return false;
      clearTimeout(timer);
      timer = setTimeout(() => {
        handle!.cancel("deadline exceeded");
        end({ outcome: "timeout", message: timedOut() }, true);
      }, left);
      return true;
    };

    if (!order()) {
      const q = queues.get(session);
      if (o.maxScrapesWaiting === 0 || (q?.size ?? 0) >= o.maxScrapesWaiting) return busy(o.maxScrapesWaiting > 0 ? `, and ${o.maxScrapesWaiting} more wait for a place` : "");
      const waitMs = r.timeoutMs / 2;
      const w: Waiter = {
        take() {
          // Looked at every recheck while places are taken: no order is built until one is free.
          if (session.inFlight + session.givenUp >= o.maxScrapesInFlight || !order()) return false;
          waiter = undefined; // placed: the queue lets it go (room), its end has nothing to unqueue
          return true;
        },
        fail: (f) => end(f, true),
      };
      waiter = w;
      enqueue(session, w);
      timer = setTimeout(() => end(busy(`; none came free within ${+(waitMs / 1000).toFixed(3)}s (half the scrape's timeout)`), true), waitMs);
    }
    inFlight++;
    metrics.inFlight.inc();
    return {
      get id() {
        return handle?.id ?? 0n;
      },
      grant(bytes) {
        handle?.grant(bytes);
      },
      cancel(reason) {
        handle?.cancel(reason);
        end(undefined, false);
      },
    };
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
  };
  return flights;
}
