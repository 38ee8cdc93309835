import type * as http2 from "node:http2";
import { Http2SessionManager, type Http2SessionOptions } from "@connectrpc/connect-node";
import { wholeEnvelopes } from "./whole-envelopes.ts";
import { ownSockets } from "./h2-sockets.ts";
import { readCost } from "./frame-budget.ts";
import { defaultControlFramesPerSecond, guardControlFrames, type ControlGuard } from "./h2-control-budget.ts";
import { pingSession, type SessionPings } from "./h2-ping.ts";
import { defaultOverheadBytesPerSecond, guardOverheadBytes, type OverheadGuard } from "./h2-overhead-budget.ts";
import { createBudgetShare, type BudgetSeat, type BudgetShare } from "./h2-budget-share.ts";
import { noteGoaway } from "./goaway-words.ts";

/**
 * connect-node's `Http2SessionManager`, with a permanent `"error"` listener on
 * every HTTP/2 session that carried one of our streams, so that no session
 * error can ever reach the host application as an uncaught exception.
 *
 * Why (connect-node 2.2; connectrpc/connect-es#1768, open, is this bug for a
 * GOAWAY; the PING timeout below is the same bug): the manager destroys a
 * session *with an error* when a PING times out (a stalled or overloaded
 * server) or a GOAWAY arrives on a connection without open streams (a load
 * balancer closing an idle connection), and Node.js emits that error on the
 * session only once its socket has closed. When the manager leaves its
 * "ready" state in between (`abort()`, which our client calls when a stream
 * ends, or a new request on the destroyed session), `onExitState()` removes
 * the manager's `"error"` listener; `abort()` adds a swallowing one only for a
 * session not destroyed yet. The deferred error then has no listener, and
 * Node.js throws it: `Unhandled 'error' event ... PING timed out` kills the
 * process about 15 s into a server stall.
 *
 * The error itself is never lost: it has already failed the stream, so the
 * client reports it (once) as the reason the connection ended. Here it is
 * only logged at debug level.
 *
 * test/e2e/client-survival.test.ts checks that the unwrapped manager still
 * crashes a process in both scenarios; once it does not, drop the listener.
 *
 * Each stream's DATA frames are also counted (what reading it costs, charged
 * to the client's frame budget by either transport), and its body is handed
 * to connect-es in whole gRPC envelopes when the Connect transport iterates
 * it (src/client/whole-envelopes.ts says why; the fast path reads its events),
 * each envelope shown to `read.check` first (the caps on its repeated entries).
 *
 * The connection dials its own sockets (src/client/h2-sockets.ts), and
 * `abort()`, which ends every connection attempt, destroys them all as well:
 * a session destroyed after a GOAWAY no longer frees its socket by itself.
 *
 * Every session also counts the HTTP/2 control frames its server sends, and is
 * destroyed past its share of `control` (option `maxServerControlFramesPerSecond`,
 * src/client/h2-control-budget.ts), and the bytes it sends that carry no data (what its socket read less the DATA
 * our streams took), destroyed past its share of `overhead` (option `maxServerOverheadBytesPerSecond`,
 * src/client/h2-overhead-budget.ts), judged on each tick of our PING timer and as DATA arrives. Both budgets are
 * the client's, shared by all of its sessions (src/client/h2-budget-share.ts: the client hands every connection
 * the same two); a number is a budget for this connection's sessions alone. A session's seats are left when it closes.
 *
 * The HTTP/2 PINGs (`pingOptions.pingIntervalMs` and `pingTimeoutMs`; none without an interval) are our own
 * (src/client/h2-ping.ts), on every session that carried one of our streams; connect-node's are turned off
 * (its interval never arms): its timeout destroyed healthy connections after the host's event loop stalled.
 * A stream's reads (`notifyResponseByteRead`) and its response headers put the next PING off, as they did
 * connect-node's; `abort()` stops them all. The first GOAWAY a session receives is kept as the manager's
 * (src/client/goaway-words.ts): the words for a stream it ended.
 *
 * @internal
 */
export function createH2Connection(
  url: URL,
  pingOptions: Http2SessionOptions,
  http2Options: http2.ClientSessionOptions | http2.SecureClientSessionOptions | undefined,
  onLateSessionError: (error: Error) => void,
  read: { limit: number; pace(cost: number): number; check?(body: Uint8Array): void },
  control: number | BudgetShare = defaultControlFramesPerSecond,
  overhead: number | BudgetShare = defaultOverheadBytesPerSecond,
): Http2SessionManager {
  const [controlShare, overheadShare] = [control, overhead].map((b) => (typeof b === "number" ? createBudgetShare(b) : b)) as [BudgetShare, BudgetShare];
  const sockets = ownSockets(http2Options?.createConnection as Parameters<typeof ownSockets>[0]);
  const { pingIntervalMs, pingTimeoutMs = 15_000 } = pingOptions;
  // Connect's PINGs off: an interval past what a timer takes never arms, and never asks to verify a connection.
  const manager = new Http2SessionManager(url, { ...pingOptions, pingIntervalMs: Number.POSITIVE_INFINITY }, { ...http2Options, createConnection: sockets.createConnection });
  /** Our PINGs on each session not closed yet. */
  const pings = new Map<http2.Http2Session, SessionPings>();
  const abort = manager.abort.bind(manager);
  manager.abort = (reason) => {
    for (const p of pings.values()) p.stop();
    pings.clear();
    abort(reason);
    sockets.release();
  };
  const notify = manager.notifyResponseByteRead.bind(manager);
  manager.notifyResponseByteRead = (stream) => {
    if (stream.session) pings.get(stream.session)?.alive();
    notify(stream);
  };
  const guarded = new WeakMap<http2.Http2Session, ControlGuard>();
  const overheads = new WeakMap<http2.Http2Session, OverheadGuard>();
  const request = manager.request.bind(manager);
  // A session is handed out only through request(); we have the stream (and so its session) before any I/O can
  // happen on it, while the manager's own listener is still attached.
  manager.request = async (...args) => {
    const stream = await request(...args);
    const session = stream.session;
    if (session && !overheads.has(session)) overheads.set(session, guardOverheadBytes(session, seatWhileOpen(session, overheadShare)));
    const guard = session && overheads.get(session);
    countPieces(stream, guard ? (bytes) => guard.data(bytes) : undefined);
    const pieces = stream[Symbol.asyncIterator].bind(stream);
    // Charged once, as the fast path charges: the frames completed or the DATA frames they came in, whichever is more, and a frame more per KiB.
    stream[Symbol.asyncIterator] = () =>
      wholeEnvelopes(pieces(), read.limit, (bytes, envelopes) => read.pace(readCost(Math.max(envelopes, takePieces(stream)), bytes)), read.check);
    if (session && !guarded.has(session)) {
      session.on("error", onLateSessionError);
      noteGoaway(manager, session);
      guarded.set(session, guardControlFrames(session, seatWhileOpen(session, controlShare)));
      if (pingIntervalMs !== undefined && pingIntervalMs <= maxTimerMs && !session.destroyed) {
        pings.set(session, pingSession(session as http2.ClientHttp2Session, { intervalMs: pingIntervalMs, timeoutMs: pingTimeoutMs, onTick: () => guard?.check(true), tickMs: overheadCheckMs }));
        session.once("close", () => pings.delete(session));
      }
    }
    if (session) stream.once("response", () => pings.get(session)?.alive());
    if (session) guarded.get(session)?.exempt(stream);
    return stream;
  };
  return manager;
}

/** A seat at `share` for `session`, left when it closes (at once if it already has). */
function seatWhileOpen(session: http2.Http2Session, share: BudgetShare): BudgetSeat {
  const seat = share.join();
  if (session.closed || session.destroyed) seat.leave();
  else session.once("close", seat.leave);
  return seat;
}

/** The longest delay a Node.js timer takes (a longer one fires at once, with a warning on stderr). */
const maxTimerMs = 0x7fffffff;

/** DATA frames pushed into each stream's buffer and not yet charged. */
/**
 * How often a session's bytes that carry no data are judged while it is quiet (the PING timer ticks this often): a
 * flood nghttp2 takes without waking JavaScript runs this long at most before its cut, and a session costs one
 * unref'd timer tick per period.
 */
const overheadCheckMs = 2_000;

const piecesOf = new WeakMap<http2.ClientHttp2Stream, { n: number }>();

/**
 * Counts what reading a stream costs: each DATA frame is pushed into its buffer on its own, while a reader that
 * was paused gets several of them as one chunk (the Readable joins what waited). `onData` is told each one's bytes.
 * @internal
 */
function countPieces(stream: http2.ClientHttp2Stream, onData?: (bytes: number) => void): void {
  const count = { n: 0 };
  piecesOf.set(stream, count);
  const push = stream.push.bind(stream);
  stream.push = (chunk: unknown, encoding?: BufferEncoding) => {
    count.n++;
    if (onData && chunk instanceof Uint8Array) onData(chunk.byteLength);
    return push(chunk, encoding);
  };
}

/** The DATA frames pushed into `stream` since the last call (at least 1: a chunk taken costs one). @internal */
export function takePieces(stream: http2.ClientHttp2Stream): number {
  const count = piecesOf.get(stream);
  const n = Math.max(1, count?.n ?? 0);
  if (count) count.n = 0;
  return n;
}
