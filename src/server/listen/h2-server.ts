import * as http2 from "node:http2";
import { connectRefusal } from "./bad-request.ts";
import { limitUnsentAnswers, type UnsentBudget } from "./answer-slices.ts";
import { watchUnreadAnswers } from "./unread-answers.ts";
import { lateTicks } from "../../shared/late-tick.ts";
import { defaultOverheadBytesPerSecond } from "../../shared/h2-overhead-budget.ts";
import { createSessionGuards, type SessionGuards } from "./h2-session-guards.ts";
import { holdUnwantedBody, maxRequestBodyBytes } from "./request-bodies.ts";

/** @internal */
export interface H2ServerOptions {
  /** Handles Scrape streams and front requests arriving over HTTP/2. */
  handler: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;
  /** Sees every stream first, on the raw stream API (no compat objects): returns true when it took the stream. */
  streamHandler?: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;
  /** SETTINGS_MAX_CONCURRENT_STREAMS: more streams are refused. */
  maxStreamsPerConnection: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE: larger header blocks reset their stream. */
  maxHeaderListBytes: number;
  /** A session without an open stream for this long is closed (GOAWAY). */
  idleSessionTimeoutMs: number;
  /** PINGs on every session at this interval; a peer that missed one is dropped. */
  pingIntervalMs: number;
  /** An answer (a stream not taken by `streamHandler`) of which the peer takes nothing for this long is reset. */
  unreadAnswerTimeoutMs: number;
  /** Bytes of sliced answers one connection may hold unsent (src/server/listen/answer-slices.ts). */
  maxUnreadAnswerBytesPerConnection: number;
  /** Bytes of sliced answers all the connections together may hold unsent. Default: no total (listen() always sets one). */
  maxUnreadAnswerBytes?: number;
  /** Told each answer refused for `maxUnreadAnswerBytes`, with the words of its 503 and the peer's address. */
  onUnreadAnswersRefused?: (message: string, remote: string | undefined, top: { remote: string | undefined; bytes: number } | undefined) => void;
  /** Counts each stream reset for an answer nobody took. */
  onUnreadAnswer?: () => void;
  /** Bytes a session may read a second that carry no data (src/server/listen/h2-session-guards.ts). Default 1 MiB. */
  maxClientOverheadBytesPerSecond?: number;
  /** Streams whose header blocks (HEADERS or trailers) were refused that a session may open; one more ends it. Default 10. */
  maxRefusedStreamsPerConnection?: number;
  /** Told each session cut by those two, with the error it is destroyed with (marked: src/shared/budget-cut.ts) and the peer's address. */
  onSessionCut?: (error: Error, remote: string | undefined) => void;
  /** Body bytes read at most on a stream whose path takes none (src/server/listen/request-bodies.ts). Default 64 KiB. */
  maxRequestBodyBytes?: number;
  /** Whether a request on this `:path` reads its body (the RPCs). Default: none does. */
  takesBody?: (path: string) => boolean;
}

/** @internal */
export interface H2Server {
  /** Takes connections through `server.emit("connection", socket)`; it never listens itself. */
  server: http2.Http2Server;
  /** The open sessions. */
  sessions: ReadonlySet<http2.ServerHttp2Session>;
  /** Answers being watched for progress (streams open on the compat path). */
  answers(): number;
  /** Bytes of sliced answers all the connections hold unsent (counted against `maxUnreadAnswerBytes`). */
  unsentBytes(): number;
  /** The listener's total of unsent answers, which its HTTP/1.1 connections share (src/server/listen/answer-slices.ts). */
  readonly total: UnsentBudget;
  /** Stops the PING, answer and session-guard timers. */
  stop(): void;
}

/** HTTP/2 receive windows: the 64 KiB defaults throttle large relays (DESIGN.md). */
const windowBytes = 16 * 1024 * 1024;
/** A session told to go away (idle) that has not closed after this long is destroyed. */
const goawayGraceMs = 1_000;

/**
 * The HTTP/2 side of the port: large receive windows for relays, and caps on
 * what one connection may hold: concurrent streams, header list size (Node's
 * nghttp2 already bounds CONTINUATION floods, rapid resets and per-session
 * memory), sessions left open without a stream, peers that went silent, and
 * bytes and refused streams that serve nobody (src/server/listen/h2-session-guards.ts).
 *
 * @internal
 */
export function createH2Server(o: H2ServerOptions): H2Server {
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer(
    {
      settings: {
        initialWindowSize: windowBytes,
        maxConcurrentStreams: o.maxStreamsPerConnection,
        maxHeaderListSize: o.maxHeaderListBytes,
      },
      maxSessionMemory: 64,
    },
    o.handler,
  );
  const unread = watchUnreadAnswers(o.unreadAnswerTimeoutMs, o.onUnreadAnswer);
  const total: UnsentBudget = { held: 0, max: o.maxUnreadAnswerBytes ?? Infinity, onRefused: o.onUnreadAnswersRefused };
  const guards = createSessionGuards({
    overheadBytesPerSecond: o.maxClientOverheadBytesPerSecond ?? defaultOverheadBytesPerSecond,
    maxRefusedStreams: o.maxRefusedStreamsPerConnection ?? 10,
    streamsAtOnce: o.maxStreamsPerConnection,
    onCut: o.onSessionCut ?? (() => {}),
  });
  const takesBody = o.takesBody ?? (() => false);
  const hold: Hold = (stream, headers, flags, pass) =>
    !takesBody(String(headers[":path"] ?? "")) && holdUnwantedBody(stream, headers, flags, o.maxRequestBodyBytes ?? maxRequestBodyBytes, pass);
  takeStreamsFirst(server, o.streamHandler ?? (() => false), unread.watch, guards, hold);
  // Without a listener Node answers an HTTP/2 CONNECT 405 with no body: say why, as the HTTP/1.1 side does.
  server.on("connect", (_req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(connectRefusal) });
    res.end(connectRefusal);
  });
  server.on("session", (session) => {
    sessions.add(session);
    guards.watch(session);
    limitUnsentAnswers(session, o.maxUnreadAnswerBytesPerConnection, total);
    session.on("error", () => {});
    // 'connect' and 'close' come once: `on` spares the wrapper and bound function `once` keeps per session.
    session.on("connect", () => {
      try {
        session.setLocalWindowSize(windowBytes);
      } catch {
        /* the session died already */
      }
    });
    closeWhenIdle(session, o.idleSessionTimeoutMs);
    session.on("close", () => sessions.delete(session));
  });
  server.on("sessionError", () => {});

  // Find dead HTTP/2 peers (a black-holed path leaves a session that never errors).
  // Node's PINGs never time out: a peer that has not answered the previous one by the next tick is gone
  // (else a dead session lingered until maxOutstandingPings, 10 intervals = 5 min, holding its socket).
  // A tick late because this process stalled judges nothing: the answers may wait unread (src/shared/late-tick.ts).
  const unanswered = new WeakSet<http2.ServerHttp2Session>();
  const late = lateTicks(o.pingIntervalMs);
  const pinger = setInterval(() => {
    if (late()) return;
    for (const s of sessions) {
      if (s.destroyed || s.closed) continue;
      if (unanswered.has(s)) {
        s.destroy();
        continue;
      }
      unanswered.add(s);
      const ok = s.ping((err) => {
        unanswered.delete(s);
        if (err && !s.destroyed) s.destroy();
      });
      if (!ok) s.destroy();
    }
  }, o.pingIntervalMs);
  pinger.unref();

  return {
    server,
    sessions,
    answers: unread.size,
    unsentBytes: () => total.held,
    total,
    stop: () => {
      clearInterval(pinger);
      unread.stop();
      guards.stop();
    },
  };
}

/**
 * Closes a session once it has had no open stream for `idleMs`: a client's
 * session always carries its Scrape stream, front requests are short, so an
 * idle session serves nobody and only holds a socket.
 */
function closeWhenIdle(session: http2.ServerHttp2Session, idleMs: number): void {
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    timer = setTimeout(() => {
      if (session.closed || session.destroyed) return;
      session.close();
      setTimeout(() => session.destroyed || session.destroy(), goawayGraceMs).unref();
    }, idleMs);
    timer.unref();
  };
  arm();
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    open++;
    clearTimeout(timer);
    timer = undefined; // not kept referenced (128 bytes) while the session serves its stream
    stream.on("close", () => {
      if (--open === 0 && !session.closed && !session.destroyed) arm();
    });
  });
  session.on("close", () => clearTimeout(timer));
}

/** Holds a stream until its unwanted body has ended, then calls `pass`; false when it has nothing to hold. */
type Hold = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, pass: () => void) => boolean;

/**
 * Puts `take` before Node's compat layer: the compat layer is a 'stream'
 * listener (it builds Http2ServerRequest/Response for `handler`); it is
 * called only for streams `take` leaves, and those are watched. Every stream
 * is counted by the session guards first. A stream with a body its path does
 * not take reaches it once that body has ended (`hold`,
 * src/server/listen/request-bodies.ts).
 */
function takeStreamsFirst(server: http2.Http2Server, take: NonNullable<H2ServerOptions["streamHandler"]>, watch: (stream: http2.ServerHttp2Stream) => void, guards: SessionGuards, hold: Hold): void {
  const compat = server.listeners("stream") as ((...args: unknown[]) => void)[];
  server.removeAllListeners("stream");
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, ...rest: unknown[]) => {
    guards.stream(stream);
    if (take(stream, headers)) return;
    watch(stream);
    const pass = () => {
      for (const l of compat) l.call(server, stream, headers, flags, ...rest);
    };
    if (!hold(stream, headers, flags, pass)) pass();
  });
}
