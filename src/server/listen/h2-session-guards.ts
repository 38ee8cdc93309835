import * as http2 from "node:http2";
import { watchOverheadBytes, type OverheadGuard } from "../../shared/h2-overhead-budget.ts";
import { markBudgetCut } from "../../shared/budget-cut.ts";

/**
 * What one HTTP/2 session may make the server do that serves nobody, judged on one timer for all sessions.
 *
 * Bytes that carry no data (option `maxClientOverheadBytesPerSecond`, src/shared/h2-overhead-budget.ts): nghttp2
 * takes WINDOW_UPDATE, padding, PRIORITY, unknown frames and the HEADERS of streams it refuses in C++ without waking
 * JavaScript. Six connections sending WINDOW_UPDATEs (increment 1) on an open stream held the server at 83-100 % of
 * a core and a good client's scrape p50 went 7 -> 189 ms, for as long as they liked (outside review, round 18a).
 * Each byte the session's socket wrote allows 1/64 of a byte more: the WINDOW_UPDATEs of a peer that reads large
 * answers (13 bytes per DATA frame at worst) grow with them.
 *
 * Streams refused before a handler saw them (option `maxRefusedStreamsPerConnection`): a header list over
 * `maxHeaderListBytes` is reset (RST_STREAM ENHANCE_YOUR_CALM) in C++ and counted nowhere, by nghttp2 nor Node
 * (its `maxSessionRejectedStreams` counts only streams over its own concurrency cap): an HPACK bomb (a 4 KB header
 * table entry referenced 3,000 times per 9 KB HEADERS frame, ~12 MB decoded) kept its connections, four held the
 * server at 59-69 % of a core. The streams the peer opened are `lastProcStreamID` (nghttp2's last stream it
 * processed; a client's ids are odd and rise by two) over two, those handlers saw are counted: the difference
 * was refused (header list too large, too many at once). Past the limit the session ends (GOAWAY
 * ENHANCE_YOUR_CALM). A peer that skips stream ids (allowed, done by no client we know) counts the skipped ones.
 *
 * Costs: per stream a wrapper of `push` (one call per DATA chunk, which already wakes JavaScript), per session and
 * tick a look at its socket's counters; a session that read nothing since the last tick is skipped.
 *
 * @internal
 */
export interface SessionGuardOptions {
  /** Bytes without data a session may read a second, averaged between ticks. */
  overheadBytesPerSecond: number;
  /** Streams refused before a handler saw them that a session may open; one more ends it. */
  maxRefusedStreams: number;
  /** Told each session cut, with the error it is destroyed with (its words name the option; its budget: `budgetCutOf`) and the peer's address. */
  onCut: (error: Error, remote: string | undefined) => void;
  /** Between judgements. Default 2 000 ms. */
  tickMs?: number;
}

/** @internal */
export interface SessionGuards {
  /** Guards a new session (the server's 'session' event). */
  watch(session: http2.ServerHttp2Session): void;
  /** Counts a stream a handler sees, and the DATA it reads. */
  stream(stream: http2.ServerHttp2Stream): void;
  stop(): void;
}

interface Watched {
  overhead: OverheadGuard;
  /** Streams handlers saw. */
  seen: number;
  /** The socket's bytesRead at the last tick. */
  read: number;
  remote: string | undefined;
}

/** The share of bytes written that the overhead budget allows on top (see above). */
const writtenShare = 1 / 64;

/** @internal */
export function createSessionGuards(o: SessionGuardOptions): SessionGuards {
  const watched = new Map<http2.Http2Session, Watched>();
  const cut = (session: http2.Http2Session, w: Watched, message: string) => {
    const error = markBudgetCut(new Error(message), "maxRefusedStreamsPerConnection");
    o.onCut(error, w.remote);
    session.destroy(error, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  };
  const judge = (session: http2.Http2Session, w: Watched) => {
    if (session.destroyed) return;
    const read = Number(session.socket?.bytesRead) || 0;
    if (read === w.read) return;
    w.read = read;
    w.overhead.check(true);
    if (session.destroyed) return;
    let last: number;
    try {
      last = session.state.lastProcStreamID ?? 0;
    } catch {
      return; // destroyed meanwhile
    }
    const refused = Math.ceil(last / 2) - w.seen;
    if (refused > o.maxRefusedStreams) {
      cut(session, w, `the peer opened ${refused} streams the server refused before any handler saw them (a header list over maxHeaderListBytes, too many at once), more than maxRefusedStreamsPerConnection (${o.maxRefusedStreams}) allows`);
    }
  };
  const timer = setInterval(() => {
    for (const [session, w] of watched) judge(session, w);
  }, o.tickMs ?? 2_000);
  timer.unref();
  return {
    watch(session) {
      const remote = session.socket?.remoteAddress;
      const w: Watched = { seen: 0, read: 0, remote, overhead: undefined as unknown as OverheadGuard };
      w.overhead = watchOverheadBytes(
        session,
        o.overheadBytesPerSecond,
        (overhead, seconds) => {
          const message = `the peer sent ${overhead} bytes in ${seconds.toFixed(1)} s that carry no data (frame headers, WINDOW_UPDATE, PRIORITY, padding, refused HEADERS, unknown frames), more than maxClientOverheadBytesPerSecond (${o.overheadBytesPerSecond} a second) allows`;
          const error = markBudgetCut(new Error(message), "maxClientOverheadBytesPerSecond");
          o.onCut(error, remote);
          return error;
        },
        undefined,
        writtenShare,
      );
      watched.set(session, w);
      session.on("close", () => watched.delete(session));
    },
    stream(stream) {
      const w = stream.session && watched.get(stream.session);
      if (!w) return;
      w.seen++;
      const push = stream.push;
      stream.push = function (this: http2.ServerHttp2Stream, chunk: unknown, encoding?: BufferEncoding) {
        if (chunk instanceof Uint8Array) w.overhead.data(chunk.byteLength);
        return push.call(this, chunk, encoding);
      };
    },
    stop: () => clearInterval(timer),
  };
}
