import type { PeerCertificate } from "node:tls";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { checkPattern, compilePatterns, patternList } from "./patterns.ts";
import { peerKey } from "./peer.ts";
import { setIdentity } from "./set-identity.ts";

/** Options of {@link mtlsAuth}. */
export interface MtlsAuthOptions {
  /**
   * The names or patterns a verified client certificate may hold. Default:
   * its subject common name and its DNS subject alternative names, each an
   * exact name (a certificate for `CN=app-1` holds `app-1`; a DNS SAN
   * `*.eu.example` holds one label there).
   */
  names?: (certificate: PeerCertificate) => readonly string[] | string | undefined;
  /** The identity name for logs. Default `cert:` and the subject CN (or the SHA-256 fingerprint when it has none). */
  identity?: (certificate: PeerCertificate) => string;
}

/** The DNS names of a certificate's subject alternative names. @internal */
export function dnsNamesOf(cert: PeerCertificate): string[] {
  const out: string[] = [];
  for (const part of (cert.subjectaltname ?? "").split(/,\s*/)) {
    if (part.startsWith("DNS:")) out.push(part.slice(4));
  }
  return out;
}

function commonNameOf(cert: PeerCertificate): string | undefined {
  const cn = cert.subject?.CN as string | string[] | undefined;
  return Array.isArray(cn) ? cn[0] : cn;
}

/** The default names of a certificate: its CN and DNS SANs that are valid names or patterns. @internal */
export function defaultCertificateNames(cert: PeerCertificate): string[] {
  const names: string[] = [];
  for (const n of [commonNameOf(cert), ...dnsNamesOf(cert)]) {
    if (!n) continue;
    try {
      names.push(checkPattern(n));
    } catch {
      /* not a host name (e.g. "Example Corp client"): not a name it can hold */
    }
  }
  return names;
}

/**
 * A server interceptor that takes the client's identity from its TLS client
 * certificate: listen with `tls: { ca, requestCert: true }`. The certificate
 * must chain to that CA; its names (default: CN and DNS SANs) bind the names
 * the client may hold. No certificate, or one the CA did not sign:
 * `Unauthenticated`; a hello for another name: `PermissionDenied`.
 *
 * With `rejectUnauthorized: true` (Node's default once `requestCert` is set)
 * the TLS handshake itself already refuses untrusted certificates; with
 * `rejectUnauthorized: false` (so that Prometheus and token clients can
 * connect without one) this interceptor is what refuses them.
 */
export function mtlsAuth(options: MtlsAuthOptions = {}): Interceptor {
  const namesOf = options.names ?? defaultCertificateNames;
  const identityName =
    options.identity ?? ((c: PeerCertificate) => `cert:${commonNameOf(c) ?? (c.fingerprint256 ?? "unknown").slice(0, 23)}`);
  return (next) => async (req) => {
    const peer = req.contextValues.get(peerKey);
    if (!peer?.encrypted) throw new ConnectError("a client certificate is required: connect over TLS (https://)", Code.Unauthenticated);
    if (!peer.certificate) throw new ConnectError("a client certificate is required: the connection presented none", Code.Unauthenticated);
    if (!peer.authorized) {
      throw new ConnectError(`client certificate not trusted: ${peer.authorizationError ?? "not signed by the server's CA"}`, Code.Unauthenticated);
    }
    const cert = peer.certificate;
    const names = namesOf(cert);
    setIdentity(req.contextValues, { name: identityName(cert), allows: compilePatterns(names ? patternList(names) : []) });
    return next(req);
  };
}
