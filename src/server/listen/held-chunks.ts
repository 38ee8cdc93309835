/**
 * The body chunks a relay holds over its first turn (src/server/relay.ts), in
 * lists used again and again.
 *
 * Most of a 1 MB body comes in the turn its head came (60-70 pieces): an array
 * made per scrape grew its backing store three or four times for them, about
 * 1 KB per scrape (`data`'s share of the sampled allocation, bench/alloc-ab.ts
 * --prof). A list given back keeps its slots (emptied one by one: `length = 0`
 * would free them), so a relay takes one and allocates nothing. At most
 * `keptLists` lists of at most `keptSlots` slots are kept: a burst's larger ones
 * are left to the collector.
 *
 * @internal
 */

/** A relay's held chunks: `n` of them in `items`. @internal */
export interface HeldChunks {
  items: (Uint8Array | undefined)[];
  n: number;
}

const free: HeldChunks[] = [];
const keptLists = 64;
const keptSlots = 1024;

/** A list to hold `first` and what follows it. @internal */
export function holdChunks(first: Uint8Array): HeldChunks {
  const h = free.pop() ?? { items: [], n: 0 };
  h.items[h.n++] = first;
  return h;
}

/** Gives `h` back, emptied (its chunks no longer referenced). @internal */
export function releaseChunks(h: HeldChunks): void {
  for (let i = 0; i < h.n; i++) h.items[i] = undefined;
  h.n = 0;
  if (free.length < keptLists && h.items.length <= keptSlots) free.push(h);
}
