/**
 * The scripted server's books on every scrape it ordered: what the client
 * sent for it, in what order, within which credit. Every frame about a scrape
 * passes through here, and every rule it breaks becomes a violation line:
 * a chunk over the chunk limit or over the credit left, a chunk before the
 * head, a second head, anything after the end, anything for an id never
 * ordered, a result frame (head, data and end at once) the welcome did not allow. Frames after a Cancel are counted apart (the scenario judges them).
 *
 * @internal
 */
import { create, type MessageInitShape, type UnknownField } from "@bufbuild/protobuf";
import type { ClientFrame, ResultHead, ScrapeError, ServerFrameSchema } from "../../gen/promproxy/v1/scrape_pb.ts";
import { ResultHeadSchema, ScrapeErrorReason } from "../../gen/promproxy/v1/scrape_pb.ts";

type ServerFrameInit = MessageInitShape<typeof ServerFrameSchema>;

/** What to order. */
export interface OrderOptions {
  /** Path and query. Default "/metrics". */
  path?: string;
  /** Port addressed. Default 0. */
  port?: number;
  /** "GET" or "HEAD"; default empty (GET). */
  method?: string;
  /** Request headers. Default: the Accept and User-Agent of a Prometheus-like scraper. */
  headers?: Record<string, string>;
  /** The order's timeout. Default 20 000 ms. */
  timeoutMs?: number;
  /** Body bytes allowed before Credit. Required. */
  creditBytes: number;
  /** When the client has used up its credit, grant this much more at once (a reader that keeps up). 0: never. Default 0. */
  grantBytes?: number;
  /** Fields no version of the protocol defines, in the order and in every Credit for it. Default none. */
  unknownFields?: UnknownField[];
}

/** One scrape as the server saw it. */
export interface ScrapeRecord {
  readonly id: bigint;
  readonly orderedAt: number;
  head?: { at: number; value: ResultHead };
  body: Buffer[];
  bodyBytes: number;
  chunks: number;
  largestChunk: number;
  /** Credit granted in all: the order's plus Credit frames. */
  granted: number;
  grants: number;
  /** A grant is on its way (the next turn). */
  granting?: boolean;
  end?: { at: number; error?: ScrapeError };
  /** The result came as one `result` frame (feature "single-result"). */
  single?: boolean;
  cancelledAt?: number;
  /** Frames the client sent for this scrape after the server cancelled it. */
  afterCancel: { heads: number; chunks: number; bytes: number; ends: number };
}

/** A scrape in progress, as a scenario drives it. */
export interface ScrapeTracker {
  readonly record: ScrapeRecord;
  /** Resolves with the record at the scrape's end; rejects after `timeoutMs` without one. */
  settled(timeoutMs: number): Promise<ScrapeRecord>;
  /** Grants more credit. */
  credit(bytes: number): void;
  /** Sends a Cancel; frames after it are counted in `afterCancel`. */
  cancel(reason?: string): void;
}

export interface ScrapeLedger {
  order(o: OrderOptions): ScrapeTracker;
  /** Books one client frame about a scrape; returns false for frames of other kinds. */
  receive(frame: ClientFrame, at: number): boolean;
  readonly records: ScrapeRecord[];
}

const defaultHeaders = {
  accept: "text/plain;version=0.0.4;q=1,*/*;q=0.1",
  "user-agent": "promproxy-conformance/1",
};

/** "a head", "a chunk", "an end", "a result". */
const an = (kind: string) => `${kind === "end" ? "an" : "a"} ${kind}`;

/** The name of a ScrapeErrorReason, e.g. "TIMEOUT". */
export function reasonName(r: ScrapeErrorReason): string {
  return Object.entries(ScrapeErrorReason).find(([, v]) => v === r)?.[0] ?? `reason ${r}`;
}

/**
 * @param send writes a server frame on the stream
 * @param violations where broken rules are written
 * @param chunkLimit the largest chunk the welcome allowed (after the 64 KiB default for 0)
 * @param features the features the welcome named
 */
export function createScrapeLedger(
  send: (f: ServerFrameInit) => void,
  violations: string[],
  chunkLimit: () => number,
  features: () => readonly string[] = () => [],
): ScrapeLedger {
  let nextId = 1n;
  const byId = new Map<bigint, { r: ScrapeRecord; o: OrderOptions; done: () => void }>();
  const records: ScrapeRecord[] = [];
  const violate = (id: bigint, what: string) => violations.push(`scrape ${id}: ${what}`);
  const grant = (r: ScrapeRecord, o: OrderOptions, bytes: number) => {
    r.granted += bytes;
    r.grants++;
    send({ frame: { case: "credit", value: { scrapeId: r.id, bytes: BigInt(bytes), $unknown: o.unknownFields } } });
  };

  function order(o: OrderOptions): ScrapeTracker {
    const id = nextId++;
    const r: ScrapeRecord = {
      id, orderedAt: Date.now(), body: [], bodyBytes: 0, chunks: 0, largestChunk: 0, granted: o.creditBytes, grants: 0,
      afterCancel: { heads: 0, chunks: 0, bytes: 0, ends: 0 },
    };
    let done!: () => void;
    const ended = new Promise<void>((resolve) => (done = resolve));
    byId.set(id, { r, o, done });
    records.push(r);
    const timeoutMs = o.timeoutMs ?? 20_000;
    const seconds = Math.floor(timeoutMs / 1000);
    send({
      frame: {
        case: "order",
        value: {
          scrapeId: id, port: o.port ?? 0, path: o.path ?? "/metrics", scheme: "http", method: o.method ?? "",
          headers: Object.entries(o.headers ?? defaultHeaders).map(([name, value]) => ({ name, value })),
          timeout: { seconds: BigInt(seconds), nanos: (timeoutMs - seconds * 1000) * 1e6 },
          creditBytes: BigInt(o.creditBytes),
          $unknown: o.unknownFields,
        },
      },
    });
    const credit = (bytes: number) => grant(r, o, bytes);
    return {
      record: r,
      async settled(ms) {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), ms)));
        const won = await Promise.race([ended.then(() => "ended" as const), late]);
        clearTimeout(timer);
        if (won === "late") {
          const seen = r.head ? `a head and ${r.bodyBytes} body bytes in ${r.chunks} chunks` : "no head";
          throw new Error(`scrape ${id} did not end within ${ms / 1000}s (${seen}, ${r.granted} bytes of credit granted)`);
        }
        return r;
      },
      credit,
      cancel(reason = "cancelled by the conformance kit") {
        r.cancelledAt ??= Date.now();
        send({ frame: { case: "cancel", value: { scrapeId: id, reason } } });
      },
    };
  }

  function receive(frame: ClientFrame, at: number): boolean {
    const f = frame.frame;
    if (f.case !== "head" && f.case !== "chunk" && f.case !== "end" && f.case !== "result") return false;
    const id = f.value.scrapeId;
    const entry = byId.get(id);
    if (!entry) {
      violations.push(`${an(f.case)} for scrape ${id}, which was never ordered`);
      return true;
    }
    const { r, o, done } = entry;
    if (r.end) {
      violate(id, `${an(f.case)} after its end`);
      return true;
    }
    const cancelled = r.cancelledAt !== undefined;
    switch (f.case) {
      case "head":
        if (cancelled) r.afterCancel.heads++;
        if (r.head) violate(id, "a second head");
        else r.head = { at, value: f.value };
        return true;
      case "result": {
        const v = f.value;
        if (!features().includes("single-result")) violate(id, 'a result frame, but the welcome did not name the feature "single-result"');
        if (cancelled) r.afterCancel.heads++;
        if (r.head) violate(id, "a result after its head");
        r.head = { at, value: create(ResultHeadSchema, { scrapeId: id, status: v.status, headers: v.headers }) };
        r.single = true;
        const n = v.data.byteLength;
        if (n > 0) takeChunk(r, o, v.data, cancelled, "a result's data");
        if (cancelled) r.afterCancel.ends++;
        r.end = { at, error: v.error };
        done();
        return true;
      }
      case "chunk":
        if (!r.head) violate(id, "a chunk before the head");
        takeChunk(r, o, f.value.data, cancelled, "a chunk");
        return true;
      case "end":
        if (cancelled) r.afterCancel.ends++;
        if (!f.value.error && !r.head && !cancelled) violate(id, "an end with neither a head nor an error");
        r.end = { at, error: f.value.error };
        done();
        return true;
    }
  }

  function takeChunk(r: ScrapeRecord, o: OrderOptions, data: Uint8Array, cancelled: boolean, what: string) {
    const id = r.id;
    const n = data.byteLength;
    if (cancelled) {
      r.afterCancel.chunks++;
      r.afterCancel.bytes += n;
    }
    if (n > chunkLimit()) violate(id, `${what} of ${n} bytes, over max_chunk_bytes ${chunkLimit()}`);
    const left = r.granted - r.bodyBytes;
    if (n > left) violate(id, `${what} of ${n} bytes with only ${left} bytes of credit left (${r.granted} granted)`);
    r.body.push(Buffer.from(data));
    r.bodyBytes += n;
    r.chunks++;
    r.largestChunk = Math.max(r.largestChunk, n);
    // Granted on the next turn, not as the chunk is read: a client that sends without waiting for credit has
    // its next chunks (already on the wire) counted against the credit it really had.
    if (!cancelled && o.grantBytes && r.bodyBytes >= r.granted && !r.granting) {
      r.granting = true;
      const bytes = o.grantBytes;
      setImmediate(() => {
        r.granting = false;
        if (!r.end && r.cancelledAt === undefined) grant(r, o, bytes);
      });
    }
  }

  return { order, receive, records };
}
