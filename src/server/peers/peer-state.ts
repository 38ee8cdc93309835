/**
 * The peer state document (`GET /_promproxy/peer/state`): this replica's id,
 * its readiness and the clients it holds, as its own `/clients` groups (only
 * its own: never what it learned from peers, so stale news cannot echo).
 *
 *   {"id":"r1","instance":"9f2c...","ready":true,"signedForwards":true,"clients":[ http_sd groups ]}

 * `instance` is random for each process: a poller that gets its own id back
 * tells its own answer (its address is on the peer list) from another
 * process started with the same id. `signedForwards`: it signs the head of
 * its answers to forwarded scrapes (a replica that predates it does not).
 *
 * It carries an ETag; a poller sends it back in `If-None-Match` and gets 304
 * while nothing changed, so an idle fleet polls for a few hundred bytes.
 * Parsing checks every field: a peer's garbage never reaches `/clients`; a
 * client whose name a hello would be refused (src/shared/names.ts) is
 * dropped, and counted.
 *
 * @internal
 */
import { createHash, randomBytes } from "node:crypto";
import { checkName } from "../../shared/names.ts";
import { documentMarks } from "../discovery.ts";
import { piecedBody, type PiecedBody } from "../listen/pieced-body.ts";
import { pacedDocument } from "../paced-document.ts";

export const peerStatePath = "/_promproxy/peer/state";

/** Whether a request target is the state path (a query allowed, nothing more). */
export const isPeerStatePath = (uri: string) => uri === peerStatePath || uri.startsWith(`${peerStatePath}?`);

/** This process's instance token, in every state it serves. */
export const processInstance = randomBytes(8).toString("hex");

/** One client in a peer's state: whether it is connected there, and its groups rendered as JSON (UTF-8), comma-separated, as pieces. */
export interface PeerClient {
  connected: boolean;
  parts: Buffer[];
  bytes: number;
}

/** A peer's state as parsed. */
export interface PeerState {
  id: string;
  /** The process's instance token; undefined from a replica that predates it. */
  instance?: string;
  ready: boolean;
  /** It signs the head of its answers to forwarded scrapes. */
  signedForwards: boolean;
  clients: Map<string, PeerClient>;
  /** Client groups dropped for their names, and why the first one was. */
  dropped: number;
  droppedWhy?: string;
}

/** Adds one group of `name` to `out`: a name's groups are merged, comma-separated, in order; connected only if all are. */
export function addClientPiece(out: Map<string, PeerClient>, name: string, connected: boolean, json: Buffer): void {
  const known = out.get(name);
  if (known) {
    known.parts.push(documentMarks.comma, json);
    known.bytes += 1 + json.length;
    known.connected &&= connected;
  } else {
    out.set(name, { connected, parts: [json], bytes: json.length });
  }
}

/** Whether two documents are made of the same pieces (the same Buffers, in order). */
function samePieces(a: PiecedBody, b: PiecedBody): boolean {
  if (a === b) return true;
  if (a.parts.length !== b.parts.length || a.length !== b.length) return false;
  return a.parts.every((p, i) => p === b.parts[i]);
}

/**
 * Serves this replica's state: the body (pieces: the local `/clients`' own, never joined) is rebuilt only when the local `/clients` or readiness changed, and a
 * large one at most once per 1 ms for every 10 KB of it (src/server/paced-document.ts): its peers poll every
 * second, and each change costs them a parse of the whole document (a 58 MB state changing every second kept
 * both replicas of a pair at 40-85 % of a core); in between they get 304.
 */
export function createStateSource(o: { replicaId: string; discovery: () => { body: PiecedBody }; ready: () => boolean; now?: () => number }) {
  const boot = randomBytes(4).toString("hex");
  const close = Buffer.from("}");
  let lastClients: PiecedBody | undefined;
  let lastReady: boolean | undefined;
  let generation = 0;
  let version: StateVersion = { body: piecedBody([]), bytes: 0, etag: "" };
  const current = pacedDocument((): StateVersion => {
    const clients = o.discovery().body;
    const ready = o.ready();
    if (!lastClients || !samePieces(clients, lastClients) || ready !== lastReady) {
      lastClients = clients;
      lastReady = ready;
      generation++;
      const head = Buffer.from(`{"id":${JSON.stringify(o.replicaId)},"instance":"${processInstance}","ready":${ready},"signedForwards":true,"clients":`);
      const body = piecedBody([head, ...clients.parts, close]);
      version = { body, bytes: body.length, etag: `"${boot}-${generation}"` };
    }
    return version;
  }, (s) => s.bytes, o.now);
  return { current, hash: hashOf };
}

/** One version of the state: its body, size, ETag, and (once asked) its SHA-256. */
export interface StateVersion {
  readonly body: PiecedBody;
  readonly bytes: number;
  readonly etag: string;
  sha256?: Promise<string>;
}

/** Bytes hashed in one turn of the event loop at most: 4 MiB (a few ms; SHA-256 of a 58 MB state took 50-70 ms at once). */
export const hashBytesPerTurn = 4 * 1024 * 1024;

/**
 * The SHA-256 (hex) of a version's body, which its answers are signed over: hashed once per version, piece by
 * piece, {@link hashBytesPerTurn} at most per turn of the event loop.
 */
export function hashOf(v: StateVersion): Promise<string> {
  v.sha256 ??= new Promise((resolve) => {
    const h = createHash("sha256");
    const parts = v.body.parts;
    let i = 0;
    const step = () => {
      for (let n = 0; i < parts.length && n < hashBytesPerTurn; i++) {
        h.update(parts[i]!);
        n += parts[i]!.length;
      }
      if (i < parts.length) setImmediate(step);
      else resolve(h.digest("hex"));
    };
    step();
  });
  return v.sha256;
}

const isStringRecord = (v: unknown): v is Record<string, string> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === "string");

/** Parses a peer's state; throws an Error saying what is wrong with it. */
export function parsePeerState(text: string): PeerState {
  const doc = JSON.parse(text) as unknown;
  if (typeof doc !== "object" || doc === null) throw new Error("not a JSON object");
  const { id, instance, ready, signedForwards, clients } = doc as Record<string, unknown>;
  if (typeof id !== "string" || id === "" || id.length > 128) throw new Error("no replica id (1-128 characters)");
  if (instance !== undefined && (typeof instance !== "string" || instance.length > 64)) throw new Error("an instance that is not a string of 64 characters at most");
  if (typeof ready !== "boolean") throw new Error("no readiness");
  if (!Array.isArray(clients)) throw new Error("no clients list");
  const out = new Map<string, PeerClient>();
  let dropped = 0;
  let droppedWhy: string | undefined;
  for (const g of clients as unknown[]) {
    const { targets, labels } = (g ?? {}) as Record<string, unknown>;
    if (!Array.isArray(targets) || !targets.every((t) => typeof t === "string") || !isStringRecord(labels)) throw new Error("a client group is not {targets, labels}");
    const name = labels["__meta_promproxy_client"];
    if (!name) throw new Error("a client group without __meta_promproxy_client");
    // The rules a hello gets, the canonical (lower-case) form included: a replica lists no other.
    const checked = checkName(name);
    if ("error" in checked || checked.name !== name) {
      dropped++;
      droppedWhy ??= "error" in checked ? checked.error : `name ${JSON.stringify(name.slice(0, 64))} is not in lower case`;
      continue;
    }
    const json = Buffer.from(JSON.stringify({ targets, labels }));
    const connected = labels["__meta_promproxy_connected"] !== "false";
    addClientPiece(out, name, connected, json);
  }
  return { id, ...(instance === undefined ? {} : { instance: instance as string }), ready, signedForwards: signedForwards === true, clients: out, dropped, ...(droppedWhy ? { droppedWhy } : {}) };
}
