import { Code, ConnectError } from "@connectrpc/connect";
import type { ClientInfo } from "./client-info.ts";
import { piecedBody, type PiecedBody } from "./listen/pieced-body.ts";

/** One entry of Prometheus' http_sd format. */
export interface DiscoveryGroup {
  targets: string[];
  labels: Record<string, string>;
}

/** What `/clients` lists for one client. @internal */
export interface DiscoveryEntry {
  name: string;
  labels: Record<string, string>;
  targets: ClientInfo["targets"];
  sessionId: string;
  /** False for a client that vanished recently (`__meta_promproxy_connected="false"`). Default true. */
  connected?: boolean;
}

/** One client's piece of `/clients`: its groups as JSON (UTF-8), comma-separated, without brackets. @internal */
export interface ClientPiece {
  readonly name: string;
  readonly connected: boolean;
  readonly json: Buffer;
}

/**
 * The `/clients` document as pieces: `[`, each client's piece with a comma
 * between, `]`; never joined (src/server/listen/pieced-body.ts). The same
 * object until the list changes. @internal
 */
export interface ClientsDocument extends PiecedBody {
  /** The clients' pieces, in the document's order. */
  readonly clients: readonly ClientPiece[];
}

/** The pieces of a document between its clients' pieces. @internal */
export const documentMarks = { open: Buffer.from("["), comma: Buffer.from(","), close: Buffer.from("]") } as const;

/** The document made of `pieces` (each a client's groups, comma-separated): `[` + pieces joined by `,` + `]`. @internal */
export function documentOf<T extends { json: Buffer }>(pieces: Iterable<T>): PiecedBody & { clients: T[] } {
  const clients = [...pieces];
  const parts: Buffer[] = [documentMarks.open];
  for (const c of clients) {
    if (parts.length > 1) parts.push(documentMarks.comma);
    parts.push(c.json);
  }
  parts.push(documentMarks.close);
  return { ...piecedBody(parts), clients };
}

/**
 * The http_sd document (`GET /clients`), kept up to date as clients come and
 * go instead of being built per request. @internal
 */
export interface Discovery {
  /**
   * Lists a client: renders its groups once and keeps the JSON. Returns the
   * function that takes it off the list again (idempotent). Throws
   * `ResourceExhausted` when the document would grow past `maxBytes`.
   */
  add(entry: DiscoveryEntry): () => void;
  /** The JSON document as its pieces (never joined); a new one only after a change, then cached. */
  body(): ClientsDocument;
  /** Size of {@link body} in UTF-8 bytes (a Content-Length), known without building it. */
  readonly bytes: number;
  /** Clients listed. */
  readonly size: number;
  /** How many times the document was built so far (once per change at most; for tests and metrics). */
  readonly renders: number;
}

/** Defaults of {@link createDiscovery}. @internal */
export const discoveryDefaults: { maxBytes: number } = {
  /**
   * 64 MiB: room for the 10 000 clients of the default `maxClients` at 6.5 KiB
   * each (a typical client takes 200-400 bytes; a forwarder with 64 targets
   * some 30 KiB), far below V8's longest string (2^29 - 24 characters) and
   * small enough for Prometheus to parse at each refresh.
   */
  maxBytes: 64 * 1024 * 1024,
};

/** The address Prometheus scrapes a target by: `NAME` for a target on any port, `NAME:PORT` otherwise. */
function addressOf(e: DiscoveryEntry, t: DiscoveryEntry["targets"][number]): string {
  return t.port === 0 ? e.name : `${e.name}:${t.port}`;
}

/** A target's labels: the client's, the target's over them, then the meta labels. */
function labelsOf(e: DiscoveryEntry, t: DiscoveryEntry["targets"][number]): Record<string, string> {
  const l: Record<string, string> = {
    ...e.labels,
    ...t.labels,
    __meta_promproxy_client: e.name,
    __meta_promproxy_session_id: e.sessionId,
    __meta_promproxy_connected: e.connected === false ? "false" : "true",
  };
  if (t.path !== "" && t.path !== "/") l["__metrics_path__"] = t.path;
  return l;
}

/** The http_sd groups of one client: one per announced target. @internal */
export function groupsOf(e: DiscoveryEntry): DiscoveryGroup[] {
  return e.targets.map((t) => ({ targets: [addressOf(e, t)], labels: labelsOf(e, t) }));
}

/** One client's piece of the document: its groups, comma-separated, without the brackets. */
function render(e: DiscoveryEntry): string {
  return groupsOf(e)
    .map((g) => JSON.stringify(g))
    .join(",");
}

/**
 * The exact UTF-8 size of a client's piece of the document, computed without
 * building it: a hello's labels repeat for every target and JSON escapes
 * control characters six-fold, so a small hello can render large. @internal
 */
export function discoveryBytesOf(e: DiscoveryEntry): number {
  const memo = new Map<string, number>();
  const json = (s: string) => {
    let n = memo.get(s);
    if (n === undefined) memo.set(s, (n = Buffer.byteLength(JSON.stringify(s))));
    return n;
  };
  let bytes = Math.max(0, e.targets.length - 1); // commas between groups
  for (const t of e.targets) {
    // {"targets":[ ADDRESS ],"labels":{ K:V,K:V }}
    bytes += 12 + json(addressOf(e, t)) + 12 + 2;
    const entries = Object.entries(labelsOf(e, t));
    bytes += Math.max(0, entries.length - 1);
    for (const [k, v] of entries) bytes += json(k) + 1 + json(v);
  }
  return bytes;
}

/**
 * Creates the `/clients` document. Each client's JSON is rendered and encoded
 * once, when it is added; the document is made of those pieces (a list of
 * Buffers, never joined) at the first {@link Discovery.body} after a change
 * and cached until the next one, so Prometheus' refreshes cost no rendering
 * and a rebuild costs a list of references, not a copy of the document. Its
 * size is bounded by `maxBytes` (UTF-8): a client that would push it further
 * is refused with `ResourceExhausted`. Memory: the pieces, once.
 *
 * @internal
 */
export function createDiscovery(options: { maxBytes: number }): Discovery {
  const pieces = new Set<ClientPiece>();
  let pieceBytes = 0;
  let cached: ClientsDocument | undefined;
  let renders = 0;
  /** "[" + pieces joined by "," + "]" */
  const total = (n: number, b: number) => 2 + b + Math.max(0, n - 1);

  return {
    add(entry) {
      if (entry.targets.length === 0) return () => {};
      const size = discoveryBytesOf(entry);
      const grown = total(pieces.size + 1, pieceBytes + size);
      if (grown > options.maxBytes) {
        throw new ConnectError(
          `/clients would grow to ${grown} bytes with this client (${size} bytes for ${entry.targets.length} target${entry.targets.length === 1 ? "" : "s"}), past its maximum of ${options.maxBytes} bytes; try again later`,
          Code.ResourceExhausted,
        );
      }
      const piece: ClientPiece = { name: entry.name, connected: entry.connected !== false, json: Buffer.from(render(entry)) };
      pieces.add(piece);
      pieceBytes += piece.json.length;
      cached = undefined;
      return () => {
        if (!pieces.delete(piece)) return;
        pieceBytes -= piece.json.length;
        cached = undefined;
      };
    },
    body() {
      if (cached === undefined) {
        cached = documentOf(pieces);
        renders++;
      }
      return cached;
    },
    get bytes() {
      return total(pieces.size, pieceBytes);
    },
    get size() {
      return pieces.size;
    },
    get renders() {
      return renders;
    },
  };
}
