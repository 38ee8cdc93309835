import * as fs from "node:fs";
import * as tls from "node:tls";
import type { Logger } from "../shared/logger.ts";

type Pem = string | Buffer;

/**
 * TLS for `listen({ tls })`: one port serving HTTP/1.1 and HTTP/2, chosen by
 * ALPN. Give the certificate and key as PEM (`cert`, `key`) or as files
 * (`certFile`, `keyFile`): files are reloaded without a restart (checked as
 * each new connection arrives; a new pair that does not load, such as a cert
 * written before its key, is logged and the previous pair kept until the
 * files change again).
 */
export interface ListenTlsOptions {
  /** The server certificate chain, PEM. Or `certFile`. */
  cert?: Pem;
  /** The private key, PEM. Or `keyFile`. */
  key?: Pem;
  /** CA certificates that sign client certificates (mTLS), PEM. Or `caFile`. Default: none (Node's root CAs). */
  ca?: Pem | Pem[];
  /** Path of the PEM certificate chain; reloaded when it changes. */
  certFile?: string;
  /** Path of the PEM private key; reloaded when it changes. */
  keyFile?: string;
  /** Path of the PEM CA bundle for client certificates; reloaded when it changes. */
  caFile?: string;
  /** Passphrase of an encrypted key. Default none. */
  passphrase?: string;
  /**
   * Ask clients for a certificate (mTLS), verified against `ca`. Use
   * `mtlsAuth()` to take client identities from it. Default false.
   */
  requestCert?: boolean;
  /**
   * With `requestCert`: refuse the TLS handshake of a client without a
   * certificate signed by `ca`. Default true (Node's); set false to let
   * Prometheus and token-authenticated clients connect without a certificate
   * and leave the decision to `mtlsAuth()`, which refuses untrusted ones.
   */
  rejectUnauthorized?: boolean;
  /**
   * ALPN: when a client offers both HTTP/2 and HTTP/1.1, pick HTTP/1.1.
   * Clients that offer only `h2` (gRPC and Connect clients) get HTTP/2. This is
   * what makes Prometheus work with an `https://` proxy_url: Go's HTTP/2
   * transport, which Prometheus enables by default, refuses to send `http://`
   * scrapes through an HTTP/2 proxy connection ("http2: unsupported scheme").
   * Default true; set false to prefer HTTP/2 (then set `enable_http2: false`
   * in Prometheus' scrape config).
   */
  preferHttp1?: boolean;
  /** Lowest TLS version accepted. Default "TLSv1.2". */
  minVersion?: tls.SecureVersion;
}

/** @internal */
export interface TlsCredentials {
  /** Options for `tls.createServer` (context and server options). */
  serverOptions(): tls.TlsOptions;
  /** Re-reads the files if they changed; resolves with new context options to install, or undefined. */
  refresh(): Promise<tls.SecureContextOptions | undefined>;
}

/** Chooses the protocol for a client's ALPN offer. @internal */
export function chooseAlpn(protocols: readonly string[], preferHttp1: boolean): string | undefined {
  const h1 = protocols.includes("http/1.1");
  const h2 = protocols.includes("h2");
  if (h1 && (preferHttp1 || !h2)) return "http/1.1";
  return h2 ? "h2" : undefined;
}

/** Validates TLS options and loads the files. @internal */
export function createTlsCredentials(o: ListenTlsOptions, logger: Logger): TlsCredentials {
  const both = (a: unknown, b: unknown, what: string) => {
    if (a !== undefined && b !== undefined) throw new TypeError(`promproxy: tls: give ${what} or ${what}File, not both`);
  };
  both(o.cert, o.certFile, "cert");
  both(o.key, o.keyFile, "key");
  both(o.ca, o.caFile, "ca");
  if ((o.cert ?? o.certFile) === undefined || (o.key ?? o.keyFile) === undefined) {
    throw new TypeError("promproxy: tls needs a certificate and a key (cert and key, or certFile and keyFile)");
  }
  if (o.rejectUnauthorized !== undefined && !o.requestCert) {
    throw new TypeError("promproxy: tls.rejectUnauthorized applies to client certificates: set requestCert too");
  }
  const files = [o.certFile, o.keyFile, o.caFile].filter((f): f is string => f !== undefined);

  // Small files, read synchronously so that the cert, key and CA are one consistent snapshot.
  const read = () => {
    const load = (f: string | undefined, inline: Pem | Pem[] | undefined) => (f === undefined ? inline : fs.readFileSync(f));
    const ctx: tls.SecureContextOptions = {
      cert: load(o.certFile, o.cert) as Pem,
      key: load(o.keyFile, o.key) as Pem,
      ca: load(o.caFile, o.ca),
      passphrase: o.passphrase,
      minVersion: o.minVersion ?? "TLSv1.2",
    };
    tls.createSecureContext(ctx); // throws on a bad or mismatched pair
    return ctx;
  };
  const signatureOf = (stats: fs.BigIntStats[]) => stats.map((s) => `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`).join("|");

  let current = read();
  let sig = files.length ? signatureOf(files.map((f) => fs.statSync(f, { bigint: true }))) : "";
  let failedSig: string | undefined;
  let pending: Promise<tls.SecureContextOptions | undefined> | undefined;
  const preferHttp1 = o.preferHttp1 ?? true;

  async function refresh(): Promise<tls.SecureContextOptions | undefined> {
    if (files.length === 0) return undefined;
    let now: string;
    try {
      now = signatureOf(await Promise.all(files.map((f) => fs.promises.stat(f, { bigint: true }))));
    } catch (e) {
      if (failedSig !== "missing") logger.error("TLS files not reloaded, keeping the previous certificate", { error: (e as Error).message });
      failedSig = "missing";
      return undefined;
    }
    if (now === sig || now === failedSig) return undefined;
    try {
      current = read();
      sig = now;
      failedSig = undefined;
      logger.info("TLS certificate reloaded", { files: files.join(",") });
      return current;
    } catch (e) {
      failedSig = now;
      logger.error("TLS files not reloaded, keeping the previous certificate", { error: (e as Error).message });
      return undefined;
    }
  }

  return {
    serverOptions: () => ({
      ...current,
      requestCert: o.requestCert ?? false,
      rejectUnauthorized: o.requestCert ? (o.rejectUnauthorized ?? true) : false,
      ALPNCallback: ({ protocols }) => chooseAlpn(protocols, preferHttp1),
    }),
    refresh() {
      pending ??= refresh().finally(() => (pending = undefined));
      return pending;
    },
  };
}
