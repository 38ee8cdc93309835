import { Code, ConnectError } from "@connectrpc/connect";
import { ScrapeErrorReason, type ClientFrame, type Header, type ScrapeError } from "../../gen/promproxy/v1/scrape_pb.ts";
import { oneLine } from "../shared/one-line.ts";
import { headersOverBound, maxResultHeaders } from "./frame-bounds.ts";
import { LateFrames } from "./late-frames.ts";
import { bodiless, checkHead, type CheckedHead } from "./result-head.ts";
import type { ScrapeFailure, ScrapeOutcome, ScrapeSink } from "./scrape-types.ts";

/** One scrape in flight on a session. @internal */
export interface Active {
  sink: ScrapeSink;
  head?: CheckedHead;
  /** Bytes the client may still send. */
  allowance: number;
  /** Body bytes received. */
  received: number;
  /** A HEAD order: the result has a head and no body; its Content-Length describes what a GET would send. */
  headOnly: boolean;
}

/** What the result frames of one session need. @internal */
export interface ResultFramesOptions {
  /** The client's name, for messages. */
  name: string;
  maxChunkBytes: number;
  maxResponseBytes: number;
  /** Whether the stream negotiated the feature "single-result" (a `result` frame is allowed). */
  singleResult: boolean;
  /** The scrapes in flight, by id (the session adds them). */
  active: Map<bigint, Active>;
  /** The id the next order will get: ids below it were ordered. */
  nextId(): bigint;
  /** Tells the client to stop a scrape. */
  cancel(id: bigint, reason: string): void;
  /** A tally shared by the server's sessions, to which each late frame dropped is added too (the metric). */
  lateTally?: { dropped: number };
}

/** How one session takes its client's result frames. @internal */
export interface ResultFrames {
  /** Handles a head, chunk, end or result frame; false for any other kind. Throws a ConnectError on a protocol violation. */
  receive(f: ClientFrame["frame"]): boolean;
  /** Ends a scrape and tells its sink; a "disconnected" failure after a protocol violation names the rule broken. */
  finish(id: bigint, a: Active, failure?: ScrapeFailure): void;
  /** Remembers a scrape the server gave up on, to accept its late frames within the credit it had left. */
  forget(id: bigint, allowance: number): void;
  /** Forgets every scrape given up on. */
  clear(): void;
  /** Late frames dropped for scrapes that had ended or were forgotten (within what they may still send: see `late`). */
  readonly lateDropped: number;
  /**
   * Whether a chunk of `n` body bytes for scrape `id` would be taken whole now
   * (after a head that allows a body, within the credit, the chunk limit, the response limit
   * and the declared Content-Length): such a chunk may be passed on piece by
   * piece as it arrives (grpc-fast/chunk-pass.ts).
   */
  takes(id: bigint, n: number): boolean;
}

const outcomeOfReason: Record<number, ScrapeOutcome> = {
  [ScrapeErrorReason.UNREACHABLE]: "target_unreachable",
  [ScrapeErrorReason.TIMEOUT]: "timeout",
  [ScrapeErrorReason.TOO_LARGE]: "too_large",
  [ScrapeErrorReason.NOT_FOUND]: "not_found",
  [ScrapeErrorReason.BUSY]: "busy",
  [ScrapeErrorReason.INTERNAL]: "client_error",
  [ScrapeErrorReason.CANCELLED]: "cancelled",
};

function violation(message: string, code = Code.InvalidArgument): ConnectError {
  return new ConnectError(message, code);
}

/**
 * The rules of a result on one stream: a head (status and headers checked),
 * chunks within the credit, the chunk limit, the response limit and the
 * declared Content-Length, then an end; or all three in one `result` frame on
 * a stream that negotiated "single-result". A result that breaks a rule fails
 * its scrape (and the client is told to stop it); a frame out of order ends
 * the stream.
 *
 * @internal
 */
export function createResultFrames(o: ResultFramesOptions): ResultFrames {
  return new Results(o);
}

/**
 * A class, not closures: one per connected client, its methods shared (an
 * idle session holds only its fields; the map of given-up scrapes comes with
 * the first one).
 */
class Results implements ResultFrames {
  readonly o: ResultFramesOptions;
  /** What the client may still send for scrapes no longer in flight (late-frames.ts). */
  readonly lateFrames = new LateFrames();
  lateDropped = 0;
  /** Once a frame broke the protocol (the stream is ending): what the scrapes failed as "disconnected" are told. */
  broken: string | undefined;
  constructor(o: ResultFramesOptions) {
    this.o = o;
  }

  finish(id: bigint, a: Active, failure?: ScrapeFailure) {
    this.o.active.delete(id);
    this.lateFrames.ended(id);
    if (failure?.outcome === "disconnected" && this.broken !== undefined) failure = { outcome: "disconnected", message: this.broken };
    a.sink.onEnd(failure);
  }
  forget(id: bigint, allowance: number) {
    this.lateFrames.gaveUp(id, allowance);
  }
  clear() {
    this.lateFrames.clear();
  }
  /** Fails one scrape for what its client sent, and tells the client to stop it; the stream stays up. */
  reject(id: bigint, a: Active, outcome: ScrapeOutcome, message: string): false {
    this.o.active.delete(id);
    this.forget(id, a.allowance);
    this.o.cancel(id, outcome === "too_large" ? `response too large: ${message}` : `the result was refused: ${message}`);
    a.sink.onEnd({ outcome, message });
    return false;
  }
  sent(what: string) {
    return `client "${this.o.name}" sent ${what}`;
  }
  tooLarge(extra = "") {
    return `scrape of "${this.o.name}" exceeds the maximum response size of ${this.o.maxResponseBytes} bytes${extra}`;
  }

  /**
   * A frame for a scrape that is not in flight. Ids are issued in increasing
   * order on a stream, so any id below the next one was issued: its frames
   * crossed a cancel, or came after its end; they are dropped at O(1) cost
   * within what late-frames.ts allows, and end the stream beyond it. An id
   * never issued ends the stream.
   */
  late(id: bigint, kind: string, bytes: number) {
    if (id <= 0n || id >= this.o.nextId()) throw violation(`${kind} for scrape ${id}, which was never ordered`);
    this.lateFrames.take(id, kind, bytes);
    this.lateDropped++;
    if (this.o.lateTally) this.o.lateTally.dropped++;
  }

  checkChunkSize(id: bigint, n: number) {
    const max = this.o.maxChunkBytes;
    if (n > max) throw violation(`scrape ${id}: chunk of ${n} bytes exceeds the maximum of ${max}`, Code.ResourceExhausted);
  }

  takes(id: bigint, n: number): boolean {
    const a = this.o.active.get(id);
    if (a === undefined || a.head === undefined || a.headOnly || bodiless(a.head.status)) return false;
    const declared = a.head.contentLength;
    return n > 0 && n <= this.o.maxChunkBytes && n <= a.allowance && a.received + n <= this.o.maxResponseBytes && (declared === undefined || a.received + n <= declared);
  }

  /** Takes a head; false when it failed the scrape. */
  head(id: bigint, a: Active, status: number, headers: Header[]): boolean {
    const h = checkHead(status, headers);
    if ("error" in h) return this.reject(id, a, "bad_result", this.sent(h.error));
    if ((h.contentLength ?? 0) > this.o.maxResponseBytes) return this.reject(id, a, "too_large", this.tooLarge(` (content-length ${h.contentLength})`));
    a.head = h;
    a.sink.onHead(h);
    return true;
  }

  /** Takes body bytes after the head; false when they failed the scrape. */
  data(id: bigint, a: Active, bytes: Uint8Array, kind: string): boolean {
    const n = bytes.byteLength;
    if (n > a.allowance) throw violation(`scrape ${id}: ${kind} beyond the granted credit`, Code.ResourceExhausted);
    a.allowance -= n;
    a.received += n;
    if (a.headOnly && (n > 0 || kind === "chunk")) return this.reject(id, a, "bad_result", this.sent("a body for a HEAD request"));
    if (n > 0 && a.head && bodiless(a.head.status)) return this.reject(id, a, "bad_result", this.sent(`a body with status ${a.head.status}, which has none`));
    if (n === 0) return true;
    if (a.received > this.o.maxResponseBytes) return this.reject(id, a, "too_large", this.tooLarge());
    const declared = a.head?.contentLength;
    if (declared !== undefined && a.received > declared) {
      return this.reject(id, a, "bad_result", this.sent(`more body bytes than its content-length of ${declared}`));
    }
    a.sink.onChunk(bytes);
    return true;
  }

  end(id: bigint, a: Active, err: ScrapeError | undefined) {
    if (!err) {
      if (!a.head) throw violation(`scrape ${id}: end without head or error`);
      const declared = a.head.contentLength;
      if (declared !== undefined && a.received !== declared && !a.headOnly) {
        return this.finish(id, a, { outcome: "bad_result", message: this.sent(`${a.received} body bytes, but its content-length said ${declared}`) });
      }
      return this.finish(id, a);
    }
    const message = oneLine(err.message) || "the scrape failed";
    // Named once: a client whose own words begin with its name ("client "x" has 8 scrapes in flight") is not named again.
    const named = message.startsWith(`client "${this.o.name}" `) ? message : `client "${this.o.name}": ${message}`;
    this.finish(id, a, { outcome: outcomeOfReason[err.reason] ?? "client_error", message: named });
  }

  /**
   * Takes a frame. A frame that breaks the protocol ends the stream; the rule
   * it broke is kept, so that the scrapes then failed as "disconnected" name it.
   */
  receive(f: ClientFrame["frame"]): boolean {
    try {
      return this.take(f);
    } catch (e) {
      if (e instanceof ConnectError) this.broken ??= `client "${this.o.name}" disconnected: cut off for breaking the protocol: ${oneLine(e.rawMessage)}`;
      throw e;
    }
  }

  take(f: ClientFrame["frame"]): boolean {
    const active = this.o.active;
    switch (f.case) {
      case "chunk": {
        const id = f.value.scrapeId;
        const n = f.value.data.byteLength;
        this.checkChunkSize(id, n);
        const a = active.get(id);
        if (!a) this.late(id, "chunk", n);
        else if (!a.head) throw violation(`scrape ${id}: chunk before head`);
        else this.data(id, a, f.value.data, "chunk");
        return true;
      }
      case "head": {
        const id = f.value.scrapeId;
        if (f.value.headers.length > maxResultHeaders) throw headersOverBound("head", f.value.headers.length);
        const a = active.get(id);
        if (!a) this.late(id, "head", 0);
        else if (a.head) throw violation(`scrape ${id}: second head`);
        else this.head(id, a, f.value.status, f.value.headers);
        return true;
      }
      case "end": {
        const id = f.value.scrapeId;
        const a = active.get(id);
        if (!a) this.late(id, "end", 0);
        else this.end(id, a, f.value.error);
        return true;
      }
      case "result": {
        const r = f.value;
        const id = r.scrapeId;
        if (r.headers.length > maxResultHeaders) throw headersOverBound("result", r.headers.length);
        if (!this.o.singleResult) throw violation(`scrape ${id}: a result frame, but the stream did not negotiate the feature "single-result"`);
        this.checkChunkSize(id, r.data.byteLength);
        const a = active.get(id);
        if (!a) this.late(id, "result", r.data.byteLength);
        else if (a.head) throw violation(`scrape ${id}: a result after its head`);
        else if (this.head(id, a, r.status, r.headers) && this.data(id, a, r.data, "result")) this.end(id, a, r.error);
        return true;
      }
      default:
        return false;
    }
  }
}
