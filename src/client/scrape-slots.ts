/**
 * The client's places for scrapes at work, over all of its streams: at most
 * `max` at once (option `maxScrapesInFlight`). A place is held until the
 * target's work has ended (a render, an exporter request), not only until the
 * scrape was answered, so a server ordering with 1 ms timeouts cannot make the
 * host work on more than `max` scrapes at once.
 *
 * With several targets, the last free places are kept for the targets that
 * have no scrape at work: one place for each, at most half of `max`. A target
 * with {@link freeToTwo} or more scrapes at work takes another place only
 * beyond those, so an exporter that hangs cannot hold every place until its
 * scrapes time out (an outside review: a forwarder's healthy target was
 * answered busy 3 times in 20 beside a hanging one). A target's first two
 * scrapes find a place while any is free: two Prometheus servers of an HA
 * pair scraping one target at once are routine (keeping places from the
 * second answered 4-5 % of such scrapes busy, the next review found).
 *
 * @internal
 */
export interface ScrapeSlots {
  /** The most places. */
  readonly max: number;
  /** Places held now. */
  readonly inUse: number;
  /** Why a scrape of `target` gets no place now (all held, or the rest kept for idle targets), or undefined. */
  refusal(target: object, client: string): string | undefined;
  /** Takes a place for `target` (after {@link ScrapeSlots.refusal} said nothing). */
  take(target: object): void;
  /** Gives back a place taken for `target`. */
  release(target: object): void;
}

/** Scrapes of one target at work that never wait for the places kept for idle targets. */
export const freeToTwo = 2;

export function createScrapeSlots(max: number, targets = 1): ScrapeSlots {
  let inUse = 0;
  const byTarget = new Map<object, number>();
  return {
    max,
    get inUse() {
      return inUse;
    },
    refusal(target, client) {
      if (inUse >= max) return `client "${client}" has ${max} scrapes in flight, its maximum`;
      const mine = byTarget.get(target) ?? 0;
      if (mine < freeToTwo || targets <= 1) return undefined;
      const kept = Math.min(targets - byTarget.size, Math.floor(max / 2)); // targets with nothing at work
      if (max - inUse > kept) return undefined;
      return `client "${client}" keeps its last ${kept} free place${kept === 1 ? "" : "s"} of ${max} for targets with no scrape at work (this one has ${mine})`;
    },
    take(target) {
      inUse++;
      byTarget.set(target, (byTarget.get(target) ?? 0) + 1);
    },
    release(target) {
      const n = byTarget.get(target) ?? 0;
      if (n === 0) return;
      inUse--;
      if (n > 1) byTarget.set(target, n - 1);
      else byTarget.delete(target);
    },
  };
}
