import type * as http from "node:http";
import type * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { createTlsCredentials } from "../../auth/tls-credentials.ts";
import type { Logger } from "../../shared/logger.ts";
import { createRefusalLog } from "../../shared/refusal-log.ts";
import { createConnectionLimits } from "./connection-limits.ts";
import { awaitFirstBytes } from "./first-bytes.ts";
import { createH1Server } from "./h1-server.ts";
import { createH2Server } from "./h2-server.ts";
import { resolveListenOptions, type ListenOptions } from "./listen-options.ts";
import { limitUnsentAnswers } from "./answer-slices.ts";
import { watchUnreadConnections } from "./unread-answers.ts";
import { budgetCutOf } from "../../shared/budget-cut.ts";

export type { ListenOptions } from "./listen-options.ts";

/** @internal */
export interface PortOptions {
  /** Handles Scrape streams and front requests arriving over HTTP/2. */
  h2Handler: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;
  /** Takes HTTP/2 streams before `h2Handler` (raw stream API); returns true for those it took. */
  h2StreamHandler?: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;
  /** Handles HTTP/1.1 requests (the front). */
  h1Handler: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /** Whether an HTTP/2 request on this path reads its body (the RPCs); the rest read at most maxRequestBodyBytes. Default: none does. */
  takesBody?: (path: string) => boolean;
  logger: Logger;
  /** A connection must send its first bytes within this time, unless ListenOptions say otherwise. Default 10 s. */
  prefaceTimeoutMs?: number;
  /** HTTP/2 PINGs the server sends on idle sessions, to find dead peers. Default 30 s. */
  pingIntervalMs?: number;
  /** The server's maxClients: the default maxConnections leaves 1 000 more. Default 10 000. */
  maxClients?: number;
  /** Counts connections refused at accept time, by the limit they met. */
  onRefused?: (limit: "maxConnections" | "maxConnectionsPerAddress") => void;
}

/** @internal */
export interface BoundPort {
  port: number;
  /** Connections open right now (counted against maxConnections). */
  connections(): number;
  /** Ends the HTTP/1.1 keep-alive connections that are idle now (the drain: Prometheus dials again, elsewhere). */
  closeIdleConnections(): void;
  /** Stops accepting, ends idle keep-alive connections; resolves once every connection has closed. */
  close(graceMs: number): Promise<void>;
}

const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/** Whether a cleartext connection's first bytes are (so far) the HTTP/2 preface. */
function isH2(first: Buffer): boolean {
  const n = Math.min(first.length, preface.length);
  return first.subarray(0, n).equals(preface.subarray(0, n));
}
/**
 * A strict prefix of the preface cannot decide yet ("P" of "POST ..." arriving alone would be taken for HTTP/2
 * and get a GOAWAY): wait for more, still under the preface timeout.
 */
const decides = (first: Buffer) => !isH2(first) || first.length >= preface.length;
/** TLS: any first bytes decide (ALPN chose the protocol). */
const anyBytes = () => true;

/**
 * One TCP port for HTTP/1.1 (Prometheus, curl) and cleartext HTTP/2 with prior
 * knowledge (client streams): the first bytes of a connection decide. With
 * `tls`, ALPN decides instead. Connections are counted (in all, per source)
 * before a byte is read.
 *
 * @internal
 */
export async function listenOnePort(options: ListenOptions, p: PortOptions): Promise<BoundPort> {
  const opts = resolveListenOptions(options, p); // throws on bad limits
  const creds = opts.tls ? createTlsCredentials(opts.tls, p.logger) : undefined; // throws on bad TLS options
  const sockets = new Set<net.Socket>();
  let closing = false;
  const limits = createConnectionLimits({ ...opts, logger: p.logger, onRefused: p.onRefused });
  // Connections closed for pipelining too much or too long: once a minute at most.
  const pipelining = createRefusalLog(p.logger);
  const h1 = createH1Server({
    handler: p.h1Handler,
    maxHeaderListBytes: opts.maxHeaderListBytes,
    maxRequestBodyBytes: opts.maxRequestBodyBytes,
    closing: () => closing,
    // One concept on both protocols: an answer its peer takes nothing of for this long.
    pipeline: { pipelinedWaitMs: opts.unreadAnswerTimeoutMs, maxPipelinedRequests: opts.maxPipelinedRequests },
    onPipelineRefused: (message, remote) => pipelining.refused(`HTTP/1.1 connection answered 503 and closed: ${message}`, { remote }),
  });
  // Answers refused for the listener's total of unread answers (HTTP/2 and HTTP/1.1): once a minute at most.
  const unreadTotal = createRefusalLog(p.logger);
  // HTTP/2 sessions cut for bytes or refused streams that serve nobody: once a minute at most, each.
  const sessionCuts = { overhead: createRefusalLog(p.logger), refused: createRefusalLog(p.logger) };
  const h2 = createH2Server({
    ...opts,
    handler: p.h2Handler,
    streamHandler: p.h2StreamHandler,
    takesBody: p.takesBody,
    pingIntervalMs: p.pingIntervalMs ?? 30_000,
    onSessionCut: (error, remote) =>
      sessionCuts[budgetCutOf(error) === "maxClientOverheadBytesPerSecond" ? "overhead" : "refused"].refused(`HTTP/2 connection closed (GOAWAY ENHANCE_YOUR_CALM): ${error.message}`, { remote }),
    onUnreadAnswersRefused: (message, remote, top) => unreadTotal.refused(`answer refused (503): ${message}`, { remote, holding: top?.remote, holdingBytes: top?.bytes }),
  });

  // HTTP/1.1 connections: under the same caps on unread answers as HTTP/2 ones (the per-connection one and the
  // listener's total), and closed when their peer takes nothing of an answer for unreadAnswerTimeoutMs.
  const unreadH1 = watchUnreadConnections(opts.unreadAnswerTimeoutMs);
  const toH1 = (socket: net.Socket) => {
    limitUnsentAnswers(socket, opts.maxUnreadAnswerBytesPerConnection, h2.total);
    unreadH1.watch(socket);
    h1.emit("connection", socket);
  };

  const prefaceTimeoutMs = opts.prefaceTimeoutMs;
  // A peer with the wrong scheme fails its handshake on its side only: say so here too, once a minute at most.
  const wrongScheme = { tls: createRefusalLog(p.logger), http1: createRefusalLog(p.logger), cleartext: createRefusalLog(p.logger) };
  // TLS: ALPN picks the server (h2: client streams; http/1.1 or none: Prometheus, curl).
  const secure = creds && tls.createServer({ ...creds.serverOptions(), handshakeTimeout: prefaceTimeoutMs });
  secure?.on("secureConnection", (socket: tls.TLSSocket) => {
    socket.on("error", () => {});
    if (socket.alpnProtocol === "h2") return void h2.server.emit("connection", socket);
    // HTTP/1.1 says something within the preface timeout after its handshake too (else Node's headersTimeout held
    // a silent one 20-45 s: outside review 18a, 900 of them took 36 MB).
    awaitFirstBytes(socket, prefaceTimeoutMs, anyBytes, () => {
      toH1(socket);
      socket.resume();
    });
  });
  secure?.on("tlsClientError", (err: Error, socket: tls.TLSSocket) => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ERR_SSL_HTTP_REQUEST" || code === "ERR_SSL_HTTPS_PROXY_REQUEST") {
      wrongScheme.http1.refused("a cleartext HTTP/1.1 request on this TLS port: the peer (Prometheus, curl?) must use https://", { remote: socket.remoteAddress });
    } else if (code === "ERR_SSL_WRONG_VERSION_NUMBER") {
      wrongScheme.cleartext.refused("a cleartext connection on this TLS port: the peer (a promproxy client with an http:// URL?) must use https://", { remote: socket.remoteAddress });
    } else {
      p.logger.debug("TLS handshake failed", { remote: socket.remoteAddress, error: err.message });
    }
    socket.destroy();
  });

  const tcp = net.createServer((socket) => {
    socket.on("error", () => {});
    if (!limits.admit(socket, !creds)) return;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.setNoDelay(true);
    if (creds && secure) {
      // Changed certificate files are picked up before the next handshake.
      void creds.refresh().then((ctx) => {
        if (ctx) secure.setSecureContext(ctx);
        if (!socket.destroyed) secure.emit("connection", socket);
      });
      return;
    }
    awaitFirstBytes(socket, prefaceTimeoutMs, decides, (first) => {
      // A TLS record (a ClientHello: 0x16 0x03) on this cleartext port: HTTP/1.1 answers it with a 400, which the
      // peer's TLS stack reports as a "wrong version number".
      if (first[0] === 0x16 && first[1] === 0x03) {
        wrongScheme.tls.refused("a TLS connection on this cleartext port: the peer (a promproxy client or Prometheus with https://?) must use http://", { remote: socket.remoteAddress });
      }
      // Both servers take the unshifted bytes: http reads on from the stream,
      // http2 reads what is buffered on the next tick (nodejs/node#34532).
      if (isH2(first)) return void h2.server.emit("connection", socket);
      toH1(socket);
      socket.resume();
    });
  });

  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen({ port: opts.port, host: opts.host, backlog: opts.backlog }, () => {
      tcp.off("error", reject);
      resolve();
    });
  });
  const address = tcp.address() as net.AddressInfo;

  return {
    port: address.port,
    connections: limits.open,
    closeIdleConnections: () => h1.closeIdleConnections(),
    async close(graceMs) {
      closing = true;
      for (const log of [...Object.values(wrongScheme), pipelining, unreadTotal]) log.close();
      h2.stop();
      unreadH1.stop();
      limits.close();
      const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
      h1.close(); // not listening: only ends idle keep-alive connections and stops the timeout checks
      for (const s of h2.sessions) s.close();
      const timer = setTimeout(() => {
        for (const s of h2.sessions) s.destroy();
        for (const s of sockets) s.destroy();
      }, graceMs);
      await closed;
      clearTimeout(timer);
    },
  };
}
