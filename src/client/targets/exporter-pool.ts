import * as http from "node:http";
import { createRequire } from "node:module";
import type { Client, Pool } from "undici";
import { noRenegotiation } from "../../auth/client/client-tls.ts";
import { meteredPoolFactory } from "./exporter-meter.ts";
import type { HttpTargetOptions } from "./http-target-options.ts";

/** TLS settings for an `https` exporter (or an `http` URL scraped with `_scheme=https`). @internal */
export type ExporterTls = NonNullable<HttpTargetOptions["tls"]>;

/** The kept-alive connections to one exporter: one undici `Pool` per scheme, made on first use. @internal */
export interface ExporterPools {
  /** The pool for `http://HOST` or `https://HOST` (HOST is the target URL's host and port). */
  get(secure: boolean): Pool;
  /** Destroys both pools and their sockets; a later `get` makes fresh ones. */
  close(): void;
}

/**
 * The largest response head taken from an exporter, in bytes: Node's own
 * HTTP limit (16 KiB unless `--max-http-header-size` says otherwise), as the
 * `node:http` client had. A larger head fails the scrape (UND_ERR_HEADERS_OVERFLOW).
 */
export const exporterMaxHeaderSize = http.maxHeaderSize;

/**
 * How long an idle connection is kept when the exporter does not say (with
 * `Keep-Alive: timeout=N`, which undici honours): longer than a scrape
 * interval, so that scrapes reuse it; a connection the exporter closed in
 * between costs one fresh try (see the forwarder's retry).
 */
const idleKeepMs = 5 * 60_000;

/** The longest a connection attempt (TCP and TLS) may take before undici gives it up. */
const connectBackstopMs = 60_000;

/**
 * Creates the pools for an exporter's origin, HTTP/1.1 only. Connections are
 * unlimited (the target's `maxScrapesInFlight` and the client's own limit
 * bound them); a connection attempt is given up after a minute, and the per-request header and body timers
 * are set by the caller past the scrape's budget, so the forwarder's own
 * budget timer, whose message names the target, always fires first. Each
 * connection's reads are metered (see exporter-meter.ts), so that an exchange
 * bounds what it reads besides its body.
 *
 * @param host the URL's `host` (name or [IPv6] and port when not the scheme's default)
 * @internal
 */
export function createExporterPools(host: string, tls: ExporterTls): ExporterPools {
  const pools: { http?: Pool; https?: Pool } = {};
  const make = (secure: boolean) =>
    new (loadUndici().Pool)(`${secure ? "https" : "http"}://${host}`, {
      factory: meteredPoolFactory(loadUndici().Client),
      connections: null,
      pipelining: 1,
      keepAliveTimeout: idleKeepMs,
      keepAliveMaxTimeout: idleKeepMs,
      // A backstop only: a scrape's own budget ends its wait sooner. An attempt that never completes (a TLS
      // handshake left unanswered) would otherwise hold its place in the pool for good.
      connectTimeout: connectBackstopMs,
      // HTTP/1.1 only, as the node:http client spoke: undici 8 would negotiate HTTP/2 with an https exporter that
      // offers it (another client's limits and errors), and queues requests in the pool while it negotiates.
      allowH2: false,
      maxHeaderSize: exporterMaxHeaderSize,
      connect: secure
        ? { ca: tls.ca, cert: tls.cert, key: tls.key, servername: tls.serverName, rejectUnauthorized: !tls.insecureSkipVerify, secureOptions: noRenegotiation() }
        : undefined,
    });
  return {
    get(secure) {
      return secure ? (pools.https ??= make(true)) : (pools.http ??= make(false));
    },
    close() {
      for (const p of [pools.http, pools.https]) p?.destroy().catch(() => {});
      pools.http = pools.https = undefined;
    },
  };
}

/** undici and its queued-request hook (see {@link loadUndici}). @internal */
export interface Undici {
  Pool: typeof Pool;
  Client: typeof Client;
  /**
   * The dispatch option under which undici offers a request still waiting for
   * its connection a way out of the queue: a dispatcher that queues the request
   * calls `opts[queuedAbort](cancel)`, and `cancel(reason)` takes it out (its
   * handler's `onResponseError` gets the reason) and drops a connection attempt
   * no other request waits for. undici's own `request()` uses it for `signal`;
   * it is not exported, so it is read from undici's symbols module, and is
   * undefined if a later undici drops it (a queued request is then aborted when
   * it starts, and its connection is kept).
   */
  queuedAbort: symbol | undefined;
}

let undici: Undici | undefined;

/**
 * undici, loaded when the first exporter pool is made: an application that
 * embeds the client with its own registry and no URL target never loads it
 * (importing it costs about 100 ms, 5 MiB of JS heap and 29 MiB of RSS). The
 * forwarder CLI calls it at start, so that its first scrape does not wait for it.
 *
 * @internal
 */
export function loadUndici(): Undici {
  if (undici) return undici;
  const require = createRequire(import.meta.url);
  const { Pool, Client } = require("undici") as typeof import("undici");
  let queuedAbort: symbol | undefined;
  try {
    const s = (require("undici/lib/core/symbols.js") as { kQueuedAbort?: unknown }).kQueuedAbort;
    queuedAbort = typeof s === "symbol" ? s : undefined;
  } catch {
    queuedAbort = undefined;
  }
  return (undici = { Pool, Client, queuedAbort });
}
