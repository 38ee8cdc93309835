import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { createTlsCredentials, type ListenTlsOptions } from "../auth/tls-credentials.ts";
import type { Logger } from "../shared/logger.ts";

/** Where and how {@link PromproxyServer.listen} listens. */
export interface ListenOptions {
  /** Interface to bind. Default "127.0.0.1"; use "0.0.0.0" or "::" to accept remote clients. */
  host?: string;
  /** TCP port; 0 picks a free one. Default 8080. */
  port?: number;
  /**
   * Serve TLS: HTTP/1.1 and HTTP/2 on the one port, chosen by ALPN; optional
   * mTLS; certificate files reload without a restart. See {@link ListenTlsOptions}.
   * Default: cleartext (HTTP/2 by prior knowledge, told apart by its first bytes).
   */
  tls?: ListenTlsOptions;
  /**
   * A new connection must send its first bytes (HTTP/2 preface or HTTP/1.1
   * request line), or finish its TLS handshake, within this time; else it is
   * closed (slowloris). Default 10 000 ms.
   */
  prefaceTimeoutMs?: number;
}

/** @internal */
export interface PortOptions {
  /** Handles Scrape streams and front requests arriving over HTTP/2. */
  h2Handler: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;
  /** Handles HTTP/1.1 requests (the front). */
  h1Handler: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  logger: Logger;
  /** A connection must send its first bytes within this time. Default 10 s. */
  prefaceTimeoutMs?: number;
  /** HTTP/2 PINGs the server sends on idle sessions, to find dead peers. Default 30 s. */
  pingIntervalMs?: number;
}

/** @internal */
export interface BoundPort {
  port: number;
  /** Stops accepting, ends idle keep-alive connections; resolves once every connection has closed. */
  close(graceMs: number): Promise<void>;
}

const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/** HTTP/2 receive windows: the 64 KiB defaults throttle large relays (DESIGN.md). */
const windowBytes = 16 * 1024 * 1024;

/**
 * One TCP port for HTTP/1.1 (Prometheus, curl) and cleartext HTTP/2 with prior
 * knowledge (client streams): the first bytes of a connection decide. With
 * `tls`, ALPN decides instead.
 *
 * @internal
 */
export async function listenOnePort(opts: ListenOptions, p: PortOptions): Promise<BoundPort> {
  const creds = opts.tls ? createTlsCredentials(opts.tls, p.logger) : undefined; // throws on bad TLS options
  const sockets = new Set<net.Socket>();
  const h2sessions = new Set<http2.ServerHttp2Session>();
  let closing = false;
  const h1 = http.createServer(
    {
      maxHeaderSize: 16 * 1024,
      requestTimeout: 60_000,
      headersTimeout: 20_000,
      keepAliveTimeout: 65_000,
    },
    (req, res) => {
      // While closing, answer what is in flight, then end the connection instead of keeping it alive.
      if (closing) res.setHeader("connection", "close");
      res.once("finish", () => {
        if (closing) res.socket?.end();
      });
      p.h1Handler(req, res);
    },
  );
  // h1 never listens itself (the TCP server below hands it connections), so Node would never start its
  // connection tracking, which runs on "listening": without it closeIdleConnections() does nothing (close()
  // then waits out the whole grace for idle keep-alive connections, e.g. Prometheus') and requestTimeout /
  // headersTimeout are never enforced. Start it; h1.close() in close() stops its timer again.
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

  const h2 = http2.createServer({ settings: { initialWindowSize: windowBytes }, maxSessionMemory: 64 }, p.h2Handler);
  h2.on("session", (session) => {
    h2sessions.add(session);
    session.once("close", () => h2sessions.delete(session));
    session.on("error", () => {});
    session.once("connect", () => {
      try {
        session.setLocalWindowSize(windowBytes);
      } catch {
        /* the session died already */
      }
    });
  });
  h2.on("sessionError", () => {});

  // Find dead HTTP/2 peers (a black-holed path leaves a session that never errors).
  const pingMs = p.pingIntervalMs ?? 30_000;
  // Node's PINGs never time out: a peer that has not answered the previous one by the next tick is gone
  // (else a dead session lingered until maxOutstandingPings, 10 intervals = 5 min, holding its socket).
  const unanswered = new WeakSet<http2.ServerHttp2Session>();
  const pinger = setInterval(() => {
    for (const s of h2sessions) {
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
  }, pingMs);
  pinger.unref();

  const prefaceTimeoutMs = opts.prefaceTimeoutMs ?? p.prefaceTimeoutMs ?? 10_000;
  // TLS: ALPN picks the server (h2: client streams; http/1.1 or none: Prometheus, curl).
  const secure = creds && tls.createServer({ ...creds.serverOptions(), handshakeTimeout: prefaceTimeoutMs });
  secure?.on("secureConnection", (socket: tls.TLSSocket) => {
    socket.on("error", () => {});
    (socket.alpnProtocol === "h2" ? h2 : h1).emit("connection", socket);
  });
  secure?.on("tlsClientError", (err: Error, socket: tls.TLSSocket) => {
    p.logger.debug("TLS handshake failed", { remote: socket.remoteAddress, error: err.message });
    socket.destroy();
  });

  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.setNoDelay(true);
    if (creds && secure) {
      // Changed certificate files are picked up before the next handshake.
      void creds.refresh().then((ctx) => {
        if (ctx) secure.setSecureContext(ctx);
        if (!socket.destroyed) secure.emit("connection", socket);
      });
      return;
    }
    socket.setTimeout(prefaceTimeoutMs, () => socket.destroy());
    let first: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      first = first.length === 0 ? chunk : Buffer.concat([first, chunk]);
      const n = Math.min(first.length, preface.length);
      const isH2 = first.subarray(0, n).equals(preface.subarray(0, n));
      // A strict prefix of the preface cannot decide yet ("P" of "POST ..." arriving alone would be taken
      // for HTTP/2 and get a GOAWAY): wait for more, still under the preface timeout.
      if (isH2 && n < preface.length) return;
      socket.off("data", onData);
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(first);
      // Both servers take the unshifted bytes: http reads on from the stream,
      // http2 reads what is buffered on the next tick (nodejs/node#34532).
      (isH2 ? h2 : h1).emit("connection", socket);
      if (!isH2) socket.resume();
    };
    socket.on("data", onData);
  });

  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(opts.port ?? 8080, opts.host ?? "127.0.0.1", () => {
      tcp.off("error", reject);
      resolve();
    });
  });
  const address = tcp.address() as net.AddressInfo;

  return {
    port: address.port,
    async close(graceMs) {
      closing = true;
      clearInterval(pinger);
      const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
      h1.close(); // not listening: only ends idle keep-alive connections and stops the timeout checks
      for (const s of h2sessions) s.close();
      const timer = setTimeout(() => {
        for (const s of h2sessions) s.destroy();
        for (const s of sockets) s.destroy();
      }, graceMs);
      await closed;
      clearTimeout(timer);
    },
  };
}
