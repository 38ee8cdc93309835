/**
 * The client's options, every default and check in one place: `resolveClientOptions` turns what the application
 * gave into what the engine runs on, or throws a TypeError naming the option. Nothing downstream reads a raw option.
 */
import type * as http2 from "node:http2";
import type { ConnectError, Interceptor } from "@connectrpc/connect";
import type { ClientTlsOptions } from "../auth/client/client-tls.ts";
import { createConsoleLogger, toLogger, withClientField, type AnyLogger, type Logger } from "../shared/logger.ts";
import { checkLabels, checkName } from "../shared/names.ts";
import { checkOptionKeys } from "../shared/option-keys.ts";
import { maxTimerMs } from "../shared/sleep.ts";
import { oneOf, positiveMs, whole } from "./option-checks.ts";
import { resolveH2Limits } from "./h2-limits.ts";
import { resolveBackoff, type BackoffOptions } from "./backoff.ts";
import { serverUrls, systemResolver } from "./endpoints.ts";
import type { HttpTargetOptions } from "./targets/http-target-options.ts";
import { resolveRegistryOptions, type RegistryOptions } from "./registry-options.ts";
import type { StreamInfo } from "./stream-info.ts";
export type { StreamInfo } from "./stream-info.ts";

/** Options of {@link createClient}. Only `name` and `serverUrl` are required. */
export interface ClientOptions extends RegistryOptions {
  /** The name Prometheus scrapes this client by: a DNS host name, e.g. "app-1". Required. */
  name: string;
  /**
   * The promproxy server, e.g. "http://proxy:8080" (or "https://..."). Required.
   * The client holds a stream to every replica (see docs/ha.md):
   * - a list of URLs: one stream to each;
   * - one URL whose host name resolves to several addresses: one stream to
   *   each address (resolved again every `resolveIntervalMs`: addresses that
   *   disappear are dropped, new ones dialled), the name kept for TLS and `:authority`;
   * - one URL with one address (a load balancer, or a single server): new
   *   connections until the client holds a stream to every replica the
   *   welcomes name, `replicaCount` of them when the server announces it.
   */
  serverUrl: string | string[];
  /** How often a server host name is resolved again for new or removed addresses. Default 30 000 ms. */
  resolveIntervalMs?: number;
  /**
   * Resolves a server host name to its addresses. Default: `dns.lookup` with `all: true` (the system's resolver,
   * `/etc/hosts` included), keeping the addresses of the first one's family.
   */
  resolve?: (hostname: string) => Promise<string[]>;
  /**
   * Through one address, when the server announces no replica count: how often one extra connection probes for
   * replicas not met yet. The interval doubles (up to 32 times) while probes find nothing new, and starts again
   * when the replicas held change. Set the server's `replicaCount` (CLI `--replica-count`) and no probe is needed.
   * Default 30 000 ms.
   */
  probeIntervalMs?: number;
  /**
   * Through one address: the wait after a connection that landed on a replica
   * already held, before the next try. Default 100 ms doubling to 2 s, half of each random.
   * While a replica is missing the wait is never more than 10 s, whatever `maxMs`.
   */
  searchBackoff?: BackoffOptions;
  /**
   * Through one address: the most replicas the client holds a stream to, and the most a welcome's `replica_count`
   * is believed. A server naming a fresh replica in every welcome gets no more streams than this (plus at most 8
   * searching at once); each further welcome is closed again at once, and the cap is logged once when it bites.
   * Default 64, at most 1,024 (a hello lists the replicas held; a server refuses a hello listing more).
   */
  maxReplicas?: number;
  /**
   * The most addresses of the server's host name the client dials (the first ones, sorted): a DNS answer with
   * hundreds of addresses gets this many streams, said once in the log. Default 64.
   */
  maxServerAddresses?: number;
  /**
   * Exporters to forward scrapes to, as "[PORT=]URL" strings (e.g.
   * "9100=http://127.0.0.1:9100/metrics") or {@link HttpTargetOptions}: the
   * client serves `http://NAME:PORT/PATH` from the exporter at that URL, each
   * announced in `/clients` as `NAME:PORT` (a target without a port: `NAME`,
   * any port). Next to `registry` when both are given. Default none.
   */
  targets?: (string | HttpTargetOptions)[];
  /** Labels announced for service discovery (`GET /clients`). Default none. */
  labels?: Record<string, string>;
  /** Connect interceptors for the stream (credentials and the like). Default none. */
  interceptors?: Interceptor[];
  /** Wire protocol to the server: "grpc" (works through gRPC proxies such as nginx `grpc_pass`) or "connect". Default "grpc". */
  protocol?: "grpc" | "connect";
  /**
   * What carries the gRPC stream. "fast": promproxy's own gRPC framing on the
   * HTTP/2 session (frames written in batches as the server reads them, read
   * without a per-message pipeline; a fraction of the CPU and memory per
   * scrape). "connect": connect-es's gRPC transport, as before. The
   * `interceptors` run on either; one that reads or replaces the stream's
   * messages (not just headers) makes a stream use "connect" (see
   * docs/options.md, `transport`). Same wire format, errors and limits either way. `protocol:
   * "connect"` always uses connect-es. Default "fast".
   */
  transport?: "fast" | "connect";
  /** Waits between connection attempts (per stream). Default 500 ms doubling to 30 s, half of each random. */
  backoff?: BackoffOptions;
  /**
   * Most scrapes this client works on at once; more are answered "busy" (HTTP
   * 503). A place is freed when the work ends (the registry's render, the
   * exporter's request), not when the scrape times out or is cancelled: a
   * server ordering with 1 ms timeouts cannot make the host render more than
   * this many times at once. Default 8.
   */
  maxScrapesInFlight?: number;
  /**
   * Largest frame read from a server, in bytes (16 KiB - 64 MiB); a larger one
   * ends that stream unread, and the client reconnects. Server frames are at
   * most 64 KiB (PROTOCOL.md; raise this with a server's `maxHeaderListBytes`
   * above 60 KiB: it bounds an order). No compressed frame is accepted. Default 64 KiB.
   */
  maxServerFrameBytes?: number;
  /**
   * Most frames (results' heads and ends) waiting to be sent on one stream
   * (16 - 1 048 576). A server that does not read them is not listening: the
   * stream is ended (ResourceExhausted) and redialled. The same happens when
   * nothing we queued has left for `heartbeatMisses` heartbeat intervals.
   * Pongs never pile up (at most 8 pending: the latest pings are answered), and body chunks and
   * one-frame results wait for the transport (at most 256 KiB of body queued per stream, and the
   * one chunk or result that found less).
   * Default 1024.
   */
  maxQueuedFrames?: number;
  /**
   * Most frames read from the servers a second, all streams together, each an equal share (10 - 1 000 000); past
   * it the client pauses the stream and HTTP/2 flow control holds the rest in the server's buffers, so a flood of
   * orders, cancels or pings costs the host a bounded share of a core. A server keeping to the protocol sends one order per scrape, a credit per
   * half megabyte or so of body and a ping per heartbeat. Default 1000.
   */
  maxServerFramesPerSecond?: number;
  /**
   * Most HTTP/2 control frames (PING, SETTINGS, ALTSVC; ORIGIN over TLS) the servers may send a second, all the client's
   * connections together, each an equal share (10 - 1 000 000; a second's worth of a share at once, at least 10): many
   * replicas get no more in all. Past its share a connection is closed, the stream ends with the reason ("the server sent
   * N HTTP/2 control frames ...") and the client dials again. Honest: a handful a connection. Default 100.
   */
  maxServerControlFramesPerSecond?: number;
  /**
   * Most bytes a second the servers may send that carry no data, all the client's connections together, each judged against
   * an equal share (64 KiB - 1 GiB; averaged between checks, every 2 s while a connection is quiet): what a connection's
   * socket read less the DATA its stream took (WINDOW_UPDATE, padding, PRIORITY, that nghttp2 takes without asking the
   * client). Past its share a connection is closed, the stream ends with the reason ("the server sent N bytes in T s that
   * carry no data ...") and the client dials again. Honest: under 1 KB/s a connection. Default 1 MiB.
   */
  maxServerOverheadBytesPerSecond?: number;
  /** An HTTP/2 PING once nothing was read from the connection this long, one at a time; see `pingTimeoutMs`. Default 10 000 ms. */
  pingIntervalMs?: number;
  /** A PING unanswered this long drops the connection; counted on ticks that came on time (a blocked host loop is not the server's fault). Default 5 000 ms. */
  pingTimeoutMs?: number;
  /**
   * A stream on which nothing arrives from the server for this many heartbeat
   * intervals (announced in the welcome) is considered dead and reconnected. Default 3.
   */
  heartbeatMisses?: number;
  /**
   * Longest wait from dialing the server to its welcome (a server that never answers, a stalled process, a TCP connection
   * that never completes): the attempt fails with `DeadlineExceeded` (`onError`), the client backs off and retries. Default 10 000 ms.
   */
  welcomeTimeoutMs?: number;
  /** Each attempt that timed out waiting for its welcome doubles the next one's wait, up to this; a welcome resets it. Default 60 000 ms (or `welcomeTimeoutMs` if larger). */
  maxWelcomeTimeoutMs?: number;
  /** Options for Node's `http2.connect` (TLS: `ca`, `cert`, `key`, `servername`, ...); server push stays off. Default none. */
  http2Options?: http2.ClientSessionOptions | http2.SecureClientSessionOptions;
  /**
   * TLS for an `https://` serverUrl: a CA to trust, a client certificate and
   * key (mTLS). Or a function returning them, called for every connection
   * attempt (e.g. `clientTlsFromFiles(...)`, which re-reads rotated files).
   * Merged over `http2Options`. Default none (Node's root CAs, no client certificate).
   */
  tls?: ClientTlsOptions | (() => ClientTlsOptions | Promise<ClientTlsOptions>);
  /** Called each time a server welcomes a stream: its session, the replica (`""` when the server names none) and where it was dialled. */
  onConnected?: (info: StreamInfo) => void;
  /**
   * Called each time an established stream ends (`error` undefined when it ended cleanly), with the stream's
   * `info`; the client reconnects unless stopped. Here, in `onError` and in `ready()`, an error's message is
   * one line of at most 1 024 characters (control characters escaped: a server's words are cut there).
   */
  onDisconnected?: (error: ConnectError | undefined, info: StreamInfo) => void;
  /** Called for every failed connection attempt (refusals included), in words where the transport's own say little ("the server speaks TLS: use https://"; the original error is its `cause`). */
  onError?: (error: ConnectError) => void;
  /**
   * Where the client logs: a {@link Logger} (`(message, fields)`), or a pino or
   * bunyan logger (`(fields, message)`, told apart by its `child()`). A logger
   * that throws never takes the client down. Default: warnings and errors to stderr.
   */
  logger?: AnyLogger;
}

/** Every option's name (the type keeps it complete and exact); any other key is refused. */
const optionNames: Record<keyof ClientOptions, true> = {
  name: true, serverUrl: true, resolveIntervalMs: true, resolve: true, probeIntervalMs: true, searchBackoff: true, maxReplicas: true,
  maxServerAddresses: true, registry: true, targets: true, metricsPath: true, labels: true, interceptors: true, protocol: true,
  transport: true, backoff: true, maxScrapesInFlight: true, maxServerFrameBytes: true, maxQueuedFrames: true, gzipLevel: true,
  maxServerFramesPerSecond: true, maxRenderPercent: true, maxRegistryScrapesPerSecond: true, maxServerControlFramesPerSecond: true, maxServerOverheadBytesPerSecond: true,
  pingIntervalMs: true, pingTimeoutMs: true, heartbeatMisses: true, welcomeTimeoutMs: true, maxWelcomeTimeoutMs: true, http2Options: true, tls: true,
  onConnected: true, onDisconnected: true, onError: true, logger: true,
};

/** Every client option checked, with its default filled in: what the engine runs on. @internal */
export interface ResolvedClientOptions extends ReturnType<typeof resolveH2Limits>, ReturnType<typeof resolveRegistryOptions> {
  name: string;
  /** The checked server URLs (one, or a list). */
  urls: URL[];
  labels: Record<string, string>;
  /** The logger, every line carrying the client's name. */
  log: Logger;
  resolve: (hostname: string) => Promise<string[]>;
  resolveIntervalMs: number;
  probeIntervalMs: number;
  searchBackoff: Required<BackoffOptions>;
  backoff: Required<BackoffOptions>;
  maxReplicas: number;
  maxServerAddresses: number;
  maxScrapesInFlight: number;
  maxServerFrameBytes: number;
  maxQueuedFrames: number;
  maxServerFramesPerSecond: number;
  interceptors: Interceptor[];
  protocol: "grpc" | "connect";
  transport: "fast" | "connect";
  pingIntervalMs: number;
  pingTimeoutMs: number;
  heartbeatMisses: number;
  welcomeTimeoutMs: number;
  maxWelcomeTimeoutMs: number;
  http2Options: http2.ClientSessionOptions | http2.SecureClientSessionOptions;
  tls: ClientOptions["tls"];
  targets: (string | HttpTargetOptions)[];
  onConnected: ClientOptions["onConnected"];
  onDisconnected: ClientOptions["onDisconnected"];
  onError: ClientOptions["onError"];
}

/** Checks `options` and fills in every default; throws a TypeError naming the first bad option. @internal */
export function resolveClientOptions(options: ClientOptions): ResolvedClientOptions {
  checkOptionKeys(options, Object.keys(optionNames), { discoverIntervalMs: "probeIntervalMs", discoveryBackoff: "searchBackoff" });
  const checked = checkName(options.name ?? "");
  if ("error" in checked) throw new TypeError(`promproxy: option name: ${checked.error}`);
  const labels = options.labels ?? {};
  const labelError = checkLabels(labels, { maxLabels: 1000, maxLabelValueLength: 1 << 20 });
  if (labelError) throw new TypeError(`promproxy: option ${labelError}`);
  const name = checked.name;
  const resolved: ResolvedClientOptions = {
    name,
    urls: serverUrls(options.serverUrl, options.tls !== undefined),
    labels,
    log: withClientField(options.logger ? toLogger(options.logger) : createConsoleLogger("warn"), name),
    resolve: options.resolve ?? systemResolver,
    resolveIntervalMs: positiveMs(options.resolveIntervalMs, "resolveIntervalMs", 30_000),
    probeIntervalMs: positiveMs(options.probeIntervalMs, "probeIntervalMs", 30_000, undefined, Math.floor(maxTimerMs / 32)), // probes wait up to 32 intervals
    searchBackoff: resolveBackoff(options.searchBackoff, { initialMs: 100, maxMs: 2_000, multiplier: 2, jitter: 0.5 }, "searchBackoff"),
    backoff: resolveBackoff(options.backoff, { initialMs: 500, maxMs: 30_000, multiplier: 2, jitter: 0.5 }, "backoff"),
    maxReplicas: whole(options.maxReplicas, "maxReplicas", 64, 1, 1024), // a hello lists the held ones: a server refuses over 1,024
    maxServerAddresses: whole(options.maxServerAddresses, "maxServerAddresses", 64, 1, Number.MAX_SAFE_INTEGER),
    maxScrapesInFlight: whole(options.maxScrapesInFlight, "maxScrapesInFlight", 8, 1, Number.MAX_SAFE_INTEGER),
    maxServerFrameBytes: whole(options.maxServerFrameBytes, "maxServerFrameBytes", 1 << 16, 1 << 14, 1 << 26),
    maxQueuedFrames: whole(options.maxQueuedFrames, "maxQueuedFrames", 1024, 16, 1 << 20),
    maxServerFramesPerSecond: whole(options.maxServerFramesPerSecond, "maxServerFramesPerSecond", 1000, 10, 1_000_000),
    ...resolveH2Limits(options),
    ...resolveRegistryOptions(options),
    interceptors: options.interceptors ?? [],
    protocol: oneOf(options.protocol, "protocol", ["grpc", "connect"] as const),
    transport: oneOf(options.transport, "transport", ["fast", "connect"] as const),
    pingIntervalMs: positiveMs(options.pingIntervalMs, "pingIntervalMs", 10_000),
    pingTimeoutMs: positiveMs(options.pingTimeoutMs, "pingTimeoutMs", 5_000),
    heartbeatMisses: whole(options.heartbeatMisses, "heartbeatMisses", 3, 1, 1000),
    welcomeTimeoutMs: positiveMs(options.welcomeTimeoutMs, "welcomeTimeoutMs", 10_000),
    maxWelcomeTimeoutMs: positiveMs(options.maxWelcomeTimeoutMs, "maxWelcomeTimeoutMs", 60_000, { ms: positiveMs(options.welcomeTimeoutMs, "welcomeTimeoutMs", 10_000), name: "welcomeTimeoutMs" }),
    http2Options: options.http2Options ?? {},
    tls: options.tls,
    targets: options.targets ?? [],
    onConnected: options.onConnected,
    onDisconnected: options.onDisconnected,
    onError: options.onError,
  };
  return resolved;
}
