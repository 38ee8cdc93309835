import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import cluster from "node:cluster";
import { AggregatorRegistry, register as globalRegister } from "prom-client";
import { HelloSchema, TargetSchema } from "../../gen/promproxy/v1/scrape_pb.ts";
import { createConsoleLogger, toLogger } from "../shared/logger.ts";
import { checkLabels, checkName } from "../shared/names.ts";
import { pathMatches } from "../shared/paths.ts";
import { version } from "../shared/version.ts";
import { createBackoff } from "./backoff.ts";
import { clusterRegistry } from "./cluster.ts";
import { systemResolver } from "./endpoints.ts";
import { runFleet } from "./fleet.ts";
import { createHttpTargets } from "./http-target.ts";
import type { ClientOptions } from "./options.ts";
import { registryTarget } from "./registry-target.ts";
import { checkLimitOptions } from "./server-limits.ts";
import type { ScrapeTarget } from "./target.ts";

/** Where a client is: not started, dialing (or waiting to redial), welcomed, or stopped for good. */
export type ClientState = "idle" | "connecting" | "connected" | "stopped";

/** A promproxy client: one outbound stream to every server replica, serving scrapes from them. */
export interface PromproxyClient {
  /**
   * Starts connecting. Resolves once a server has welcomed the client (the
   * first stream; the others follow in the background).
   * Rejects with the server's `ConnectError` (code intact) when it refuses the
   * client for a reason retrying cannot fix (`Unauthenticated`,
   * `PermissionDenied`, `InvalidArgument`); the client is stopped then. Keeps
   * retrying with backoff while the server is unreachable or refuses for
   * other reasons, until `signal` aborts (rejecting with its reason, the client
   * keeps connecting in the background) or `timeoutMs` passes (likewise).
   * Without awaiting, the client connects in the background.
   */
  start(options?: { signal?: AbortSignal; timeoutMs?: number }): Promise<void>;
  /** Ends every stream (a goodbye on each) and stops reconnecting. Resolves once they are closed. */
  stop(): Promise<void>;
  /** The current state: "connected" while at least one stream is established. */
  readonly state: ClientState;
}

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
    // In a cluster's primary an AggregatorRegistry's own metrics are (nearly) empty: serve every worker's.
    const registry = options.registry instanceof AggregatorRegistry && cluster.isPrimary ? clusterRegistry(options.registry) : options.registry;
    targets.push(registryTarget(registry ?? globalRegister, metricsPath, options.gzipLevel ?? 1));
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
  const urls = serverUrls(options);
  const labelError = checkLabels(options.labels ?? {}, { maxLabels: 1000, maxLabelValueLength: 1 << 20 });
  if (labelError) throw new TypeError(`promproxy: option ${labelError}`);
  const name = checked.name;
  // A pino-shaped logger is called fields first; any logger is kept from throwing into the client.
  const log = options.logger ? toLogger(options.logger) : createConsoleLogger("warn");
  const maxInFlight = options.maxScrapesInFlight ?? 8;
  const welcomeTimeoutMs = positiveMs(options, "welcomeTimeoutMs", 10_000);
  const resolveIntervalMs = positiveMs(options, "resolveIntervalMs", 30_000);
  const discoverIntervalMs = positiveMs(options, "discoverIntervalMs", 30_000);
  checkLimitOptions(options);
  createBackoff(options.backoff); // checks the options now
  createBackoff(options.discoveryBackoff);
  const hello = create(HelloSchema, {
    name,
    labels: options.labels ?? {},
    version,
    targets: targets.map((t) => create(TargetSchema, { port: t.port, path: t.path, labels: t.labels })),
    features: ["head"],
  });

  let state: ClientState = "idle";
  let loop: Promise<void> | undefined;
  /** Streams established now. */
  let streams = 0;
  const stopper = new AbortController();
  /** Settles the first start() once the first welcome or fatal refusal is known. */
  let firstOutcome: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  const firstResult = new Promise<void>((resolve, reject) => (firstOutcome = { resolve, reject }));
  firstResult.catch(() => {}); // observed by start(); never unhandled

  /** Calls the application's callback; what it throws is logged, never thrown back into the client's loop. */
  function notify(callback: string, call: () => void) {
    try {
      call();
    } catch (e) {
      log.error(`option ${callback} threw`, { name, error: e instanceof Error ? e.message : String(e) });
    }
  }

  function run(): Promise<void> {
    state = "connecting";
    return runFleet({
      connection: { options, name, hello, targets, maxInFlight, inFlight: { count: 0 }, heartbeatMisses: options.heartbeatMisses ?? 3, welcomeTimeoutMs, log },
      urls,
      resolve: options.resolve ?? systemResolver,
      resolveIntervalMs,
      discoverIntervalMs,
      backoff: options.backoff,
      discoveryBackoff: options.discoveryBackoff,
      stopped: stopper.signal,
      onUp(info) {
        streams++;
        state = "connected";
        log.info("connected", { name, server: info.server, replica: info.replicaId || undefined, session: info.sessionId });
        notify("onConnected", () => options.onConnected?.(info));
        firstOutcome?.resolve();
        firstOutcome = undefined; // later refusals go to onError, and the client keeps retrying
      },
      onDown(info, error, byUs) {
        streams--;
        if (streams === 0) state = "connecting";
        const fields = { name, server: info.server, replica: info.replicaId || undefined, reason: error?.rawMessage };
        if (byUs) log.info("closed a stream", fields);
        else log.warn("disconnected", fields);
        notify("onDisconnected", () => options.onDisconnected?.(error, info));
      },
      onFailed(error) {
        notify("onError", () => options.onError?.(error));
        if (fatalCodes.has(error.code) && firstOutcome) {
          log.error("refused by the server", { name, code: Code[error.code], reason: error.rawMessage });
          firstOutcome.reject(error);
          firstOutcome = undefined;
          stopper.abort();
          return true;
        }
        log.warn("connection attempt failed", { name, code: Code[error.code], reason: error.rawMessage });
        return false;
      },
    });
  }

  return {
    get state() {
      return state;
    },
    async start(so = {}) {
      if (state === "stopped") throw new ConnectError("the client was stopped", Code.FailedPrecondition);
      if (!loop) {
        // The fleet catches every error of the connections and of the application's callbacks and logger; the
        // catch is a last line of defence, so that nothing can ever become an unhandled rejection in the host.
        loop = run()
          .catch(() => {})
          .then(() => {
            state = "stopped";
            firstOutcome?.reject(new ConnectError("the client was stopped", Code.Canceled));
          });
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

/** The checked server URLs of `options.serverUrl` (one, or a list). */
function serverUrls(options: ClientOptions): URL[] {
  const list = typeof options.serverUrl === "string" ? [options.serverUrl] : Array.isArray(options.serverUrl) ? options.serverUrl : [];
  if (list.length === 0) throw new TypeError("promproxy: option serverUrl must be a URL or a non-empty list of URLs");
  const urls = list.map((u) => {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      throw new TypeError(`promproxy: option serverUrl ${JSON.stringify(u)} is not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`promproxy: option serverUrl must be http:// or https://, got ${JSON.stringify(u)}`);
    }
    if (options.tls && url.protocol !== "https:") throw new TypeError("promproxy: option tls needs an https:// serverUrl");
    return url;
  });
  if (new Set(urls.map((u) => u.href)).size !== urls.length) throw new TypeError("promproxy: option serverUrl lists a URL twice");
  return urls;
}

function positiveMs(options: ClientOptions, key: "welcomeTimeoutMs" | "resolveIntervalMs" | "discoverIntervalMs", fallback: number): number {
  const v = options[key] ?? fallback;
  if (!(v > 0)) throw new TypeError(`promproxy: option ${key} must be a positive number of milliseconds`);
  return v;
}
