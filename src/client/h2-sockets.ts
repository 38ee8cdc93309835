import type * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";

/** What an HTTP/2 connection's sockets are dialled with, and how they are all let go. @internal */
export interface OwnedSockets {
  /** For `http2.connect`'s `createConnection`: dials as Node does (or with the caller's own `createConnection`) and keeps the socket. */
  createConnection(authority: URL, options: http2.SecureClientSessionOptions): net.Socket;
  /**
   * Destroys every socket dialled, once it has sent what its session ended with: at once when its writable side
   * is finished (or it never had one), else at its `"finish"`, and after `graceMs` at the latest.
   */
  release(graceMs?: number): void;
}

/** How long a socket still writing its session's last frames (GOAWAY) is given before it is destroyed. */
const releaseGraceMs = 1_000;

/**
 * The sockets under one HTTP/2 connection attempt, so that the attempt can
 * free them all when it ends.
 *
 * Why (Node.js 22): a session destroyed after a GOAWAY (or by the session
 * manager's idle timer) ends its socket's writable side and stops reading
 * it. Its socket is freed only when the server closes its side too, which
 * the session can no longer see: a server that sent GOAWAY at connect and
 * keeps its end open (as Node's own HTTP/2 server does) left one socket per
 * attempt in the host, also after `stop()`, and its session open on the
 * server (test/e2e/goaway-sockets.test.ts).
 *
 * `createConnection` dials as `http2.connect` does without one: `net.connect`
 * for `http:`, `tls.connect` with ALPN `h2` and the host as TLS server name
 * (unless it is an IP address or one was given) for `https:`.
 *
 * @internal
 */
export function ownSockets(own?: (authority: URL, options: http2.SecureClientSessionOptions) => net.Socket): OwnedSockets {
  const sockets = new Set<net.Socket>();
  return {
    createConnection(authority, options) {
      const socket = own ? own(authority, options) : dial(authority, options);
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      return socket;
    },
    release(graceMs = releaseGraceMs) {
      for (const socket of sockets) {
        sockets.delete(socket);
        if (socket.destroyed) continue;
        if (socket.writableFinished || !socket.writable) {
          socket.destroy();
          continue;
        }
        const done = () => {
          clearTimeout(timer);
          socket.destroy();
        };
        const timer = setTimeout(done, graceMs).unref();
        socket.once("finish", done);
      }
    },
  };
}

/** What `http2.connect` dials without a `createConnection`. */
function dial(authority: URL, options: http2.SecureClientSessionOptions): net.Socket {
  const port = authority.port !== "" ? Number(authority.port) : authority.protocol === "http:" ? 80 : 443;
  let host = authority.hostname || "localhost";
  if (host.startsWith("[")) host = host.slice(1, -1);
  if (authority.protocol === "http:") return net.connect({ port, host, ...options } as net.NetConnectOpts);
  const servername = options.servername ?? (net.isIP(host) ? undefined : host);
  return tls.connect({ ...options, port, host, ALPNProtocols: ["h2"], ...(servername === undefined ? {} : { servername }) } as tls.ConnectionOptions);
}
