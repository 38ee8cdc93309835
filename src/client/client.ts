import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient as createRpcClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { register as globalRegister } from "prom-client";
import {
  ClientFrameSchema,
  HelloSchema,
  ScrapeService,
  TargetSchema,
  type ScrapeOrder,
  type Welcome,
} from "../../gen/promproxy/v1/scrape_pb.ts";
import { createConsoleLogger } from "../shared/logger.ts";
import { checkLabels, checkName } from "../shared/names.ts";
import { pathMatches } from "../shared/paths.ts";
import { createQueue, type Queue } from "../shared/queue.ts";
import { version } from "../shared/version.ts";
import { resolveClientTls } from "../auth/client-tls.ts";
import { createBackoff } from "./backoff.ts";
import { createHttpTargets } from "./http-target.ts";
import type { ClientOptions } from "./options.ts";
import { registryTarget } from "./registry-target.ts";
import { ScrapeErrorReason, TargetError, type ResultWriter, type ScrapeTarget } from "./target.ts";

type ClientFrameInit = MessageInitShape<typeof ClientFrameSchema>;

/** Where a client is: not started, dialing (or waiting to redial), welcomed, or stopped for good. */
export type ClientState = "idle" | "connecting" | "connected" | "stopped";

/** A promproxy client: one outbound stream to the server, serving scrapes from it. */
export interface PromproxyClient {
  /**
   * Starts connecting. Resolves once the server has welcomed the client.
   * Rejects with the server's `ConnectError` (code intact) when it refuses the
   * client for a reason retrying cannot fix (`Unauthenticated`,
   * `PermissionDenied`, `InvalidArgument`); the client is stopped then. Keeps
   * retrying with backoff while the server is unreachable or refuses for
   * other reasons, until `signal` aborts (rejecting with its reason, the client
   * keeps connecting in the background) or `timeoutMs` passes (likewise).
   * Without awaiting, the client connects in the background.
   */
  start(options?: { signal?: AbortSignal; timeoutMs?: number }): Promise<void>;
  /** Ends the stream and stops reconnecting. Resolves once the stream is closed. */
  stop(): Promise<void>;
  /** The current state. */
  readonly state: ClientState;
}

/**
 * Why a finished scrape's signal is aborted (releasing its listeners). One
 * shared reason: `abort()` without one builds a DOMException with a stack
 * trace for every scrape, a few percent of a small scrape's client CPU.
 */
const scrapeOver = new TargetError(ScrapeErrorReason.CANCELLED, "the scrape is over");

/** Refusals that retrying cannot fix. */
const fatalCodes = new Set([Code.Unauthenticated, Code.PermissionDenied, Code.InvalidArgument]);

/** Creates a promproxy client. See {@link ClientOptions} for every option and its default. */
export function createClient(options: ClientOptions): PromproxyClient {
  const forwarded = options.targets ? createHttpTargets(options.targets) : [];
  const targets: ScrapeTarget[] = [...forwarded];
  if (forwarded.length === 0 || options.registry) {
    const metricsPath = options.metricsPath ?? "/metrics";
    const clash = forwarded.find((t) => t.port === 0 && pathMatches(t.path, metricsPath));
    if (clash) {
      throw new TypeError(`promproxy: target ${clash.display} serves any port at ${metricsPath}, where the registry is served too: give it a port (PORT=URL)`);
    }
    targets.push(registryTarget(options.registry ?? globalRegister, metricsPath, options.gzipLevel ?? 1));
  }
  if (forwarded.length === 0) return createClientWithTargets(options, targets);
  const client = createClientWithTargets(options, targets);
  return {
    get state() {
      return client.state;
    },
    start: (so) => client.start(so),
    async stop() {
      await client.stop();
      for (const t of forwarded) t.close();
    },
  };
}

/** @internal The client engine, for any set of targets (registry, forwarder). */
export function createClientWithTargets(options: ClientOptions, targets: ScrapeTarget[]): PromproxyClient {
  const checked = checkName(options.name ?? "");
  if ("error" in checked) throw new TypeError(`promproxy: option name: ${checked.error}`);
  let base: URL;
  try {
    base = new URL(options.serverUrl);
  } catch {
    throw new TypeError(`promproxy: option serverUrl ${JSON.stringify(options.serverUrl)} is not a URL`);
  }
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    throw new TypeError(`promproxy: option serverUrl must be http:// or https://, got ${JSON.stringify(options.serverUrl)}`);
  }
  if (options.tls && base.protocol !== "https:") throw new TypeError("promproxy: option tls needs an https:// serverUrl");
  const labelError = checkLabels(options.labels ?? {}, { maxLabels: 1000, maxLabelValueLength: 1 << 20 });
  if (labelError) throw new TypeError(`promproxy: option ${labelError}`);
  const name = checked.name;
  const log = options.logger ?? createConsoleLogger("warn");
  const maxInFlight = options.maxScrapesInFlight ?? 8;
  const heartbeatMisses = options.heartbeatMisses ?? 3;
  const backoff = createBackoff(options.backoff);
  const hello = create(HelloSchema, {
    name,
    labels: options.labels ?? {},
    version,
    targets: targets.map((t) => create(TargetSchema, { port: t.port, path: t.path, labels: t.labels })),
  });

  let state: ClientState = "idle";
  let loop: Promise<void> | undefined;
  const stopper = new AbortController();
  /** Settles the first start() once the first welcome or fatal refusal is known. */
  let firstOutcome: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  const firstResult = new Promise<void>((resolve, reject) => (firstOutcome = { resolve, reject }));
  firstResult.catch(() => {}); // observed by start(); never unhandled

  /** One connection attempt: returns when the stream ends, throws why it failed. `attempt.welcomed` tells whether it got that far. */
  async function connectOnce(attempt: { welcomed: boolean }): Promise<void> {
    const tls = await resolveClientTls(options.tls); // per attempt: rotated certificate files are re-read
    const sessionManager = new Http2SessionManager(
      base,
      // pingIdleConnection stays off: our one stream keeps the connection non-idle, so it would add nothing,
      // and with it on, Connect (2.2) re-arms its PING timer when the stream closes after the session was
      // destroyed; the timer then calls ping() on the dead session, which throws an uncaught
      // ERR_HTTP2_INVALID_SESSION ~pingIntervalMs after every reconnect and crashes the host application
      // (connectrpc/connect-es#1795; test/e2e/faults.test.ts catches it).
      { pingIntervalMs: options.pingIntervalMs ?? 10_000, pingTimeoutMs: options.pingTimeoutMs ?? 5_000, pingIdleConnection: false },
      tls ? { ...options.http2Options, ...tls } : options.http2Options,
    );
    const transportOptions = {
      baseUrl: base.toString(),
      httpVersion: "2" as const,
      sessionManager,
      interceptors: options.interceptors ?? [],
    };
    const transport = options.protocol === "connect" ? createConnectTransport(transportOptions) : createGrpcTransport(transportOptions);
    const rpc = createRpcClient(ScrapeService, transport);
    const out = createQueue<ClientFrameInit>();
    const call = new AbortController();
    const onStop = () => call.abort(new ConnectError("client stopped", Code.Canceled));
    stopper.signal.addEventListener("abort", onStop);
    const scrapes = new Map<bigint, ScrapeRun>();
    let welcome: Welcome | undefined;
    let lastHeard = Date.now();
    let watchdog: NodeJS.Timeout | undefined;
    out.push({ frame: { case: "hello", value: hello } });
    try {
      for await (const frame of rpc.scrape(out, { signal: call.signal })) {
        lastHeard = Date.now();
        const f = frame.frame;
        if (!welcome) {
          if (f.case !== "welcome") throw new ConnectError(`the server sent ${f.case ?? "an empty frame"} before its welcome`, Code.Internal);
          welcome = f.value;
          attempt.welcomed = true;
          const intervalMs = Number(welcome.heartbeatInterval?.seconds ?? 10n) * 1000 + (welcome.heartbeatInterval?.nanos ?? 0) / 1e6;
          const silenceMs = Math.max(1000, intervalMs * heartbeatMisses);
          watchdog = setInterval(() => {
            if (Date.now() - lastHeard > silenceMs) {
              call.abort(new ConnectError(`nothing heard from the server for ${silenceMs / 1000}s`, Code.Unavailable));
            }
          }, Math.max(250, Math.min(intervalMs, silenceMs / 4)));
          state = "connected";
          backoff.reset();
          log.info("connected", { name, server: base.host, session: welcome.sessionId });
          options.onConnected?.({ sessionId: welcome.sessionId });
          firstOutcome?.resolve();
          firstOutcome = undefined; // later refusals go to onError, and the client keeps retrying
          continue;
        }
        switch (f.case) {
          case "order":
            startScrape(f.value, welcome, scrapes, out);
            break;
          case "credit":
            scrapes.get(f.value.scrapeId)?.credit(Number(f.value.bytes));
            break;
          case "cancel":
            scrapes.get(f.value.scrapeId)?.abort(new TargetError(ScrapeErrorReason.CANCELLED, `cancelled by the server: ${f.value.reason}`));
            break;
          case "ping":
            out.push({ frame: { case: "pong", value: { nonce: f.value.nonce } } });
            break;
          default:
            break; // frames from a newer server version
        }
      }
      if (!welcome) throw new ConnectError("the server ended the stream without a welcome", Code.Unavailable);
      if (!stopper.signal.aborted) throw new ConnectError("the server ended the stream", Code.Unavailable);
    } catch (e) {
      if (call.signal.aborted && call.signal.reason instanceof ConnectError) throw call.signal.reason;
      throw ConnectError.from(e);
    } finally {
      clearInterval(watchdog);
      stopper.signal.removeEventListener("abort", onStop);
      for (const s of scrapes.values()) s.abort(new TargetError(ScrapeErrorReason.CANCELLED, "the stream ended"));
      out.close();
      call.abort();
      sessionManager.abort();
      if (state === "connected") state = stopper.signal.aborted ? "stopped" : "connecting";
    }
  }

  interface ScrapeRun {
    credit(bytes: number): void;
    abort(reason: TargetError): void;
  }

  function startScrape(order: ScrapeOrder, welcome: Welcome, scrapes: Map<bigint, ScrapeRun>, out: Queue<ClientFrameInit>) {
    const id = order.scrapeId;
    const fail = (reason: ScrapeErrorReason, message: string) =>
      out.push({ frame: { case: "end", value: { scrapeId: id, error: { reason, message } } } });
    if (scrapes.has(id)) return; // a repeated id is the server's bug; ignore it
    if (scrapes.size >= maxInFlight) return fail(ScrapeErrorReason.BUSY, `client "${name}" has ${maxInFlight} scrapes in flight, its maximum`);
    const target = targets.find((t) => (t.port === 0 || t.port === order.port) && pathMatches(t.path, order.path));
    if (!target) return fail(ScrapeErrorReason.NOT_FOUND, `client "${name}" serves nothing at port ${order.port} path ${JSON.stringify(order.path.slice(0, 200))}`);

    const timeoutMs = order.timeout ? Number(order.timeout.seconds) * 1000 + order.timeout.nanos / 1e6 : 10_000;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new TargetError(ScrapeErrorReason.TIMEOUT, `scrape timed out after ${timeoutMs / 1000}s`)), timeoutMs);
    let credit = Number(order.creditBytes) || 0;
    let wake: (() => void) | undefined;
    // Never above the server's limit (a chunk over it ends the stream). A little under a large
    // limit, so that the frame around a chunk fits a power-of-two buffer in the protobuf writer,
    // which grows by doubling: half the allocation and copying per relayed byte.
    const chunkLimit = welcome.limits?.maxChunkBytes || 64 * 1024;
    const maxChunk = chunkLimit >= 64 * 1024 ? chunkLimit - 64 : chunkLimit;
    let headSent = false;

    const run: ScrapeRun = {
      credit(bytes) {
        credit += bytes;
        wake?.();
      },
      abort(reason) {
        ac.abort(reason);
      },
    };
    scrapes.set(id, run);
    const aborted = new Promise<never>((_, reject) => {
      ac.signal.addEventListener("abort", () => {
        reject(ac.signal.reason);
        wake?.();
      }, { once: true });
    });
    aborted.catch(() => {});

    const writer: ResultWriter = {
      head(status, headers) {
        if (headSent || ac.signal.aborted) return;
        headSent = true;
        out.push({
          frame: {
            case: "head",
            value: { scrapeId: id, status, headers: Object.entries(headers).map(([name, value]) => ({ name, value })) },
          },
        });
      },
      async write(data) {
        let offset = 0;
        while (offset < data.byteLength) {
          if (ac.signal.aborted) throw ac.signal.reason;
          if (credit <= 0) {
            await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
            continue;
          }
          const n = Math.min(maxChunk, credit, data.byteLength - offset);
          credit -= n;
          out.push({ frame: { case: "chunk", value: { scrapeId: id, data: data.subarray(offset, offset + n) } } });
          offset += n;
        }
      },
    };

    const headers: Record<string, string> = {};
    for (const h of order.headers) headers[h.name.toLowerCase()] = h.value;
    Promise.race([
      target.serve({ port: order.port, path: order.path, scheme: order.scheme || "http", headers, timeoutMs, signal: ac.signal }, writer),
      aborted,
    ]).then(
      () => {
        if (ac.signal.aborted) throw ac.signal.reason;
        if (!headSent) throw new TargetError(ScrapeErrorReason.INTERNAL, "the target produced no result");
        out.push({ frame: { case: "end", value: { scrapeId: id } } });
      },
    ).catch((e: unknown) => {
      const err = e instanceof TargetError ? e : new TargetError(ScrapeErrorReason.INTERNAL, e instanceof Error ? e.message : String(e));
      // A cancelled scrape gets no further frames; the server has forgotten it (an end is harmless though).
      fail(err.reason, err.message);
      if (err.reason !== ScrapeErrorReason.CANCELLED) log.debug("scrape failed", { name, scrape: String(id), reason: err.message });
    }).finally(() => {
      clearTimeout(timer);
      scrapes.delete(id);
      if (!ac.signal.aborted) ac.abort(scrapeOver);
    });
  }

  async function run(): Promise<void> {
    while (!stopper.signal.aborted) {
      state = "connecting";
      let error: ConnectError | undefined;
      const attempt = { welcomed: false };
      try {
        await connectOnce(attempt);
      } catch (e) {
        error = ConnectError.from(e);
      }
      if (stopper.signal.aborted) break;
      const wasConnected = attempt.welcomed;
      if (wasConnected) {
        log.warn("disconnected", { name, reason: error?.rawMessage });
        options.onDisconnected?.(error);
      }
      if (error && !wasConnected) {
        options.onError?.(error);
        if (fatalCodes.has(error.code) && firstOutcome) {
          log.error("refused by the server", { name, code: Code[error.code], reason: error.rawMessage });
          firstOutcome.reject(error);
          firstOutcome = undefined;
          break;
        }
        log.warn("connection attempt failed", { name, code: Code[error.code], reason: error.rawMessage });
      }
      const delay = backoff.next();
      await sleep(delay, stopper.signal);
    }
    state = "stopped";
  }

  return {
    get state() {
      return state;
    },
    async start(so = {}) {
      if (state === "stopped") throw new ConnectError("the client was stopped", Code.FailedPrecondition);
      if (!loop) {
        loop = run().then(() => firstOutcome?.reject(new ConnectError("the client was stopped", Code.Canceled)));
        // The first outcome's promise is what start() awaits; later refusals go to onError.
      }
      const waits: Promise<void>[] = [firstResult];
      const cleanups: (() => void)[] = [];
      if (so.signal) {
        const signal = so.signal;
        waits.push(new Promise((_, reject) => {
          if (signal.aborted) return reject(signal.reason);
          const on = () => reject(signal.reason);
          signal.addEventListener("abort", on, { once: true });
          cleanups.push(() => signal.removeEventListener("abort", on));
        }));
      }
      if (so.timeoutMs !== undefined) {
        const ms = so.timeoutMs;
        waits.push(new Promise((_, reject) => {
          const t = setTimeout(() => reject(new ConnectError(`not connected within ${ms / 1000}s`, Code.DeadlineExceeded)), ms);
          cleanups.push(() => clearTimeout(t));
        }));
      }
      try {
        await Promise.race(waits);
      } finally {
        for (const c of cleanups) c();
      }
    },
    async stop() {
      stopper.abort();
      state = "stopped";
      firstOutcome?.reject(new ConnectError("the client was stopped", Code.Canceled));
      firstOutcome = undefined;
      await loop;
    },
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
