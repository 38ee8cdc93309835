/**
 * Places held by answers nobody reads: which one a scrape that finds no place
 * may take. An answer whose Prometheus has taken nothing of it for
 * `stalledMs` (server option `stalledAnswerMs`; its connection's buffers full: a scraper that asks a
 * large target and reads nothing) yields its place to a scrape of the same
 * client that finds none, when the asker's address holds fewer of the
 * client's places than the stalled one's. So 16 connections of one address
 * that ask a 20 MB target and read nothing no longer lock legitimate
 * Prometheus out (an outside review: 64 of 64 scrapes answered 503 over 140 s,
 * nothing logged), while their own re-asks never take each other's places,
 * and a Prometheus that reads slowly is never cut for a scrape of the address
 * holding the most. Asks from one address are one party: among them, first
 * come.
 *
 * @internal
 */
import { sourceKey } from "../shared/source-key.ts";
import type { ScrapeRequest } from "./coordinator.ts";


/** A scrape holding a place, as the choice sees it. */
export interface Placed {
  readonly r: ScrapeRequest;
  /** How long its answer has taken nothing (0: it moves, or waits for the client). */
  stalledMs(): number;
}

/** A scrape's source: its address, an IPv6 one's /64 (as maxConnectionsPerAddress counts them). */
const source = (r: ScrapeRequest) => sourceKey(r.remote ?? "");

/** Places each source holds among `placed`. */
function holdings(placed: Iterable<Placed>) {
  const by = new Map<string, number>();
  for (const p of placed) by.set(source(p.r), (by.get(source(p.r)) ?? 0) + 1);
  return by;
}

/**
 * The placed scrape that yields to `asker`: stalled at least `stalledMs`, of the same target when
 * `sameTarget`, from an address holding more places than the asker's; the longest stalled of the address holding
 * the most. Undefined when none may.
 */
export function pickStalled<P extends Placed>(placed: Iterable<P>, asker: ScrapeRequest, sameTarget: boolean, stalledMs: number): P | undefined {
  const by = holdings(placed);
  const mine = by.get(source(asker)) ?? 0;
  let best: { p: P; held: number; stalled: number } | undefined;
  for (const p of placed) {
    const held = by.get(source(p.r)) ?? 0;
    if (held <= mine) continue;
    if (sameTarget && (p.r.port !== asker.port || p.r.path !== asker.path)) continue;
    const stalled = p.stalledMs();
    if (stalled < stalledMs) continue;
    if (!best || held > best.held || (held === best.held && stalled > best.stalled)) best = { p, held, stalled };
  }
  return best?.p;
}
