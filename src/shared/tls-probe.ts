/**
 * Whether a port speaks TLS, asked with one handshake (any certificate
 * accepted): for telling a user that a URL's scheme does not match its port.
 *
 * @internal
 */
import * as net from "node:net";
import * as tls from "node:tls";

/**
 * True when a TLS handshake with `host`:`port` completes, or the server
 * answers it with a TLS alert (it wants a client certificate, say). False when
 * the connection fails, closes, answers something else, or `timeoutMs` or
 * `signal` ends it first. Nothing is sent after the handshake; the connection
 * is closed. Never throws. `host` may be a bracketed IPv6 literal.
 */
export function speaksTls(host: string, port: number, o: { signal: AbortSignal; timeoutMs: number; alpn: string }): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    if (o.signal.aborted) return resolve(false);
    const bare = host.replace(/^\[(.*)\]$/, "$1");
    const socket = tls.connect({ host: bare, port, servername: net.isIP(bare) ? undefined : bare, rejectUnauthorized: false, ALPNProtocols: [o.alpn] });
    const done = (tlsSpoken: boolean) => {
      clearTimeout(timer);
      o.signal.removeEventListener("abort", onAbort);
      socket.destroy();
      resolve(tlsSpoken);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(onAbort, o.timeoutMs);
    o.signal.addEventListener("abort", onAbort, { once: true });
    socket.once("secureConnect", () => done(true));
    // Not once: an error after the first (while the socket is destroyed) must not go uncaught.
    socket.on("error", (err: NodeJS.ErrnoException) => done(/^ERR_SSL_(TLSV1|SSLV3|TLSV13)_ALERT_/.test(err.code ?? "") || /alert/i.test(err.message)));
    socket.once("close", () => done(false));
  });
}
