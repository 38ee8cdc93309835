import * as http from "node:http";
import type * as net from "node:net";

/** @internal */
export interface H1ServerOptions {
  /** Handles HTTP/1.1 requests (the front). */
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /** Request line and headers at most; more get 431 (or 414 for a long request line). */
  maxHeaderListBytes: number;
  /** True once the port is closing: answers end their connection instead of keeping it alive. */
  closing(): boolean;
}

/** Headers per request at most; Node drops the rest (they never reach a handler). */
const maxHeadersCount = 100;

/**
 * Pipelined requests waiting per connection at most (a few hundred KB of requests and responses): one more closes
 * the connection. Prometheus never pipelines; load tools that do send batches of up to a few hundred.
 */
export const maxPipelinedRequests = 256;
/** How long pipelined requests wait for the one in service (a peer that does not read its answers): then the connection is closed. */
export const pipelinedWaitMs = 60_000;

/** Requests of one connection that wait for the one in service (pipelined). */
interface Lane {
  busy: boolean;
  /** Whether this lane paused the connection (requests wait). */
  paused: boolean;
  waiting: (() => void)[];
  /** Closes the connection when the waiting requests make no progress for `pipelinedWaitMs`. */
  stuck?: NodeJS.Timeout;
}

/**
 * One request in service per connection. Node parses every pipelined request
 * it has read and would start them all at once, each response buffered in
 * full behind the first until the peer reads: one connection that never reads
 * could pin hundreds of scrapes' bodies. Here the next request starts only once
 * the previous response has gone out (its "finish": handed to the kernel), and
 * the connection is not read while requests wait, so what it holds is one
 * scrape's credit plus the requests of one read. Prometheus never pipelines:
 * a connection with more than `maxPipelinedRequests` waiting, or whose waiting
 * requests make no progress for `pipelinedWaitMs` (its peer reads no answer),
 * is closed (the requests of that one read are freed with it).
 */
function serveInTurn(handler: H1ServerOptions["handler"]): H1ServerOptions["handler"] {
  const lanes = new WeakMap<net.Socket, Lane>();
  const laneOf = (socket: net.Socket): Lane => {
    let lane = lanes.get(socket);
    if (lane) return lane;
    const l: Lane = { busy: false, paused: false, waiting: [] };
    lanes.set(socket, l);
    // Node resumes a paused connection by itself (a request body dumped, a drain): keep it paused while requests wait.
    socket.on("resume", () => {
      if (l.paused) socket.pause();
    });
    return l;
  };
  const next = (l: Lane, socket: net.Socket) => {
    clearTimeout(l.stuck);
    l.stuck = undefined;
    while (!l.busy && l.waiting.length > 0) l.waiting.shift()!();
    if (l.waiting.length > 0) l.stuck = setTimeout(() => socket.destroy(), pipelinedWaitMs).unref();
    if (l.paused && l.waiting.length === 0 && !socket.destroyed) {
      l.paused = false;
      socket.resume(); // read again, if only to notice the peer leaving
    }
  };
  return (req, res) => {
    const socket = req.socket;
    const l = laneOf(socket);
    const start = () => {
      if (res.destroyed || socket.destroyed) return;
      l.busy = true;
      let done = false;
      const finished = () => {
        if (done) return;
        done = true;
        l.busy = false;
        next(l, socket);
      };
      res.once("finish", finished);
      res.once("close", finished);
      handler(req, res);
    };
    if (!l.busy) return start();
    if (l.waiting.length >= maxPipelinedRequests) return void socket.destroy();
    l.waiting.push(start);
    l.stuck ??= setTimeout(() => socket.destroy(), pipelinedWaitMs).unref();
    if (!l.paused) {
      l.paused = true;
      socket.pause();
    }
  };
}

/**
 * The HTTP/1.1 side of the port (Prometheus, curl): bounded headers and
 * times, one-line `promproxy: ` bodies for requests it cannot parse, CONNECT
 * refused, one request in service per connection (pipelined ones wait their
 * turn). Takes connections through `emit("connection", socket)`.
 *
 * @internal
 */
export function createH1Server(o: H1ServerOptions): http.Server {
  const inTurn = serveInTurn(o.handler);
  const h1 = http.createServer(
    {
      maxHeaderSize: o.maxHeaderListBytes,
      requestTimeout: 60_000,
      headersTimeout: 20_000,
      keepAliveTimeout: 65_000,
    },
    (req, res) => {
      // While closing, answer what is in flight, then end the connection instead of keeping it alive.
      if (o.closing()) res.setHeader("connection", "close");
      res.once("finish", () => {
        if (o.closing()) res.socket?.end();
      });
      inTurn(req, res);
    },
  );
  h1.maxHeadersCount = maxHeadersCount;
  // h1 never listens itself (the TCP server hands it connections), so Node would never start its
  // connection tracking, which runs on "listening": without it closeIdleConnections() does nothing (close()
  // then waits out the whole grace for idle keep-alive connections, e.g. Prometheus') and requestTimeout /
  // headersTimeout are never enforced. Start it; h1.close() stops its timer again.
  h1.emit("listening");
  h1.on("connect", (_req, socket: net.Socket) => {
    const body = "promproxy: CONNECT is not supported: this server only proxies GET requests to connected clients\n";
    socket.end(
      `HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
  h1.on("clientError", (err: NodeJS.ErrnoException, socket: net.Socket) => {
    if (!socket.writable || err.code === "ECONNRESET") return void socket.destroy();
    const [status, text] =
      err.code === "HPE_HEADER_OVERFLOW" ? [431, "Request Header Fields Too Large"] :
      err.code === "HPE_URI_TOO_LONG" ? [414, "URI Too Long"] :
      err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? [408, "Request Timeout"] : [400, "Bad Request"];
    const body = `promproxy: ${text.toLowerCase()}\n`;
    socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
  return h1;
}
