import type { ScrapeOrder, Welcome } from "../../gen/promproxy/v1/scrape_pb.ts";
import type { Logger } from "../shared/logger.ts";
import { pathMatches } from "../shared/paths.ts";
import type { OutQueue } from "./out-queue.ts";
import type { ScrapeSlots } from "./scrape-slots.ts";
import { clampDuration, maxCredit, orderTimeoutRangeMs } from "./server-limits.ts";
import { ScrapeErrorReason, TargetError, type ResultWriter, type ScrapeTarget } from "./targets/target.ts";

export type { ClientFrameInit } from "./out-queue.ts";

/** A scrape being served: the connection feeds it the server's credit and cancels. @internal */
export interface ScrapeRun {
  credit(bytes: number): void;
  abort(reason: TargetError): void;
}

/** What serving scrapes on one stream needs. @internal */
export interface ScrapeContext {
  /** The client's name, for messages. */
  name: string;
  targets: ScrapeTarget[];
  /** The client's places for scrapes at work, shared by all its streams. */
  slots: ScrapeSlots;
  log: Logger;
  /** The server's welcome on this stream (its limits, `max_chunk_bytes` already checked against the floor). */
  welcome: Welcome;
  /** The scrapes in flight on this stream, by id. */
  scrapes: Map<bigint, ScrapeRun>;
  /** The stream's outgoing frames. */
  out: OutQueue;
}

const noBody = new Uint8Array(0);
/** What a write that queued nothing (or held its bytes) returns: no promise made per write. */
const done = Promise.resolve();

/**
 * Serves one scrape order: finds the target, streams head, chunks (within the
 * server's credit) and end, or one result frame for a small body (feature
 * "single-result"), honours cancel and the order's timeout. Never
 * throws, synchronously or later: every failure becomes an `end` with a reason.
 *
 * @internal
 */
export function startScrape(order: ScrapeOrder, ctx: ScrapeContext): void {
  const { name, out, scrapes } = ctx;
  const id = order.scrapeId;
  const fail = (reason: ScrapeErrorReason, message: string) =>
    void out.push({ frame: { case: "end", value: { scrapeId: id, error: { reason, message } } } });
  if (scrapes.has(id)) return; // a repeated id is the server's bug; ignore it
  const target = ctx.targets.find((t) => (t.port === 0 || t.port === order.port) && pathMatches(t.path, order.path));
  if (!target) return fail(ScrapeErrorReason.NOT_FOUND, `client "${name}" serves nothing at port ${order.port} path ${JSON.stringify(order.path.slice(0, 200))}`);
  const full = ctx.slots.refusal(target, name);
  if (full) return fail(ScrapeErrorReason.BUSY, full);

  // Unset or zero: 10 s; clamped to 1 ms - 1 h before it reaches a timer (PROTOCOL.md).
  const timeoutMs = clampDuration(order.timeout, orderTimeoutRangeMs);
  const ac = new AbortController();
  const timer = setTimeout(() => stop(new TargetError(ScrapeErrorReason.TIMEOUT, `scrape timed out after ${timeoutMs / 1000}s`)), timeoutMs);
  let credit = Math.min(maxCredit, Number(order.creditBytes) || 0);
  let wake: (() => void) | undefined;
  // Never above the server's limit (a chunk over it ends the stream). A little under a large
  // limit, so that the frame around a chunk fits a power-of-two buffer in the protobuf writer,
  // which grows by doubling: half the allocation and copying per relayed byte.
  const chunkLimit = Math.min(1024 * 1024, ctx.welcome.limits?.maxChunkBytes || 64 * 1024);
  const maxChunk = chunkLimit >= 64 * 1024 ? chunkLimit - 64 : chunkLimit;
  let headSent = false;
  /**
   * With the feature "single-result", a head whose content-length fits one
   * chunk within the credit (or a HEAD order's) waits, and so does a first
   * write of exactly that length, until the target ends: a small result then
   * leaves as one `result` frame instead of three, if the stream's queue has
   * room for it (settle, below). Any other write sends the head (and what
   * waited) at once, as without the feature.
   */
  const single = ctx.welcome.features.includes("single-result");
  let held: { status: number; headers: { name: string; value: string }[] } | undefined;
  let heldLength = -1;
  let heldData: Uint8Array | undefined;

  scrapes.set(id, {
    credit(bytes) {
      credit = Math.min(maxCredit, credit + bytes);
      wake?.();
    },
    abort: stop,
  });
  ctx.slots.take(target); // free: checked above, nothing ran since
  /** Ends the scrape once: an end frame (with the error, if any), its timer and listener released. */
  let over = false;
  const finish = (e?: unknown) => {
    if (over) return;
    over = true;
    clearTimeout(timer);
    scrapes.delete(id);
    try {
      if (e === undefined && !ac.signal.aborted && held) {
        const data = heldData ?? noBody; // its bytes counted as a chunk's: the queue had room (settle, below)
        out.push({ frame: { case: "result", value: { scrapeId: id, status: held.status, headers: held.headers, data } } }, data.byteLength);
      } else if (e === undefined && !ac.signal.aborted && headSent) {
        out.push({ frame: { case: "end", value: { scrapeId: id } } });
      } else {
        const err = e instanceof TargetError ? e : e === undefined ? new TargetError(ScrapeErrorReason.INTERNAL, "the target produced no result")
          : new TargetError(ScrapeErrorReason.INTERNAL, e instanceof Error ? e.message : String(e));
        // A cancelled scrape gets no further frames; the server has forgotten it (an end is harmless though).
        fail(err.reason, err.message);
        if (err.reason !== ScrapeErrorReason.CANCELLED) ctx.log.debug("scrape failed", { name, scrape: String(id), reason: err.message });
      }
    } catch {
      // a throwing logger must not break the stream
    }
  };
  /**
   * Cancelled or timed out: answered at once, whatever the target is still
   * doing; then its signal aborts. A scrape that ends otherwise leaves the
   * signal alone: its target is done, and the listeners it added go with it.
   */
  function stop(reason: TargetError) {
    if (over) return;
    wake?.();
    finish(reason);
    ac.abort(reason);
  }

  const headOnly = order.method === "HEAD";
  const writer: ResultWriter = {
    chunkBytes: maxChunk,
    head(status, headers) {
      if (headSent || ac.signal.aborted) return;
      headSent = true;
      const head = { status, headers: Object.entries(headers).map(([name, value]) => ({ name, value })) };
      const length = headers["content-length"];
      heldLength = headOnly ? 0 : length !== undefined && /^\d{1,15}$/.test(length) ? Number(length) : -1;
      if (single && heldLength >= 0 && heldLength <= Math.min(maxChunk, credit)) held = head;
      else out.push({ frame: { case: "head", value: { scrapeId: id, ...head } } });
    },
    write(data) {
      if (headOnly) return done; // a HEAD order (feature "head"): the head says it all
      // Body bytes that are the whole declared body wait with the head: the result goes as one frame.
      if (held && heldData === undefined && data.byteLength === heldLength) {
        heldData = data;
        credit -= data.byteLength;
        return done;
      }
      return send(data);
    },
  };
  async function send(data: Uint8Array): Promise<void> {
    if (held) {
      const { status, headers } = held;
      held = undefined;
      out.push({ frame: { case: "head", value: { scrapeId: id, status, headers } } });
      if (heldData !== undefined && heldData.byteLength > 0) {
        await out.writeChunk({ frame: { case: "chunk", value: { scrapeId: id, data: heldData } } }, heldData.byteLength, ac.signal);
      }
      heldData = undefined;
    }
    let offset = 0;
    while (offset < data.byteLength) {
      if (ac.signal.aborted) throw ac.signal.reason;
      if (credit <= 0) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      const n = Math.min(maxChunk, credit, data.byteLength - offset);
      credit -= n;
      // Waits while earlier chunks are still queued: the body leaves as fast as the server reads, no faster.
      await out.writeChunk({ frame: { case: "chunk", value: { scrapeId: id, data: data.subarray(offset, offset + n) } } }, n, ac.signal);
      offset += n;
    }
  }

  const headers: Record<string, string> = {};
  for (const h of order.headers) headers[h.name.toLowerCase()] = h.value;
  // A target that throws synchronously fails its scrape, not the stream.
  let served: Promise<void>;
  try {
    served = Promise.resolve(target.serve({ port: order.port, path: order.path, scheme: order.scheme || "http", headers, timeoutMs, signal: ac.signal }, writer));
  } catch (e) {
    served = Promise.reject(e);
  }
  /**
   * The target is done: the scrape ends. A held body finding the queue full
   * (the server reads slowly, or nothing) leaves as head and chunk through
   * `writeChunk`, which waits for room, then the end; the scrape keeps its
   * place meanwhile, so a server that reads nothing makes the host hold at
   * most `maxScrapesInFlight` bodies, not one per order.
   */
  const settle = async (e?: unknown) => {
    if (e === undefined && !over && held && heldData !== undefined && heldData.byteLength > 0 && out.full) {
      try {
        await send(noBody);
      } catch (err) {
        e = err;
      }
    }
    finish(e);
    ctx.slots.release(target);
  };
  // The scrape is answered when it ends or is abandoned (timeout, cancel); its place is freed only once the
  // target's work has ended too: a render cannot be interrupted, and a server with 1 ms timeouts must not
  // make the host run more than maxScrapesInFlight of them at once.
  served.then(
    () => void settle(),
    (e: unknown) => void settle(e ?? new TargetError(ScrapeErrorReason.INTERNAL, "the target failed")),
  );
}
