/**
 * The Scrape stream on a raw HTTP/2 stream of our guarded session: gRPC
 * framing without Connect's per-message pipeline.
 *
 * Writing: frames queued within one turn of the event loop leave as one
 * corked batch (one writev, no promise per frame); the next batch is taken
 * from the outgoing queue only once the previous one was written, so the
 * queue's bounds and its "nothing left for N seconds" clock see the server's
 * flow control exactly as they do behind connect-es. A closed queue ends the
 * request side (END_STREAM).
 *
 * Reading: the server's frames are parsed as the bytes come (frame-codec)
 * and handed to `onFrame` synchronously; the status at the end (trailers or
 * Trailers-Only headers), RST_STREAM, GOAWAY and socket errors end the
 * stream with the ConnectError connect-es gives for them (grpc-status.ts).
 *
 * @internal
 */
import type * as http2 from "node:http2";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServerFrame } from "../../../gen/promproxy/v1/scrape_pb.ts";
import { takePieces } from "../h2-connection.ts";
import type { OutQueue } from "../out-queue.ts";
import type { EntryLimits } from "../frame-entries.ts";
import { createFrameReader, frameBuffers } from "./frame-codec.ts";
import { readCost } from "../frame-budget.ts";
import { checkResponse, checkTrailers, closedBeforeStatus, errorFromNode, errorFromRstCode, webHeaders } from "./grpc-status.ts";
import type { FastRequest } from "./request-headers.ts";

/** What one fast stream needs. */
export interface FastStreamOptions {
  sessionManager: Http2SessionManager;
  request: FastRequest;
  /** The call's signal: aborting it resets the stream (CANCEL for Code.Canceled, else INTERNAL_ERROR). */
  signal: AbortSignal;
  out: OutQueue;
  /** Largest server frame read (maxServerFrameBytes). */
  readLimit: number;
  /** The caps on a server frame's repeated entries, counted before it is decoded (the client's `maxReplicas`). */
  entries: EntryLimits;
  /** Each server frame, in order. What it throws ends the stream with that error. */
  onFrame(frame: ServerFrame): void;
  /**
   * Milliseconds to stop reading after reading `cost` (frames, each chunk at least one, a frame per KiB besides):
   * the frame budget, our answers' backlog. Flow control holds the server meanwhile.
   */
  pace(cost: number): number;
}

/** How often at most a read is reported to the session manager (it skips keep-alive PINGs while data flows). */
const aliveNoticeMs = 1_000;

/**
 * Opens the stream and serves it. Resolves when the server ended it with
 * an OK status; rejects with a ConnectError for every other end. Nothing
 * escapes as an event or an unhandled rejection.
 */
export function runFastStream(o: FastStreamOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    let stream: http2.ClientHttp2Stream | undefined;
    let header: Headers | undefined;
    let foundStatus = false;
    let trailers = new Headers();
    let lastNotice = 0;
    /** Frames read since `pace` was last told, and the timer of a pause it asked for. */
    let read = 0;
    let resumeTimer: NodeJS.Timeout | undefined;
    const signals = o.request.signal === o.signal ? [o.signal] : [o.signal, o.request.signal];

    const onAbort = function (this: AbortSignal) {
      const r: unknown = this.reason;
      fail(r instanceof ConnectError ? r : ConnectError.from(r, Code.Canceled));
    };
    function cleanup() {
      for (const s of signals) s.removeEventListener("abort", onAbort);
      o.out.onReady(() => {});
      clearTimeout(resumeTimer);
    }
    function fail(e: ConnectError) {
      if (settled) return;
      settled = true;
      cleanup();
      // A stream we give up on is reset, as connect-es resets it: CANCEL when cancelled, else INTERNAL_ERROR.
      if (stream && !stream.closed) {
        try {
          stream.close(e.code === Code.Canceled ? 8 : 2);
        } catch {
          stream.destroy();
        }
      }
      reject(e);
    }
    /** `connectionLost`: the stream ended with its connection, not with the server's END_STREAM. */
    function finish(connectionLost: boolean) {
      if (settled) return;
      // No HEADERS frame at all: what a client sees when the server's header block was too large to be sent.
      const e = header === undefined
        ? connectionLost
          ? closedBeforeStatus(true)
          : new ConnectError("the server ended the stream without response headers (none came, or a header block too large for this client was dropped)", Code.Internal)
        : checkTrailers(trailers, header, connectionLost);
      if (e) return fail(e);
      settled = true;
      cleanup();
      resolve();
    }

    for (const s of signals) {
      if (s.aborted) return onAbort.call(s);
      s.addEventListener("abort", onAbort);
    }

    const reader = createFrameReader({
      readLimit: o.readLimit,
      entries: o.entries,
      onFrame: (f) => {
        read++;
        if (!settled) o.onFrame(f); // a frame that ended the stream ends its chunk's later frames too
      },
    });

    o.sessionManager.request("POST", o.request.path, o.request.headers, {}).then((s) => {
      stream = s;
      if (settled) {
        s.close(8);
        return;
      }
      s.on("error", (e) => {
        // Writing after the server ended the stream (it already answered): its answer decides, not this error.
        if (s.writableEnded && (e as { code?: string }).code === "ERR_STREAM_WRITE_AFTER_END") return;
        fail(errorFromNode(e));
      });
      s.on("close", () => {
        const e = errorFromRstCode(s.rstCode);
        if (e) fail(e);
        else if (!settled) fail(new ConnectError("Premature close", Code.Unknown)); // connect-es's words for it
      });
      s.on("response", (h) => {
        header = webHeaders(h);
        try {
          foundStatus = checkResponse(Number(h[":status"] ?? 0), header).foundStatus;
        } catch (e) {
          fail(ConnectError.from(e, Code.Internal));
        }
      });
      s.on("trailers", (t) => {
        trailers = webHeaders(t);
      });
      s.on("data", (chunk: Buffer) => {
        if (settled || !header) return;
        const now = Date.now();
        if (now - lastNotice > aliveNoticeMs) {
          lastNotice = now;
          o.sessionManager.notifyResponseByteRead(s);
        }
        try {
          reader.push(chunk);
        } catch (e) {
          return fail(e instanceof ConnectError ? e : ConnectError.from(e, Code.Internal));
        }
        // A chunk costs its frames, or the DATA frames it came in if more (a server dripping a byte per DATA
        // frame), and a frame more per 64 bytes past 256 a frame (frames packed with tiny entries): paced by what reading costs.
        const wait = o.pace(readCost(Math.max(read, takePieces(s)), chunk.byteLength));
        read = 0;
        if (wait > 0 && !settled) {
          s.pause(); // the chunk's frames are served; the next bytes wait in the server's buffers
          const resumeWhenDue = () => {
            resumeTimer = undefined;
            if (settled) return;
            const more = o.pace(0); // still in debt, or our answers still waiting to leave
            if (more > 0) resumeTimer = setTimeout(resumeWhenDue, more);
            else s.resume();
          };
          resumeTimer = setTimeout(resumeWhenDue, wait);
        }
      });
      s.on("end", () => {
        // A stream that ends already destroyed and without its session was ended by its connection closing (the
        // server's END_STREAM leaves both in place until the end is read): whatever came last was cut off.
        const connectionLost = s.destroyed && (s.session === undefined || s.session.destroyed);
        if (!reader.idle) return fail(connectionLost ? closedBeforeStatus() : new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
        if (foundStatus) trailers = new Headers();
        finish(connectionLost);
      });
      startWriter(s);
    }, (e: unknown) => fail(errorFromNode(e)));

    /**
     * Writes queued frames in batches, one batch in flight at a time; ends the request side when the queue closes.
     * A batch is written on the next tick, not on `setImmediate`: node:http2 sends a session's data from a native
     * immediate, which a write made inside the check phase only reaches on the loop's next turn (one poll more between
     * the exporter's answer and its frames leaving; `bench/hop-trace.ts`).
     */
    function startWriter(s: http2.ClientHttp2Stream) {
      let writing = false;
      let scheduled = false;
      const pump = () => {
        scheduled = false;
        if (settled || writing || s.writableEnded || s.destroyed) return;
        let frame = o.out.take();
        if (!frame) {
          if (o.out.closed) s.end();
          else o.out.onReady(schedule);
          return;
        }
        s.cork();
        let last: Uint8Array | undefined;
        let pending: Uint8Array[] = [];
        for (; frame; frame = o.out.take()) {
          for (const b of frameBuffers(frame)) {
            if (last) pending.push(last);
            last = b;
          }
        }
        for (const b of pending) s.write(b);
        pending = [];
        writing = true;
        s.write(last as Uint8Array, () => {
          writing = false;
          pump();
        });
        s.uncork();
      };
      const schedule = () => {
        if (scheduled) return;
        scheduled = true;
        process.nextTick(pump);
      };
      pump();
    }
  });
}
