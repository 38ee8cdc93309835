import { constants } from "node:crypto";
import { readFile } from "node:fs/promises";

type Pem = string | Buffer;

/** TLS for a client's `https://` serverUrl (`createClient({ tls })`). */
export interface ClientTlsOptions {
  /** CA certificates to trust for the server's certificate, PEM. Default: Node's root CAs. */
  ca?: Pem | Pem[];
  /** The client certificate chain for mTLS, PEM. Default none. */
  cert?: Pem;
  /** The client certificate's private key, PEM. Default none. */
  key?: Pem;
  /** Passphrase of an encrypted key. Default none. */
  passphrase?: string;
  /** The name to verify the server certificate against (and send as SNI). Default: serverUrl's host. */
  servername?: string;
}

/**
 * TLS options read from files for every connection attempt, so that rotated
 * certificates and keys are used on the next reconnect without a restart:
 * `createClient({ tls: clientTlsFromFiles({ caFile, certFile, keyFile }) })`.
 */
export function clientTlsFromFiles(files: { caFile?: string; certFile?: string; keyFile?: string; servername?: string }): () => Promise<ClientTlsOptions> {
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) {
    throw new TypeError("promproxy: a client certificate needs both certFile and keyFile");
  }
  return async () => {
    const [ca, cert, key] = await Promise.all([files.caFile, files.certFile, files.keyFile].map((f) => (f === undefined ? undefined : readFile(f))));
    return { ca, cert, key, servername: files.servername };
  };
}

/** Resolves the `tls` client option for one connection attempt. @internal */
export async function resolveClientTls(
  tls: ClientTlsOptions | (() => ClientTlsOptions | Promise<ClientTlsOptions>) | undefined,
): Promise<ClientTlsOptions | undefined> {
  const t = typeof tls === "function" ? await tls() : tls;
  if (!t) return undefined;
  // Only what is set: an undefined `ca` must not replace Node's root CAs.
  return Object.fromEntries(Object.entries(t).filter(([, v]) => v !== undefined)) as ClientTlsOptions;
}

/**
 * OpenSSL options for the client's TLS connections: `secureOptions` given, plus SSL_OP_NO_RENEGOTIATION. A server
 * may not renegotiate on an HTTP/2 connection (RFC 9113 §9.2.1), and an exporter has no reason to: a hostile server
 * asking some 150 times a second cost the host 15 % of a core, which no HTTP/2 budget sees (outside review 18b).
 *
 * @internal
 */
export function noRenegotiation(o?: object): number {
  const given = (o as { secureOptions?: unknown } | undefined)?.secureOptions;
  return (typeof given === "number" ? given : 0) | constants.SSL_OP_NO_RENEGOTIATION;
}
