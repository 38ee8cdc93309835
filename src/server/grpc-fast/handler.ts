import * as http2 from "node:http2";
import { Code, ConnectError, type ContextValues, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import type { ClientFrame } from "../../../gen/promproxy/v1/scrape_pb.ts";
import { identityKey } from "../../auth/stream/identity.ts";
import { peerKey } from "../../auth/stream/peer.ts";
import { endReason } from "../end-reason.ts";
import { reportRefusal, welcomeFrame, type ScrapeServiceDeps } from "../scrape-service.ts";
import type { ServerFrameInit, Session } from "../session.ts";
import { runChain, type CallOutcome } from "./call.ts";
import { chunkFrame, readChunkStart } from "./chunk-pass.ts";
import { createFrameReader } from "./frame-reader.ts";
import { createFrameWriter, toConnectError, type CallMetadata, type FrameWriter } from "./frame-writer.ts";
import { closedError, decodeClientFrame, encodeServerFrame, streamMessages } from "./messages.ts";
import { serveWrapped } from "./wrapped.ts";
import { parseGrpcTimeout } from "./timeout.ts";

/** @internal */
export interface FastPathDeps extends ScrapeServiceDeps {
  /** The server's Connect interceptors, outermost first (as given to Connect). */
  interceptors: Interceptor[];
  /** The context values of a call, from its connection (as given to Connect). */
  contextValues: (req: { readonly socket: unknown; readonly stream?: unknown }) => ContextValues;
  /** Largest message read (as given to Connect). */
  readMaxBytes: number;
  /** The Scrape handler on Connect's contract, for chains that wrap messages. */
  scrape: (requests: AsyncIterable<ClientFrame>, ctx: HandlerContext) => AsyncIterable<ServerFrameInit>;
}

const scrapePath = "/promproxy.v1.ScrapeService/Scrape";
/** The gRPC content types in protobuf (JSON and anything else stay with Connect). */
const grpcProto = /^application\/grpc(?:\+proto)?$/i;
const responseType = "application/grpc+proto";
/** Server messages joined into one write at most (a batch stays small; the next one follows at once). */
const maxBatch = 256;

/**
 * The Scrape RPC's gRPC protocol on a raw HTTP/2 stream: `take` claims a
 * stream it serves (POST to the Scrape path, gRPC in protobuf, no message
 * compression announced) and returns false for anything else, which Connect
 * serves. The call runs the server's interceptors as Connect would
 * (call.ts), then feeds the same coordinator and session API as
 * scrape-service.ts: hello, admission, welcome, frames both ways.
 *
 * @internal
 */
export function createFastScrape(deps: FastPathDeps): (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean {
  return function take(stream, headers) {
    if (headers[":path"] !== scrapePath || headers[":method"] !== "POST") return false;
    const type = headers["content-type"];
    if (typeof type !== "string" || !grpcProto.test(type)) return false;
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false; // compressed messages: Connect decompresses them
    void serve(deps, stream, headers);
    return true;
  };
}

async function serve(deps: FastPathDeps, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Promise<void> {
  const ac = new AbortController();
  let closeError: Error | undefined;
  // 'close' and 'end' come once: listened with `on`, as `once` keeps a wrapper and a bound function per listener
  // for the stream's whole life (one stream per connected client).
  stream.on("error", (e) => (closeError ??= e));
  stream.on("close", () => ac.abort(closedError(stream, closeError)));
  let meta: CallMetadata | undefined;
  const writer = createFrameWriter(stream, responseType, () => meta);
  let fast = false;
  let outcome: CallOutcome;
  try {
    outcome = await runChain(headers, deps.contextValues({ socket: stream.session?.socket, stream }), ac.signal, deps.interceptors, {
      messages: () => {
        if (fast) throw new ConnectError("an interceptor read the request stream after the call started; use the server option fastPath: false", Code.Internal);
        return streamMessages(stream, deps.readMaxBytes, deps.options);
      },
      wrapped: (messages, req) => deps.scrape(messages, { values: req.contextValues, signal: req.signal, requestHeader: req.header } as HandlerContext),
    });
  } catch (e) {
    // Refused by an interceptor (logRefusals counted and logged it): Trailers-Only.
    writer.end(toConnectError(e));
    stream.resume();
    return;
  }
  // Only what the writer needs: the request (its Headers, the chain's closures) is not kept for the stream's life.
  meta = { header: outcome.response.header, trailer: outcome.response.trailer };
  if (outcome.kind === "wrapped") return serveWrapped(writer, stream, outcome.response.message);
  fast = true;
  serveFast(deps, stream, headers, writer, outcome.request.contextValues, ac.signal);
}

type State = "hello" | "joining" | "open" | "done";

function serveFast(
  deps: FastPathDeps,
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  writer: FrameWriter,
  values: ContextValues,
  signal: AbortSignal,
): void {
  const { options: o, coordinator, metrics } = deps;
  const log = o.logger;
  let state: State = "hello";
  let release: (() => void) | undefined;
  let session: Session | undefined;
  let name: string | undefined;
  /** Frames that arrived with the hello, for the session once it exists; whether the client ended meanwhile. */
  const early: ClientFrame[] = [];
  let endedEarly = false;
  let reason = "stream ended";
  /** Set when the stream ends in any way but the client closing its side cleanly: it vanished. */
  let broke = true;
  let scheduled = false;

  function refuse(e: unknown) {
    if (state === "open" || state === "done") return;
    state = "done";
    clearTimers();
    release?.();
    release = undefined;
    writer.end(reportRefusal(deps, e, name, values), true); // what the client still sends is left unread
  }

  /** The session ended (its outbound queue closed): trailers with its status, the name freed. */
  function finish(error: unknown) {
    if (state === "done") return;
    state = "done";
    clearTimers();
    const s = session!;
    const err = error === undefined ? undefined : ConnectError.from(error);
    if (err) reason = endReason(err, signal.reason);
    s.close(err && new ConnectError(reason, err.code)); // its scrapes in flight are told why, in words
    const leave = () => {
      coordinator.leave(s, { reason, broke });
      log.info("client disconnected", { client: s.info.name, session: s.info.sessionId, reason });
    };
    writer.end(err, err !== undefined);
    if (!err) stream.resume();
    if (broke || stream.closed || stream.destroyed) return leave();
    // The client ended its side (a goodbye), unless it resets the stream before our trailers are out: Node's
    // `stream.close(code)` sends END_STREAM and RST_STREAM back to back. Judged when the stream has closed.
    stream.once("close", () => {
      if ((stream.rstCode ?? 0) !== 0) {
        broke = true;
        reason = endReason(closedError(stream), signal.reason);
      }
      leave();
    });
  }

  function pump() {
    scheduled = false;
    if (state !== "open") return;
    const q = session!.outbound;
    while (writer.writable && q.size > 0) {
      const pieces: Uint8Array[] = [];
      for (let i = 0; i < maxBatch; i++) {
        const f = q.shift();
        if (f === undefined) break;
        encodeServerFrame(f, pieces);
      }
      writer.write(pieces);
    }
    if (q.size === 0 && q.closed) return finish(q.error);
    if (q.closed && q.error !== undefined && !writer.writable) {
      // Closed for good (a client that stopped reading, a shutdown) while its peer takes nothing: the frames
      // still queued and the status could wait forever behind unread data, so the stream is reset instead.
      finish(q.error);
      return stream.close(http2.constants.NGHTTP2_CANCEL);
    }
    if (writer.ended) return; // the stream is gone: its close handler ends the session
    // Woken by the next frame or the close (even while blocked: a close must not wait for a drain), or the drain.
    if (!writer.writable) writer.onDrain(schedule);
    q.onReady(schedule);
  }
  function schedule() {
    if (scheduled) return;
    scheduled = true;
    process.nextTick(pump);
  }

  function opened(s: Session) {
    if (state !== "joining") {
      // The stream went away while the coordinator was admitting it.
      coordinator.leave(s, { reason, broke: true });
      s.close();
      return;
    }
    release?.();
    release = undefined;
    state = "open";
    session = s;
    metrics.sessions.inc({ result: "accepted" });
    log.info("client connected", { client: s.info.name, session: s.info.sessionId, identity: s.info.identity });
    const pieces: Uint8Array[] = [];
    encodeServerFrame(welcomeFrame(o, s, deps.replicaSet), pieces);
    writer.write(pieces);
    try {
      for (const f of early.splice(0)) s.receive(f);
    } catch (e) {
      failed(ConnectError.from(e));
      return pump(); // ends the stream with that status (nothing else would: the pump has not started)
    }
    if (endedEarly) {
      broke = false;
      s.close();
    } else {
      stream.resume();
    }
    pump();
  }

  /** The client broke the protocol (or the read limit): the stream ends with that status. */
  function failed(err: ConnectError) {
    if (state !== "open") return refuse(err);
    reason = endReason(err, signal.reason);
    session!.close(err);
  }

  const reader = createFrameReader({
    readMaxBytes: deps.readMaxBytes,
    onMessage(bytes) {
      if (state === "done") return;
      const frame = decodeClientFrame(bytes, o);
      if (state === "open") return session!.receive(frame);
      if (state === "joining") return void early.push(frame);
      if (frame.frame.case !== "hello") {
        throw new ConnectError(`the first frame must be a hello, got ${frame.frame.case ?? "an empty frame"}`, Code.FailedPrecondition);
      }
      state = "joining";
      clearTimeout(helloTimer);
      helloTimer = undefined; // a cleared Timeout still takes 128 bytes while referenced, for the stream's life
      stream.pause(); // until the coordinator decides: a client cannot pile up frames meanwhile
      name = frame.frame.value.name.slice(0, 253);
      coordinator.join(frame.frame.value, values.get(identityKey), values.get(peerKey)?.remoteAddress).then(opened, refuse);
    },
    onError: failed,
    // A large chunk's body leaves as its pieces arrive (chunk-pass.ts).
    onStart(first, length) {
      if (state !== "open") return undefined;
      const c = readChunkStart(first, length);
      if (c === undefined || !session!.takesChunk(c.scrapeId, c.length)) return undefined;
      const s = session!;
      const pass = (piece: Uint8Array) => {
        if (state === "open") s.receive(chunkFrame(c.scrapeId, piece));
      };
      if (first.byteLength > c.offset) pass(first.subarray(c.offset));
      return pass;
    },
  });

  let helloTimer: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  function clearTimers() {
    clearTimeout(helloTimer);
    clearTimeout(deadline);
    helloTimer = deadline = undefined;
  }

  // Reset while the interceptors ran (its 'close' came before this listens, often in the same read): no place taken,
  // else it kept one until the hello timeout (outside review 18a: resets in a loop shut honest clients out).
  if (signal.aborted) return refuse(ConnectError.from(signal.reason));
  try {
    const timeout = parseGrpcTimeout(headers["grpc-timeout"]);
    release = coordinator.admit();
    if (timeout !== undefined) {
      // The client's deadline for the whole call (gRPC spec): past it, the call ends with DEADLINE_EXCEEDED.
      deadline = setTimeout(() => failed(new ConnectError(`the call's grpc-timeout of ${timeout} ms passed`, Code.DeadlineExceeded)), Math.min(timeout, 2 ** 31 - 1));
      deadline.unref();
    }
  } catch (e) {
    return refuse(e);
  }
  helloTimer = setTimeout(() => refuse(new ConnectError(`no hello within ${o.helloTimeoutMs / 1000}s`, Code.DeadlineExceeded)), o.helloTimeoutMs);

  stream.on("data", (chunk: Buffer) => reader.push(chunk));
  // A request stream ended by an empty DATA frame ends even unread: while the chain ran, 'end' may have passed.
  if (stream.readableEnded) process.nextTick(onEnd);
  else stream.on("end", onEnd);
  function onEnd() {
    if (stream.aborted || (stream.rstCode ?? 0) !== 0) return;
    reader.end();
    if (reader.failed) return;
    if (state === "hello") return refuse(new ConnectError("the stream ended before a hello", Code.FailedPrecondition));
    if (state === "joining") endedEarly = true;
    if (state !== "open") return;
    broke = false;
    session!.close();
  }
  // The stream's close, as serve() turns it into the signal's abort (one before this point was refused above).
  signal.addEventListener("abort", () => {
    if (state === "done") return;
    const err = ConnectError.from(signal.reason);
    if (state !== "open") return refuse(err);
    reason = endReason(err, signal.reason);
    session!.close(new ConnectError(reason, err.code)); // its scrapes in flight are told why, in words
    finish(undefined);
  });
}
