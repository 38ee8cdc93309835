import type { PeerCertificate, TLSSocket } from "node:tls";
import { createContextKey, createContextValues, type ContextValues } from "@connectrpc/connect";

/** What the server knows about the other end of a client stream's connection. */
export interface Peer {
  /** The remote IP address, when known. */
  remoteAddress?: string;
  /** Whether the connection is TLS. */
  encrypted: boolean;
  /**
   * The certificate the peer presented (TLS with `requestCert`), or undefined
   * when it presented none.
   */
  certificate?: PeerCertificate;
  /** Whether that certificate chains to the server's `ca`. */
  authorized: boolean;
  /** Why it does not, when it does not (e.g. "UNABLE_TO_VERIFY_LEAF_SIGNATURE"). */
  authorizationError?: string;
}

/**
 * Context key under which the server stores the {@link Peer} of every client
 * stream, for interceptors (e.g. {@link mtlsAuth}) and handlers.
 */
export const peerKey = createContextKey<Peer | undefined>(undefined, { description: "promproxy peer" });

/** Reads the peer of a request's connection. @internal */
export function peerOf(req: { readonly socket: unknown }): Peer {
  // For HTTP/2 requests `req.socket` proxies the session's socket.
  const socket = req.socket as Partial<TLSSocket> | undefined;
  const peer: Peer = { remoteAddress: socket?.remoteAddress, encrypted: socket?.encrypted === true, authorized: false };
  if (peer.encrypted && typeof socket?.getPeerCertificate === "function") {
    const cert = socket.getPeerCertificate(false);
    if (cert && Object.keys(cert).length > 0) peer.certificate = cert;
    peer.authorized = socket.authorized === true;
    const err = socket.authorizationError as Error | string | null | undefined;
    if (err) peer.authorizationError = typeof err === "string" ? err : (err.message ?? String(err));
  }
  return peer;
}

/** The context values the server gives every Connect call: the peer. @internal */
export function peerContextValues(req: { readonly socket: unknown }): ContextValues {
  const values = createContextValues();
  values.set(peerKey, peerOf(req));
  return values;
}
