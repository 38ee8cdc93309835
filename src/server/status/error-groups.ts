/**
 * Recent failed scrapes, grouped: the same failure of the same target again
 * and again (a dead exporter behind a forwarder, scraped every 15 s) is one
 * row with a count and its first and last time, not fifty identical rows
 * that push every other failure out. Failures are the same when they share
 * the client, the port, the outcome and the message with its numbers left
 * out ("disconnected 3s ago" and "disconnected 18s ago" are one failure).
 *
 * @internal
 */
import type { ScrapeEvent } from "../scrape-types.ts";

/** A failure and how often it happened; `at`, `durationMs` and `message` are those of the last time. */
export interface ErrorGroup extends ScrapeEvent {
  /** How many times, since `firstAt`. */
  count: number;
  /** The first time it happened (while the group was kept). */
  firstAt: Date;
}

/** @internal */
export interface ErrorGroups {
  add(e: ScrapeEvent): void;
  /** The groups, the most recently seen first. */
  list(): ErrorGroup[];
}

/** Groups kept at most: the least recently seen is forgotten first. */
export const keptErrorGroups = 50;
/** Characters of a message that decide its group (messages are cut on the page anyway). */
const keyChars = 400;

export function createErrorGroups(max = keptErrorGroups): ErrorGroups {
  // Insertion order is recency: a group seen again moves to the end.
  const groups = new Map<string, ErrorGroup>();
  return {
    add(e) {
      const key = `${e.name}\0${e.port ?? 0}\0${e.outcome}\0${(e.message ?? "").slice(0, keyChars).replace(/\d+/g, "#")}`;
      const g = groups.get(key);
      groups.delete(key);
      groups.set(key, { ...e, count: (g?.count ?? 0) + 1, firstAt: g?.firstAt ?? e.at });
      if (groups.size > max) groups.delete(groups.keys().next().value as string);
    },
    list: () => [...groups.values()].reverse(),
  };
}
