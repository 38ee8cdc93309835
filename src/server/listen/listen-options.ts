import type { ListenTlsOptions } from "../../auth/tls-credentials.ts";
import { maxPipelinedRequests } from "./h1-server.ts";
import { defaultOverheadBytesPerSecond, maxOverheadBytesPerSecond, minOverheadBytesPerSecond } from "../../shared/h2-overhead-budget.ts";
import { maxRequestBodyBytes } from "./request-bodies.ts";

/**
 * Where and how {@link PromproxyServer.listen} listens, and what one peer may
 * make the server hold: every resource a connection can pin has a cap here.
 */
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
   * request line) within this time, and with TLS finish its handshake within
   * it and then send its first bytes within it again; else it is closed
   * (slowloris). Default 10 000 ms.
   */
  prefaceTimeoutMs?: number;
  /**
   * Open connections at most, HTTP/1.1 and HTTP/2 together (each client holds
   * one; Prometheus a few). More are closed at once (cleartext HTTP/1.1 peers
   * get a 503 first). Keep it under the process' file descriptor limit
   * (`ulimit -n`). Default: the server's `maxClients` (10 000 unless set) plus
   * 1 000 for Prometheus, curl and reconnecting clients, so 11 000.
   */
  maxConnections?: number;
  /**
   * Open connections at most from one source: an IPv4 address, or an IPv6 /64
   * prefix (what one host usually holds). Clients behind one NAT gateway or
   * load balancer share a source: raise it for those. Default 1 000.
   */
  maxConnectionsPerAddress?: number;
  /**
   * Connections the kernel queues for the server to accept (the listen
   * backlog; Linux caps it at `net.core.somaxconn`, 4 096 by default). When a
   * reconnect storm overflows it, SYNs are dropped and each dropped client
   * waits out TCP's retransmission (1 s, 3 s, 7 s ...) before it even reaches
   * the server. Default 4 096; 1 to 65 535.
   */
  backlog?: number;
  /**
   * Concurrent HTTP/2 streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS).
   * A client uses one Scrape stream; more are refused (REFUSED_STREAM), and a
   * proxy that multiplexes clients (Envoy) opens more connections.
   * Default 16.
   */
  maxStreamsPerConnection?: number;
  /**
   * An HTTP/2 connection without an open stream for this long is closed
   * (GOAWAY). A client's connection always carries its Scrape stream, so only
   * sessions that serve nothing are closed. Default 30 000 ms.
   */
  idleSessionTimeoutMs?: number;
  /**
   * Largest request header list: for HTTP/2, SETTINGS_MAX_HEADER_LIST_SIZE
   * (names and values after HPACK decoding, plus 32 bytes per field), larger
   * header blocks reset their stream; for HTTP/1.1, the request line and
   * headers, larger get 431. Default 16 384 (16 KiB), room for a long bearer
   * token; at least 1 024.
   */
  maxHeaderListBytes?: number;
  /**
   * An answer its peer takes nothing of for this long. HTTP/2 (a page,
   * `/clients`, `/metrics`; a zero flow-control window, a peer that never
   * reads): the stream is reset (RST_STREAM CANCEL) and its memory freed,
   * checked every quarter of it. HTTP/1.1: a connection holding answer bytes
   * its peer takes nothing of is closed, checked the same way, and requests
   * pipelined behind an answer that makes no progress are answered 503.
   * Default 60 000 ms.
   */
  unreadAnswerTimeoutMs?: number;
  /**
   * HTTP/1.1 requests one connection may have waiting (pipelined) behind the
   * one in service: one more drops the connection at once, with a one-line
   * `503` where no answer has begun on the wire (logged once a minute at most).
   * Prometheus never pipelines; a peer that pipelines hundreds of requests and
   * reads nothing must not make the server hold hundreds. Default 16.
   */
  maxPipelinedRequests?: number;
  /**
   * Bytes of local-page answers (`/clients`, `/`, `/status.json`, `/metrics`)
   * one connection (HTTP/2 or HTTP/1.1) may hold unsent: a new one is answered `503` when
   * the connection already holds some and it would take them past this (one
   * answer alone always goes, however large). With `unreadAnswerTimeoutMs` it
   * bounds what a peer that reads nothing pins. Default 16 777 216 (16 MiB).
   */
  maxUnreadAnswerBytesPerConnection?: number;
  /**
   * Bytes of local-page answers all the connections of this listener
   * together may hold unsent, counted as for
   * `maxUnreadAnswerBytesPerConnection`: a new one is answered `503` when they
   * already hold some and it would take them past this, whichever connection
   * asks (logged once a minute at most). It bounds what many connections that
   * read nothing pin together (1 000 of them at the per-connection cap would
   * otherwise pin 16 GiB). 0: one unsent answer at a time. Default 268 435 456
   * (256 MiB). A proxied scrape reserves its first credit in the same budgets
   * and gets less (at least 64 KiB) past the room left; it is never refused for
   * it, nor is a page for scrapes' credit (docs/options.md).
   */
  maxUnreadAnswerBytes?: number;
  /**
   * Bytes one HTTP/2 connection may send a second that carry no data
   * (WINDOW_UPDATE, PRIORITY, padding, frame headers, unknown frames, HEADERS
   * of refused streams): what its socket read less the DATA its streams took,
   * averaged between checks every 2 s, plus 1/64 of what the server wrote on
   * it. nghttp2 takes these without waking JavaScript: past this the
   * connection is closed (GOAWAY `ENHANCE_YOUR_CALM`), logged (warn) once a
   * minute at most with the peer's address. An honest peer sends kilobytes a
   * second. Default 1 048 576 (1 MiB); 65 536 to 1 073 741 824.
   */
  maxClientOverheadBytesPerSecond?: number;
  /**
   * HTTP/2 streams one connection may open whose header blocks the server
   * refuses (a header list over `maxHeaderListBytes`, as HEADERS or trailers;
   * not streams refused for being over `maxStreamsPerConnection` before the
   * client acknowledged the server's SETTINGS): one more closes the connection (GOAWAY
   * `ENHANCE_YOUR_CALM`), judged every 2 s, logged (warn) once a minute at
   * most with the peer's address. An HPACK bomb costs the server much per
   * refused stream. Default 10.
   */
  maxRefusedStreamsPerConnection?: number;
  /**
   * Request body bytes the server reads at most on a request that takes none:
   * every HTTP/1.1 request (the Scrape RPC needs HTTP/2) and every HTTP/2
   * request but the RPCs (proxied scrapes, `/clients`, the pages, `/metrics`,
   * `/healthz`, 404s, 405s). A body announced longer (Content-Length), or of
   * unknown length over HTTP/1.1 (Transfer-Encoding), is answered `413` at
   * once, unread, and its connection closed; over HTTP/2 one that runs past
   * it (or does not end within 60 s) is answered `413` (`408`) and its
   * connection closed. A shorter one is read and dropped: the connection
   * stays usable. Default 65 536 (64 KiB); 0: no body at all.
   */
  maxRequestBodyBytes?: number;
}

/** @internal */
export type ResolvedListenOptions = Required<Omit<ListenOptions, "tls">> & Pick<ListenOptions, "tls">;

/** @internal Fills in defaults and rejects nonsense before anything listens. */
export function resolveListenOptions(o: ListenOptions, defaults: { prefaceTimeoutMs?: number; maxClients?: number } = {}): ResolvedListenOptions {
  const r: ResolvedListenOptions = {
    host: o.host ?? "127.0.0.1",
    port: o.port ?? 8080,
    tls: o.tls,
    prefaceTimeoutMs: o.prefaceTimeoutMs ?? defaults.prefaceTimeoutMs ?? 10_000,
    maxConnections: o.maxConnections ?? (defaults.maxClients ?? 10_000) + 1_000,
    maxConnectionsPerAddress: o.maxConnectionsPerAddress ?? 1_000,
    backlog: o.backlog ?? 4096,
    maxStreamsPerConnection: o.maxStreamsPerConnection ?? 16,
    idleSessionTimeoutMs: o.idleSessionTimeoutMs ?? 30_000,
    maxHeaderListBytes: o.maxHeaderListBytes ?? 16 * 1024,
    unreadAnswerTimeoutMs: o.unreadAnswerTimeoutMs ?? 60_000,
    maxPipelinedRequests: o.maxPipelinedRequests ?? maxPipelinedRequests,
    maxUnreadAnswerBytesPerConnection: o.maxUnreadAnswerBytesPerConnection ?? 16 * 1024 * 1024,
    maxUnreadAnswerBytes: o.maxUnreadAnswerBytes ?? 256 * 1024 * 1024,
    maxClientOverheadBytesPerSecond: o.maxClientOverheadBytesPerSecond ?? defaultOverheadBytesPerSecond,
    maxRefusedStreamsPerConnection: o.maxRefusedStreamsPerConnection ?? 10,
    maxRequestBodyBytes: o.maxRequestBodyBytes ?? maxRequestBodyBytes,
  };
  const whole = ["maxConnections", "maxConnectionsPerAddress", "maxStreamsPerConnection", "maxHeaderListBytes", "maxUnreadAnswerBytesPerConnection", "maxPipelinedRequests", "maxRefusedStreamsPerConnection"] as const;
  for (const k of whole) {
    const v = r[k];
    if (!Number.isInteger(v) || v <= 0 || v > 2 ** 31 - 1) throw new RangeError(`promproxy: listen option ${k} must be a positive whole number, got ${String(v)}`);
  }
  for (const k of ["prefaceTimeoutMs", "idleSessionTimeoutMs", "unreadAnswerTimeoutMs"] as const) {
    const v = r[k];
    // setTimeout fires at once above 2^31-1 ms.
    if (typeof v !== "number" || !(v > 0) || v > 2 ** 31 - 1) throw new RangeError(`promproxy: listen option ${k} must be a positive number of milliseconds, got ${String(v)}`);
  }
  for (const k of ["maxUnreadAnswerBytes", "maxRequestBodyBytes"] as const) {
    const v = r[k];
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`promproxy: listen option ${k} must be a whole number >= 0, got ${String(v)}`);
  }
  if (!Number.isInteger(r.backlog) || r.backlog < 1 || r.backlog > 65_535) throw new RangeError(`promproxy: listen option backlog must be a whole number from 1 to 65535, got ${String(r.backlog)}`);
  const overhead = r.maxClientOverheadBytesPerSecond;
  if (!Number.isInteger(overhead) || overhead < minOverheadBytesPerSecond || overhead > maxOverheadBytesPerSecond) {
    throw new RangeError(`promproxy: listen option maxClientOverheadBytesPerSecond must be a whole number from ${minOverheadBytesPerSecond} to ${maxOverheadBytesPerSecond}, got ${String(overhead)}`);
  }
  if (r.maxHeaderListBytes < 1024) throw new RangeError(`promproxy: listen option maxHeaderListBytes must be at least 1024, got ${r.maxHeaderListBytes}`);
  return r;
}
