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
 * The HTTP/1.1 side of the port (Prometheus, curl): bounded headers and
 * times, one-line `promproxy: ` bodies for requests it cannot parse, CONNECT
 * refused. Takes connections through `emit("connection", socket)`.
 *
 * @internal
 */
export function createH1Server(o: H1ServerOptions): http.Server {
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
      o.handler(req, res);
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
