/**
 * Clients that went away recently without saying goodbye (their stream broke,
 * they went quiet, they were killed): still listed in `/clients` with
 * `__meta_promproxy_connected="false"`, and scraping them answers 503 at once,
 * so that `up == 0` fires instead of the target silently leaving discovery.
 * Each is forgotten after the retention time, or sooner when its name comes
 * back or room is needed for a live client.
 *
 * @internal
 */
import type { ClientInfo } from "./client-info.ts";

/** A vanished client as the status page and the front see it. */
export interface VanishedClient {
  info: Omit<ClientInfo, "scrapesInFlight">;
  /** When its stream ended (ms timestamp). */
  since: number;
  /** Why, in one line. */
  reason: string;
}

/** @internal */
export interface Vanished {
  /** Remembers a client; `unlist` takes its `/clients` entry away when it is forgotten. */
  add(client: VanishedClient, unlist: () => void): void;
  get(name: string): VanishedClient | undefined;
  /** Forgets a name (it came back). */
  forget(name: string): void;
  /** Forgets the oldest entry; false when there is none. */
  evictOldest(): boolean;
  all(): VanishedClient[];
  readonly size: number;
  /** Forgets everything and stops the timer. */
  close(): void;
}

export function createVanished(retentionMs: number): Vanished {
  // Insertion order is vanishing order: the oldest entry is always first.
  const byName = new Map<string, { client: VanishedClient; unlist: () => void }>();
  const forget = (name: string) => {
    const e = byName.get(name);
    if (!e) return;
    byName.delete(name);
    e.unlist();
  };
  const sweep = retentionMs <= 0 ? undefined : setInterval(() => {
    const cutoff = Date.now() - retentionMs;
    for (const [name, e] of byName) {
      if (e.client.since > cutoff) break;
      forget(name);
    }
  }, Math.min(1_000, Math.max(50, retentionMs / 4)));
  sweep?.unref();

  return {
    add(client, unlist) {
      if (retentionMs <= 0) return unlist();
      forget(client.info.name);
      byName.set(client.info.name, { client, unlist });
    },
    get: (name) => byName.get(name)?.client,
    forget,
    evictOldest() {
      const oldest = byName.keys().next();
      if (oldest.done) return false;
      forget(oldest.value);
      return true;
    },
    all: () => [...byName.values()].map((e) => e.client),
    get size() {
      return byName.size;
    },
    close() {
      clearInterval(sweep);
      for (const name of [...byName.keys()]) forget(name);
    },
  };
}
