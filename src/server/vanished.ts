/**
 * Clients that went away recently without saying goodbye (their stream broke,
 * they went quiet, they were killed): still listed in `/clients` with
 * `__meta_promproxy_connected="false"`, and scraping them answers 503 at once,
 * so that `up == 0` fires instead of the target silently leaving discovery.
 * Each is forgotten after the retention time, or sooner when its name comes
 * back or room is needed for a live client.
 *
 * Records are kept per identity (the credential's identity; one anonymous
 * identity when streams are not authenticated), so that one identity's churn
 * cannot push out another's. An identity keeps at most `maxPerIdentity`
 * (its own oldest goes first). Room for a live client comes from its own
 * identity's records first; else from the identity holding the most clients
 * (live and vanished), and only if that one holds more than the newcomer's: an
 * identity never loses a record to one that holds as many clients or more.
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
  /**
   * Makes room for a live client of `identity`: forgets that identity's oldest
   * record, or else the oldest record of the identity holding the most clients,
   * if it holds more than `identity`. False when nothing may be taken.
   */
  evictFor(identity: string | undefined): boolean;
  all(): VanishedClient[];
  readonly size: number;
  /** Records kept for one identity. */
  sizeOf(identity: string | undefined): number;
  /** Forgets everything and stops the timer. */
  close(): void;
}

interface Entry {
  client: VanishedClient;
  unlist: () => void;
}

/** The key of an identity: the anonymous one (no auth) is "". */
const keyOf = (identity: string | undefined) => identity ?? "";

/** @internal */
export interface VanishedOptions {
  /** How long a record is kept (ms); 0 keeps none. */
  retentionMs: number;
  /** Records one identity keeps at most; its oldest is forgotten for its newest. */
  maxPerIdentity: number;
  /** Live clients an identity holds now, by its name ("" for the anonymous identity). */
  live(identity: string): number;
}

export function createVanished({ retentionMs, maxPerIdentity, live }: VanishedOptions): Vanished {
  // Insertion order is vanishing order: the oldest entry is always first, in both maps.
  const byName = new Map<string, Entry>();
  const byIdentity = new Map<string, Map<string, Entry>>();
  const forget = (name: string) => {
    const e = byName.get(name);
    if (!e) return;
    byName.delete(name);
    const key = keyOf(e.client.info.identity);
    const own = byIdentity.get(key);
    own?.delete(name);
    if (own?.size === 0) byIdentity.delete(key);
    e.unlist();
  };
  const forgetOldestOf = (own: Map<string, Entry> | undefined) => {
    const oldest = own?.keys().next();
    if (!oldest || oldest.done) return false;
    forget(oldest.value);
    return true;
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
      const name = client.info.name;
      forget(name);
      const key = keyOf(client.info.identity);
      let own = byIdentity.get(key);
      while (own && own.size >= maxPerIdentity && forgetOldestOf(own));
      // Forgetting an identity's last record drops its map: fetch it again.
      own = byIdentity.get(key);
      if (!own) byIdentity.set(key, (own = new Map()));
      const e = { client, unlist };
      byName.set(name, e);
      own.set(name, e);
    },
    get: (name) => byName.get(name)?.client,
    forget,
    evictFor(identity) {
      const key = keyOf(identity);
      if (forgetOldestOf(byIdentity.get(key))) return true;
      // The newcomer's identity holds no records: only its live clients count.
      let most: Map<string, Entry> | undefined;
      let mostHeld = live(key);
      for (const [k, own] of byIdentity) {
        const held = own.size + live(k);
        if (held > mostHeld) [most, mostHeld] = [own, held];
      }
      return forgetOldestOf(most);
    },
    all: () => [...byName.values()].map((e) => e.client),
    get size() {
      return byName.size;
    },
    sizeOf: (identity) => byIdentity.get(keyOf(identity))?.size ?? 0,
    close() {
      clearInterval(sweep);
      for (const name of [...byName.keys()]) forget(name);
    },
  };
}
