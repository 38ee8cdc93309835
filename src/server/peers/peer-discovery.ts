/**
 * The fleet's `/clients`: this replica's own clients merged with those of
 * every fresh peer, one entry per name (connected wins over vanished; on a
 * tie the entry of the replica with the smallest id), so that discovery is
 * the same on every replica (session ids included) and never shrinks on a new
 * one.
 * Rebuilt only when an input changed, as pieces (the clients' own, never
 * joined nor parsed again: src/server/listen/pieced-body.ts), and bounded by
 * `maxBytes`: entries past it are left out (and logged once).
 *
 * @internal
 */
import type { Logger } from "../../shared/logger.ts";
import { documentMarks, type ClientsDocument } from "../discovery.ts";
import { piecedBody, type PiecedBody } from "../listen/pieced-body.ts";
import type { Peer } from "./peer-poller.ts";
import { addClientPiece, type PeerClient } from "./peer-state.ts";

/** The local document's clients by name, as a peer's state lists them (pieces of one name merged, in order). */
function byName(doc: ClientsDocument): Map<string, PeerClient> {
  const out = new Map<string, PeerClient>();
  for (const { name, connected, json } of doc.clients) {
    addClientPiece(out, name, connected, json);
  }
  return out;
}

export function createPeerDiscovery(o: { replicaId: string; local: () => { body: ClientsDocument }; fresh: () => Peer[]; maxBytes: number; logger: Logger }) {
  let localBody: ClientsDocument | undefined;
  let localClients = new Map<string, PeerClient>();
  let key: string | undefined;
  let cached: { body: PiecedBody; bytes: number } = { body: piecedBody([documentMarks.open, documentMarks.close]), bytes: 2 };
  let warned = false;

  return {
    current(): { body: PiecedBody; bytes: number } {
      const local = o.local().body;
      const peers = o.fresh().sort((x, y) => (x.address.url < y.address.url ? -1 : 1));
      const k = peers.map((p) => `${p.address.url}#${p.generation}`).join(" ");
      if (local === localBody && k === key) return cached;
      if (local !== localBody) {
        localBody = local;
        localClients = byName(local);
      }
      key = k;
      const sources = [{ id: o.replicaId, clients: localClients }, ...peers.map((p) => p.state!)].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      const best = new Map<string, PeerClient>();
      for (const source of sources) {
        for (const [name, c] of source.clients) {
          const known = best.get(name);
          if (!known || (c.connected && !known.connected)) best.set(name, c);
        }
      }
      const parts: Buffer[] = [documentMarks.open];
      let bytes = 2;
      for (const c of best.values()) {
        const grown = bytes + c.bytes + (parts.length > 1 ? 1 : 0);
        if (grown > o.maxBytes) {
          if (!warned) o.logger.warn("the fleet's /clients would pass maxDiscoveryBytes: some clients of peers are left out", { maxBytes: o.maxBytes });
          warned = true;
          continue;
        }
        if (parts.length > 1) parts.push(documentMarks.comma);
        parts.push(...c.parts);
        bytes = grown;
      }
      parts.push(documentMarks.close);
      cached = { body: piecedBody(parts), bytes };
      return cached;
    },
  };
}
