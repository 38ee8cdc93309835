/**
 * The peer list: `peers` as URLs (`http://10.0.0.1:8080`, or `host:port` for
 * http), given as a list or comma-separated. A URL whose host is an address
 * is one peer; a URL whose host is a name (a headless Service) stands for
 * every address the name resolves to, resolved again every few seconds, so
 * replicas come and go with the Service's endpoints. This replica may be on
 * the list: it tells itself apart by the id its own state names.
 *
 * @internal
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { Logger } from "../../shared/logger.ts";

/** One peer to poll and forward to. */
export interface PeerAddress {
  /** `http(s)://ADDRESS:PORT`, the key the peer is known by. */
  url: string;
  /** The name the address came from (for TLS and messages), if any. */
  servername?: string;
}

/** What resolving needs: dns.lookup's shape, replaceable in tests. */
export type Lookup = (host: string) => Promise<{ address: string }[]>;

const defaultLookup: Lookup = (host) => lookup(host, { all: true });

/** Parses the `peers` option; throws a RangeError naming the bad entry. */
export function parsePeers(peers: string | readonly string[]): URL[] {
  const entries = (typeof peers === "string" ? [peers] : peers).flatMap((p) => p.split(",")).map((p) => p.trim()).filter(Boolean);
  return entries.map((e) => {
    let u: URL;
    try {
      u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(e) ? e : `http://${e}`);
    } catch {
      throw new RangeError(`promproxy: option peers: not a URL or host:port: ${JSON.stringify(e.slice(0, 200))}`);
    }
    if ((u.protocol !== "http:" && u.protocol !== "https:") || u.hostname === "" || (u.pathname !== "/" && u.pathname !== "") || u.search || u.username) {
      throw new RangeError(`promproxy: option peers: want http(s)://HOST:PORT, got ${JSON.stringify(e.slice(0, 200))}`);
    }
    return u;
  });
}

const urlOf = (u: URL, address: string) => `${u.protocol}//${isIP(address) === 6 ? `[${address}]` : address}${u.port ? `:${u.port}` : ""}`;
const hostOf = (u: URL) => (u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname);

export interface PeerList {
  /** The peers known now, sorted by URL, at most `maxPeers`. */
  readonly current: readonly PeerAddress[];
  /** Whether every name has been resolved at least once (a static list: at once). */
  readonly resolved: boolean;
  /** Resolves every name again (the poller calls it every `resolveIntervalMs`). */
  refresh(): Promise<void>;
}

export function createPeerList(o: { peers: URL[]; maxPeers: number; logger: Logger; lookup?: Lookup }): PeerList {
  const look = o.lookup ?? defaultLookup;
  const named = o.peers.filter((u) => isIP(hostOf(u)) === 0);
  const fixed: PeerAddress[] = o.peers.filter((u) => isIP(hostOf(u)) !== 0).map((u) => ({ url: urlOf(u, hostOf(u)) }));
  const lastByName = new Map<URL, PeerAddress[]>();
  const failing = new Set<URL>();
  let current: PeerAddress[] = [];
  let capped = false;
  let resolved = named.length === 0;

  function rebuild() {
    const all = new Map<string, PeerAddress>();
    for (const p of [...fixed, ...[...lastByName.values()].flat()]) if (!all.has(p.url)) all.set(p.url, p);
    const sorted = [...all.values()].sort((a, b) => (a.url < b.url ? -1 : 1));
    if (sorted.length > o.maxPeers && !capped) {
      capped = true;
      o.logger.warn("more peers than maxPeers: polling the first ones only", { peers: sorted.length, maxPeers: o.maxPeers });
    }
    current = sorted.slice(0, o.maxPeers);
  }
  rebuild();

  return {
    get current() {
      return current;
    },
    get resolved() {
      return resolved;
    },
    async refresh() {
      if (named.length === 0) return;
      await Promise.all(
        named.map(async (u) => {
          try {
            const addrs = await look(hostOf(u));
            lastByName.set(u, addrs.map((a) => ({ url: urlOf(u, a.address), servername: hostOf(u) })));
            failing.delete(u);
          } catch (e) {
            // Keep the last answer: a DNS hiccup must not make every peer's clients disappear.
            if (!failing.has(u)) o.logger.warn("peer name not resolved: keeping its last addresses", { peers: u.host, error: String(e) });
            failing.add(u);
          }
        }),
      );
      resolved = true;
      rebuild();
    },
  };
}
