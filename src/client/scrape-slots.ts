/**
 * The client's places for scrapes at work, over all of its streams: at most
 * `max` at once (option `maxScrapesInFlight`). A place is held until the
 * target's work has ended (a render, an exporter request), not only until the
 * scrape was answered, so a server ordering with 1 ms timeouts cannot make the
 * host work on more than `max` scrapes at once.
 *
 * @internal
 */
export interface ScrapeSlots {
  /** The most places. */
  readonly max: number;
  /** Places held now. */
  readonly inUse: number;
  /** Takes a place; false when all are held. */
  take(): boolean;
  /** Gives back a place taken. */
  release(): void;
}

export function createScrapeSlots(max: number): ScrapeSlots {
  let inUse = 0;
  return {
    max,
    get inUse() {
      return inUse;
    },
    take() {
      if (inUse >= max) return false;
      inUse++;
      return true;
    },
    release() {
      if (inUse > 0) inUse--;
    },
  };
}
