import * as http from "node:http";
import type * as net from "node:net";
import { answerAndClose, connectRefusal, continueOnly, hostProblem, parseErrorAnswer, rawAnswer, unsupportedExpectation } from "./bad-request.ts";
import { dropConnection } from "./drop-connection.ts";
import { h1BodyRefusal, maxRequestBodyBytes } from "./request-bodies.ts";
import { sentToKernel } from "./sent-to-kernel.ts";

/** @internal */
export interface H1ServerOptions {
  /** Handles HTTP/1.1 requests (the front). */
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /** Request line and headers at most; more get 431 (or 414 for a long request line). */
  maxHeaderListBytes: number;
  /** Body bytes at most (no request takes one), default {@link maxRequestBodyBytes}: more, or an unknown length, get 413 (request-bodies.ts). */
  maxRequestBodyBytes?: number;
  /** True once the port is closing: answers end their connection instead of keeping it alive. */
  closing(): boolean;
  /** Pipelining limits; default {@link maxPipelinedRequests} and {@link pipelinedWaitMs} (tests lower them). */
  pipeline?: Partial<PipelineLimits>;
  /** Told when a connection is answered 503 for pipelining (the message of its answer), to be logged. */
  onPipelineRefused?: (message: string, remote: string | undefined) => void;
}

/** Headers per request at most; Node drops the rest (they never reach a handler). */
const maxHeadersCount = 100;

/**
 * Default of the listen option `maxPipelinedRequests`: requests waiting per connection behind the one in service at
 * most; one more drops the connection at once (a one-line 503 first where it can be the next thing the peer reads).
 * Prometheus never pipelines; a peer that pipelines hundreds and reads nothing must not hold hundreds.
 */
export const maxPipelinedRequests = 16;
/**
 * How long pipelined requests wait for the one in service while it makes no progress (it has not begun, or its
 * connection sent nothing for as long): then the first of them is answered 503 in its turn and the connection
 * closed after it; if an answer that has begun sends nothing for as long again (a peer that does not read its
 * answers), the connection is dropped. An answer that goes on going out, however slowly, is waited for.
 */
export const pipelinedWaitMs = 60_000;

/** A request waiting for its turn, and what serves it: the handler, unless `serve` takes its place (a 503 that ends the connection). */
interface Turn {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  serve?: () => void;
}

/** Requests of one connection that wait for the one in service (pipelined). */
interface Lane {
  busy: boolean;
  /** Whether this lane paused the connection (requests wait). */
  paused: boolean;
  waiting: Turn[];
  /** The answer in service. */
  current?: http.ServerResponse;
  /** Set once a 503 that ends the connection is queued: later requests on it get no answer. */
  ending: boolean;
  /** Runs once every answer of the connection has gone out (a parse error's raw answer, which must come last). */
  last?: () => void;
  /** Answers the waiting requests 503 when they make no progress for `pipelinedWaitMs` (then drops the connection). */
  stuck?: NodeJS.Timeout;
  /** Bytes the connection had handed to the kernel at the last look of `stuck` (see {@link moved}). */
  sent: number;
}

/** Whether the connection handed bytes to the kernel since the last look (which this one becomes): its peer reads. */
function moved(l: Lane, socket: net.Socket): boolean {
  const before = l.sent;
  return (l.sent = sentToKernel(socket)) > before;
}

/** Serves a connection's requests one at a time, in order. */
interface InTurn {
  handle: H1ServerOptions["handler"];
  /** Runs `fn` once the connection's answers have all gone out (at once when none is pending). */
  afterAnswers(socket: net.Socket, fn: () => void): void;
}

/** Limits on pipelined requests; see {@link maxPipelinedRequests} and {@link pipelinedWaitMs}. */
export interface PipelineLimits {
  maxPipelinedRequests: number;
  pipelinedWaitMs: number;
}

/**
 * One request in service per connection. Node parses every pipelined request
 * it has read and would start them all at once, each response buffered in
 * full behind the first until the peer reads: one connection that never reads
 * could pin hundreds of scrapes' bodies. Here the next request starts only once
 * the previous response has gone out (its "finish": handed to the kernel), and
 * the connection is not read while requests wait, so what it holds is one
 * scrape's credit plus the requests of one read. Prometheus never pipelines:
 * the request after `maxPipelinedRequests` waiting ones drops the connection
 * at once (a peer that pipelines that many may read nothing: its answers are
 * not queued), with a raw one-line 503 only where no answer has begun on the
 * wire; the rest of that read costs a check each. The first waiting request
 * once they make no progress for `pipelinedWaitMs` is answered 503 in its
 * turn (after the answers before it) and the connection closed after it; the
 * requests after it get no answer (a client sends them again on a new
 * connection). A connection whose answer in service began but cannot go out
 * for another `pipelinedWaitMs` is dropped (its peer reads nothing). A large
 * answer read slowly is no stall: while its connection sends something each
 * `pipelinedWaitMs`, the requests behind it wait their turn.
 */
function serveInTurn(
  handler: H1ServerOptions["handler"],
  limits: PipelineLimits,
  told: H1ServerOptions["onPipelineRefused"],
  closing: H1ServerOptions["closing"],
): InTurn {
  /** Queues `turn` as the 503 that ends its connection. */
  const ending = (l: Lane, socket: net.Socket, turn: Turn, message: string) => {
    l.ending = true;
    turn.serve = () => answerAndClose(turn.res, 503, message); // in its turn: the connection closes after it
    told?.(message, socket.remoteAddress);
  };
  /** Drops the connection at once, its waiting requests let go (src/server/listen/drop-connection.ts). */
  const drop = (l: Lane, socket: net.Socket, message: string) => {
    l.ending = true;
    l.waiting = [];
    clearTimeout(l.stuck);
    const remote = socket.remoteAddress; // gone once destroyed
    dropConnection(socket, message, l.current?.headersSent === true);
    told?.(message, remote);
  };
  const lanes = new WeakMap<net.Socket, Lane>();
  const laneOf = (socket: net.Socket): Lane => {
    let lane = lanes.get(socket);
    if (lane) return lane;
    const l: Lane = { busy: false, paused: false, waiting: [], ending: false, sent: 0 };
    lanes.set(socket, l);
    // Node resumes a paused connection by itself (a request body dumped, a drain): keep it paused while requests wait.
    socket.on("resume", () => {
      if (l.paused) socket.pause();
    });
    socket.once("close", () => clearTimeout(l.stuck));
    return l;
  };
  const start = (l: Lane, socket: net.Socket, turn: Turn) => {
    const res = turn.res;
    if (res.destroyed || socket.destroyed) return;
    l.busy = true;
    l.current = res;
    let done = false;
    // One listener for both events (no once() wrappers): whichever comes first hands the connection on.
    const finished = () => {
      if (done) return;
      done = true;
      // While closing, the connection ends after an answer that went out whole instead of being kept alive.
      if (res.writableEnded && closing()) res.socket?.end();
      l.busy = false;
      l.current = undefined;
      next(l, socket);
    };
    res.on("finish", finished);
    res.on("close", finished);
    if (turn.serve) turn.serve();
    else handler(turn.req, res);
  };
  /** Looks again in `pipelinedWaitMs`, from what the connection has sent by now. */
  const watch = (l: Lane, socket: net.Socket) => {
    moved(l, socket);
    l.stuck = setTimeout(() => waitedTooLong(l, socket), limits.pipelinedWaitMs).unref();
  };
  const waitedTooLong = (l: Lane, socket: net.Socket) => {
    l.stuck = undefined;
    const again = () => (l.stuck = setTimeout(() => waitedTooLong(l, socket), limits.pipelinedWaitMs).unref());
    // An answer in service that went on going out since the last look is read, however slowly: wait for it (a
    // peer that takes a byte a period is the unread-answer watch's to judge, as for any connection).
    if (l.busy && l.current?.headersSent && moved(l, socket)) return again();
    if (l.ending || l.waiting.length === 0) {
      // An answer in service that has not begun is a scrape within its deadline: wait for it. One that began and
      // cannot finish has a peer that reads nothing: drop the connection (not even the 503 could go out).
      if (l.busy && !l.current?.headersSent) again();
      else socket.destroy();
      return;
    }
    // The first waiting request gets the 503; those behind it are let go (the connection closes after it).
    const first = l.waiting[0]!;
    l.waiting = [first];
    const s = +(limits.pipelinedWaitMs / 1000).toFixed(3);
    ending(l, socket, first, `this pipelined request waited ${s}s behind an earlier one that did not finish: closing the connection`);
    again();
  };
  const next = (l: Lane, socket: net.Socket) => {
    clearTimeout(l.stuck);
    l.stuck = undefined;
    while (!l.busy && l.waiting.length > 0) start(l, socket, l.waiting.shift()!);
    if (!l.busy && l.waiting.length === 0 && l.last) {
      const last = l.last;
      l.last = undefined;
      if (!l.ending && !socket.destroyed) last();
    }
    if ((l.waiting.length > 0 || (l.ending && l.busy)) && !socket.destroyed) {
      watch(l, socket);
    }
    if (l.paused && l.waiting.length === 0 && !l.ending && !socket.destroyed) {
      l.paused = false;
      socket.resume(); // read again, if only to notice the peer leaving
    }
  };
  const handle: H1ServerOptions["handler"] = (req, res) => {
    const socket = req.socket;
    const l = laneOf(socket);
    if (l.ending) return; // behind the 503 that closes the connection: never answered
    const turn: Turn = { req, res };
    if (!l.busy) return start(l, socket, turn);
    if (l.waiting.length >= limits.maxPipelinedRequests) {
      const max = limits.maxPipelinedRequests;
      return drop(l, socket, `this connection pipelined more than ${max} requests, the maximum waiting for an answer (listen option maxPipelinedRequests): closing the connection`);
    }
    l.waiting.push(turn);
    if (!l.stuck) watch(l, socket);
    if (!l.paused) {
      l.paused = true;
      socket.pause();
    }
  };
  const afterAnswers = (socket: net.Socket, fn: () => void) => {
    const l = lanes.get(socket);
    if (!l || (!l.busy && l.waiting.length === 0)) return fn();
    l.last = fn;
  };
  return { handle, afterAnswers };
}

/**
 * The HTTP/1.1 side of the port (Prometheus, curl): bounded headers and
 * times, one-line `promproxy: ` bodies for requests it cannot parse, CONNECT
 * refused, 417 for an expectation other than 100-continue, 413 for a request
 * body past `maxRequestBodyBytes` or of unknown length, one request in
 * service per connection (pipelined ones wait their turn). Takes connections
 * through `emit("connection", socket)`.
 *
 * @internal
 */
export function createH1Server(o: H1ServerOptions): http.Server {
  const maxBody = o.maxRequestBodyBytes ?? maxRequestBodyBytes;
  // A missing or repeated Host header is answered in turn, like any request (Node's own check would answer 400 with no body).
  // So is an expectation other than 100-continue (Node's own answer would be a bare 417).
  const checked: H1ServerOptions["handler"] = (req, res) => {
    const bad = hostProblem(req);
    if (bad) return answerAndClose(res, 400, bad);
    const expect = req.headers.expect;
    if (expect !== undefined && !continueOnly(expect)) return answerAndClose(res, 417, unsupportedExpectation(expect));
    const body = h1BodyRefusal(req, maxBody); // refused unread, before Node would drain it after the answer
    if (body) return answerAndClose(res, 413, body);
    o.handler(req, res);
  };
  const inTurn = serveInTurn(checked, { maxPipelinedRequests, pipelinedWaitMs, ...o.pipeline }, o.onPipelineRefused, o.closing);
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.socket.destroyed) return; // the rest of a read on a dropped connection: no work at all
    // While closing, answer what is in flight, then end the connection instead of keeping it alive (the end
    // itself follows each answer's finish, in serveInTurn).
    if (o.closing()) res.setHeader("connection", "close");
    inTurn.handle(req, res);
  };
  const h1 = http.createServer(
    {
      maxHeaderSize: o.maxHeaderListBytes,
      requestTimeout: 60_000,
      headersTimeout: 20_000,
      keepAliveTimeout: 65_000,
      requireHostHeader: false, // checked in `checked`, with a one-line answer
    },
    onRequest,
  );
  // A request with an expectation Node does not know (not 100-continue) is served like any other: `checked` answers it.
  h1.on("checkExpectation", onRequest);
  // Node takes any value naming 100-continue ("100-continue, foo" too) for one and would send the 100 itself, before
  // `checked` refuses the rest: the 100 goes only for 100-continue alone.
  h1.on("checkContinue", (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (continueOnly(req.headers.expect) && !h1BodyRefusal(req, maxBody)) res.writeContinue(); // not for a body refused unread
    onRequest(req, res);
  });
  h1.maxHeadersCount = maxHeadersCount;
  // h1 never listens itself (the TCP server hands it connections), so Node would never start its
  // connection tracking, which runs on "listening": without it closeIdleConnections() does nothing (close()
  // then waits out the whole grace for idle keep-alive connections, e.g. Prometheus') and requestTimeout /
  // headersTimeout are never enforced. Start it; h1.close() stops its timer again.
  h1.emit("listening");
  h1.on("connect", (_req, socket: net.Socket) => {
    const body = connectRefusal;
    socket.end(
      `HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
  h1.on("clientError", (err: NodeJS.ErrnoException, socket: net.Socket) => {
    if (!socket.writable || err.code === "ECONNRESET") return void socket.destroy();
    // After the answers to the requests parsed before it: HTTP/1.1 answers go out in request order.
    const answer = rawAnswer(parseErrorAnswer(err));
    inTurn.afterAnswers(socket, () => socket.end(answer));
  });
  return h1;
}
