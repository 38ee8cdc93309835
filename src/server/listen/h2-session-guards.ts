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
 * Each byte the session's socket wrote, and each byte of DATA it read, allows 1/64 of a byte more: the
 * WINDOW_UPDATEs of a peer that reads large answers (13 bytes per DATA frame at worst) grow with them, and so does
 * the slack for a large result's DATA still in a native read at a check (before DATA counted, an honest client
 * sending 2 MB results was cut at the lowest limit now and then: 66-72 KB in a second against 64 KiB).
 *
 * Streams whose header block the server refused (option `maxRefusedStreamsPerConnection`): a header list over
 * `maxHeaderListBytes` (or Node's 128 pairs) is reset (RST_STREAM ENHANCE_YOUR_CALM) in C++ and counted nowhere, by
 * nghttp2 nor Node (its `maxSessionRejectedStreams` counts only streams over its own concurrency cap): an HPACK bomb
 * (a 4 KB header table entry referenced 3,000 times per 9 KB HEADERS frame, ~12 MB decoded) kept its connections,
 * four held the server at 59-69 % of a core. Counted two ways: the streams the peer opened are `lastProcStreamID`
 * (nghttp2's last stream it processed; a client's ids are odd and rise by two) over two, less those handlers saw;
 * and a stream a handler saw that Node reset with ENHANCE_YOUR_CALM (its trailers were such a bomb; round 19: ten
 * connections of trailer bombs held the server at 64 % of a core; the server's own code never resets with that
 * code, a peer resetting its own streams with it counts them too). Past the limit the session ends (GOAWAY
 * ENHANCE_YOUR_CALM). A peer that skips stream ids (allowed, done by no client we know) counts the skipped ones.
 *
 * Not counted: streams refused for concurrency before the peer acknowledged our SETTINGS. The server sends them
 * once it has sniffed the first bytes, so a client's first burst assumes the common default of 100 streams at once
 * (nghttp2, Go); the streams over `streamsAtOnce` get REFUSED_STREAM (retryable) and the client retries them with
 * new ids. nghttp2 does not count them as processed: they show as skipped ids once a later stream is. Counted,
 * they cut honest multiplexing clients (round 19: `h2load -m 40 -c 1`, 5,440 of 30,000 requests answered, the log
 * blaming header lists). At the peer's SETTINGS ACK (the session's 'localSettings' event), if handlers saw at least
 * `streamsAtOnce` streams by then (else none can have been refused for concurrency: HPACK bombs sent before the
 * ACK are counted), the streams that would make 100 with those processed are excused. Once the peer acknowledged,
 * a stream over the limit is a connection error in nghttp2, not a refusal. A session that has not acknowledged by
 * its second check is judged on all its refusals, and a later ACK excuses none.
 *
 * Costs: per stream a wrapper of `push` (one call per DATA chunk, which already wakes JavaScript), per session and
 * tick a look at its socket's counters (the overhead window restarts at each tick, read or not: a session silent for a
 * while earns no allowance for a burst after; round 19), a listener per stream for its close; a session that read
 * nothing since the last tick is not judged for its refusals.
 *
 * @internal
 */
export interface SessionGuardOptions {
  /** Bytes without data a session may read a second, averaged between ticks. */
  overheadBytesPerSecond: number;
  /** Streams whose header blocks (HEADERS or trailers) were refused that a session may open; one more ends it. */
  maxRefusedStreams: number;
  /** The streams a session may have open at once (the SETTINGS sent): refusals for it before the ACK are excused. */
  streamsAtOnce: number;
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
  /** Streams handlers saw that Node reset with ENHANCE_YOUR_CALM (their trailers were refused). */
  calm: number;
  /** Unseen streams excused at the peer's SETTINGS ACK (refused for concurrency before it); undefined before it. */
  excused: number | undefined;
  /** Checks since the session began. */
  ticks: number;
  /** The socket's bytesRead at the last tick. */
  read: number;
  remote: string | undefined;
}

/** The streams clients (nghttp2, Go) open at once before the server's SETTINGS: refusals up to it are excused. */
const assumedAtOnce = 100;

/** The streams the peer opened that no handler saw. */
function unseen(session: http2.Http2Session, w: Watched): number | undefined {
  try {
    return Math.ceil((session.state.lastProcStreamID ?? 0) / 2) - w.seen;
  } catch {
    return undefined; // destroyed meanwhile
  }
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
    w.ticks++;
    w.overhead.check(true); // read or not: silence earns no allowance
    if (session.destroyed) return;
    const read = Number(session.socket?.bytesRead) || 0;
    if (read === w.read) return;
    w.read = read;
    if (w.excused === undefined && w.ticks < 2) return; // its SETTINGS ACK may be on its way
    const gap = unseen(session, w);
    if (gap === undefined) return;
    const refused = Math.max(0, gap - (w.excused ?? 0)) + w.calm;
    if (refused > o.maxRefusedStreams) {
      cut(session, w, `the peer opened ${refused} streams whose header blocks the server refused (a header list over maxHeaderListBytes, as HEADERS or trailers), more than maxRefusedStreamsPerConnection (${o.maxRefusedStreams}) allows`);
    }
  };
  const timer = setInterval(() => {
    for (const [session, w] of watched) judge(session, w);
  }, o.tickMs ?? 2_000);
  timer.unref();
  return {
    watch(session) {
      const remote = session.socket?.remoteAddress;
      const w: Watched = { seen: 0, calm: 0, excused: undefined, ticks: 0, read: 0, remote, overhead: undefined as unknown as OverheadGuard };
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
      session.once("localSettings", () => {
        const gap = unseen(session, w);
        // A late ACK (after the second check, its refusals judged already) excuses none.
        const excusable = gap !== undefined && w.ticks < 2 && w.seen >= o.streamsAtOnce;
        w.excused = excusable ? Math.max(0, assumedAtOnce - w.seen - gap) : 0;
      });
    },
    stream(stream) {
      const w = stream.session && watched.get(stream.session);
      if (!w) return;
      w.seen++;
      stream.once("close", () => {
        if (stream.rstCode === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM) w.calm++;
      });
      const push = stream.push;
      stream.push = function (this: http2.ServerHttp2Stream, chunk: unknown, encoding?: BufferEncoding) {
        if (chunk instanceof Uint8Array) w.overhead.data(chunk.byteLength);
        return push.call(this, chunk, encoding);
      };
    },
    stop: () => clearInterval(timer),
  };
}
