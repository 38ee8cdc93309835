/**
 * The client: `createClient` resolves the options, builds the targets (the
 * registry, forwarded exporters) and runs the fleet of streams
 * (src/client/fleet.ts) until `stop()`; it turns the fleet's events into the
 * client's state, log lines, callbacks and `ready()`.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import cluster from "node:cluster";
import { AggregatorRegistry, register as globalRegister } from "prom-client";
import { HelloSchema, TargetSchema } from "../../gen/promproxy/v1/scrape_pb.ts";
import { pathMatches } from "../shared/paths.ts";
import { version } from "../shared/version.ts";
import { reasonField } from "./reason-field.ts";
import { forCallback } from "./callback-error.ts";
import { clusterRegistry } from "./targets/cluster.ts";
import { runFleet } from "./fleet.ts";
import { createHttpTargets } from "./targets/http-target.ts";
import { resolveClientOptions, type ClientOptions, type ResolvedClientOptions } from "./options.ts";
import { registryTarget } from "./targets/registry-target.ts";
import { createScrapeSlots } from "./scrape-slots.ts";
import { createFrameShare } from "./frame-budget.ts";
import { h2Budgets } from "./h2-budget-share.ts";
import { sparseLog } from "./fleet-limits.ts";
import type { ScrapeTarget } from "./targets/target.ts";
import { createFailureWords, inWords, type FailureWords } from "./transport-words.ts";
import { isFatalRefusal } from "./fatal-refusal.ts";

/** How long a ready() may wait on a client never started before it is said (the timer holds the process that long). */
const neverStartedMs = 1_000;

/** Where a client is: not started, dialing (or waiting to redial), welcomed, or stopped for good. */
export type ClientState = "idle" | "connecting" | "connected" | "stopped";

/** What `ready()` (and `start()` given these) waits with. */
export interface WaitOptions {
  /** Stop waiting after this many milliseconds: rejects with `DeadlineExceeded`, the client connecting on. */
  timeoutMs?: number;
  /** Stop waiting when it aborts: rejects with its reason, the client connecting on. */
  signal?: AbortSignal;
}

/** A promproxy client: one outbound stream to every server replica, serving scrapes from them. */
export interface PromproxyClient {
  /**
   * Starts connecting in the background and returns at once: it never waits
   * for the server and never rejects, so `await client.start()` cannot hold
   * or crash an application's startup. Failures go to `onError` and the
   * logger; the client retries with backoff, except after a refusal retrying
   * cannot fix (`Unauthenticated`, `PermissionDenied`, `InvalidArgument`, as a
   * gRPC status: a bare HTTP 401 or 403 is no server's refusal) before its
   * first welcome from every server it dials: then it logs an error and
   * stops. One server of several refusing so is retried at the longest
   * backoff step while the others serve (or may). Use
   * {@link PromproxyClient.ready} to wait. Given `timeoutMs` or `signal`,
   * `start(options)` is `start()` followed by `ready(options)`.
   */
  start(options?: WaitOptions): Promise<void>;
  /**
   * Resolves once a server has welcomed the client (at once while it is
   * connected). Rejects with the server's `ConnectError` (code intact) when a
   * refusal stopped the client, with `Canceled` when the client is stopped,
   * and as {@link WaitOptions} say. It waits for `start()`: one still waiting
   * a second later on a client never started is logged at warn, once.
   */
  ready(options?: WaitOptions): Promise<void>;
  /** Ends every stream (a goodbye on each) and stops reconnecting. Resolves once they are closed. */
  stop(): Promise<void>;
  /** The current state: "connected" while at least one stream is established. */
  readonly state: ClientState;
}

/** Creates a promproxy client. See {@link ClientOptions} for every option and its default. */
export function createClient(options: ClientOptions): PromproxyClient {
  const o = resolveClientOptions(options);
  const forwarded = o.targets.length > 0 ? createHttpTargets(o.targets) : [];
  const targets: ScrapeTarget[] = [...forwarded];
  if (forwarded.length === 0 || o.registry) {
    const metricsPath = o.metricsPath;
    const clash = forwarded.find((t) => t.port === 0 && pathMatches(t.path, metricsPath));
    if (clash) {
      throw new TypeError(`promproxy: target ${clash.display} serves any port at ${metricsPath}, where the registry is served too: give it a port (PORT=URL)`);
    }
    // In a cluster's primary an AggregatorRegistry's own metrics are (nearly) empty: serve every worker's.
    const registry = o.registry instanceof AggregatorRegistry && cluster.isPrimary ? clusterRegistry(o.registry) : o.registry;
    targets.push(
      registryTarget(registry ?? globalRegister, { metricsPath, gzipLevel: o.gzipLevel, renderPercent: o.maxRenderPercent, scrapesPerSecond: o.maxRegistryScrapesPerSecond, log: o.log }),
    );
  }
  if (forwarded.length === 0) return createClientWithTargets(o, targets);
  const client = createClientWithTargets(o, targets);
  return {
    get state() {
      return client.state;
    },
    start: (so) => client.start(so),
    ready: (so) => client.ready(so),
    async stop() {
      await client.stop();
      for (const t of forwarded) t.close();
    },
  };
}

/** @internal The client engine, for any set of targets (registry, forwarder). */
export function createClientWithTargets(options: ResolvedClientOptions, targets: ScrapeTarget[]): PromproxyClient {
  const { name, log } = options;
  const hello = create(HelloSchema, {
    name,
    labels: options.labels,
    version,
    targets: targets.map((t) => create(TargetSchema, { port: t.port, path: t.path, labels: t.labels })),
    features: ["head", "single-result", "replica-set"],
    // The server keeps no more scrapes in flight here than this: the rest wait there, not answered busy here.
    maxInFlight: Math.min(options.maxScrapesInFlight, 0xffff_ffff),
  });

  let state: ClientState = "idle";
  let loop: Promise<void> | undefined;
  /** Streams established now. */
  let streams = 0;
  let welcomedOnce = false;
  /** Failure reasons logged since the last change of state (several replicas may fail differently): repeats go to debug. */
  const failuresLogged = new Set<string>();
  /** "server code reason" of refusals retrying cannot fix from one server of several, said once (until it welcomes us). */
  const heldLogged = new Set<string>();
  // A server that ends every stream right after its welcome must not fill the host's log: a line every 10 s at most.
  const warnDisconnected = sparseLog(log, 10_000);
  // A stream up or closed by us: 16 lines a minute each at most (a server changing its replica set every second
  // would make them 6 a second).
  const [sayConnected, sayClosed] = [sparseLog(log, 60_000, "info", 16), sparseLog(log, 60_000, "info", 16)];
  /** Why the client stopped by itself (a refusal retrying cannot fix), for ready() callers. */
  let refusal: ConnectError | undefined;
  const stopper = new AbortController();
  const words = createFailureWords(options.urls, stopper.signal);
  /** ready() callers waiting for a welcome. */
  const waiters = new Set<{ resolve: () => void; reject: (e: unknown) => void }>();
  const settle = (error?: unknown) => {
    for (const w of waiters) error === undefined ? w.resolve() : w.reject(error);
    waiters.clear();
  };

  /** Calls the application's callback; what it throws is logged, never thrown back into the client's loop. */
  function notify(callback: string, call: () => void) {
    try {
      call();
    } catch (e) {
      log.error(`option ${callback} threw`, { error: e instanceof Error ? e.message : String(e) });
    }
  }

  /** A failed attempt, in words where the raw error says little (a probe may have to look first). */
  function reportFailure(error: ConnectError) {
    const report = (w: FailureWords | undefined) => {
      if (stopper.signal.aborted) return;
      const e = inWords(error, w);
      // The host's stderr gets one line per new reason, not one per retry.
      const key = `${e.code} ${e.rawMessage}`;
      const repeat = failuresLogged.has(key);
      if (failuresLogged.size >= 16) failuresLogged.clear();
      failuresLogged.add(key);
      log[repeat ? "debug" : "warn"]("connection attempt failed", { code: Code[e.code], reason: reasonField(e.rawMessage), detail: w === undefined ? undefined : reasonField(error.rawMessage) });
      notify("onError", () => options.onError?.(forCallback(e)));
    };
    const w = words.explain(error);
    if (w instanceof Promise) void w.then(report, () => report(undefined));
    else report(w);
  }

  function run(): Promise<void> {
    state = "connecting";
    return runFleet({
      connection: { options, hello, targets, slots: createScrapeSlots(options.maxScrapesInFlight, targets.length), frames: createFrameShare(options.maxServerFramesPerSecond), h2: h2Budgets(options) },
      stopped: stopper.signal,
      onUp(info) {
        streams++;
        state = "connected";
        welcomedOnce = true;
        failuresLogged.clear();
        for (const k of heldLogged) if (k.startsWith(`${info.server} `)) heldLogged.delete(k);
        sayConnected("connected", { server: info.server, replica: info.replicaId || undefined, session: info.sessionId });
        notify("onConnected", () => options.onConnected?.(info));
        settle();
      },
      onDown(info, error, byUs) {
        streams--;
        if (streams === 0) state = "connecting";
        failuresLogged.clear();
        const fields = { server: info.server, replica: info.replicaId || undefined, reason: error ? reasonField(error.rawMessage) : undefined };
        if (byUs) sayClosed("closed a stream", fields);
        else warnDisconnected("disconnected", fields);
        notify("onDisconnected", () => options.onDisconnected?.(error && forCallback(error), info));
      },
      onFailed(error, where) {
        const fatal = isFatalRefusal(error);
        // Refused for a reason retrying cannot fix by every server dialled, before any welcome: stop.
        if (fatal && where.everywhere && !welcomedOnce) {
          log.error("refused by the server: the client stops", { code: Code[error.code], reason: reasonField(error.rawMessage), server: where.several ? where.server : undefined });
          refusal = forCallback(error); // the application's to see (ready() rejects with it): bounded
          notify("onError", () => options.onError?.(refusal as ConnectError));
          state = "stopped";
          settle(refusal);
          stopper.abort();
          return "stop";
        }
        // One server: later refusals are retried as any failure. One of several (another has welcomed us, or still
        // may): that one is retried at the longest backoff step, said once.
        if (!fatal || !where.several) {
          reportFailure(error);
          return "retry";
        }
        const key = `${where.server} ${error.code} ${error.rawMessage}`;
        if (!heldLogged.has(key)) {
          if (heldLogged.size >= 256) heldLogged.clear();
          heldLogged.add(key);
          const every = `${options.backoff.maxMs / 1000}s`;
          log.error(`refused by one of the servers: retrying it every ${every} while the others serve (or may)`, { server: where.server, code: Code[error.code], reason: reasonField(error.rawMessage) });
        }
        notify("onError", () => options.onError?.(forCallback(error)));
        return "hold";
      },
    });
  }

  const stopped = () => refusal ?? new ConnectError("the client was stopped", Code.Canceled);
  // A ready() waiting on a client nobody starts would wait in silence (and a script whose only work it is exits with
  // "unsettled top-level await"): said once, if start() has not come a second later.
  let unstarted: NodeJS.Timeout | undefined;
  const neverStarted = () => {
    if (!loop && state !== "stopped" && waiters.size > 0) log.warn("ready() is waiting for a client that was never started: call start() first (or start({ timeoutMs }) to wait for the welcome)");
  };

  function ready(so: WaitOptions = {}): Promise<void> {
    if (state === "connected") return Promise.resolve();
    if (state === "stopped") return Promise.reject(stopped());
    if (!loop) unstarted ??= setTimeout(neverStarted, neverStartedMs); // ready() first, start() later is fine
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const signal = so.signal;
      const onAbort = () => done(signal?.reason);
      const waiter = { resolve: () => done(), reject: (e: unknown) => done(e) };
      function done(error?: unknown) {
        waiters.delete(waiter);
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (error === undefined) resolve();
        else reject(error);
      }
      if (signal?.aborted) return reject(signal.reason);
      waiters.add(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
      if (so.timeoutMs !== undefined) {
        const ms = so.timeoutMs;
        timer = setTimeout(() => done(new ConnectError(`not connected within ${ms / 1000}s`, Code.DeadlineExceeded)), ms);
      }
    });
  }

  return {
    get state() {
      return state;
    },
    start(so = {}) {
      clearTimeout(unstarted);
      if (state === "stopped") log.warn("start() after stop(): the client stays stopped");
      else if (!loop) {
        // The fleet catches every error of the connections and of the application's callbacks and logger; the
        // catch is a last line of defence, so that nothing can ever become an unhandled rejection in the host.
        loop = run()
          .catch(() => {})
          .then(() => {
            state = "stopped";
            settle(stopped());
          });
      }
      return so.timeoutMs !== undefined || so.signal !== undefined ? ready(so) : Promise.resolve();
    },
    ready,
    async stop() {
      clearTimeout(unstarted);
      stopper.abort();
      state = "stopped";
      settle(stopped());
      await loop;
    },
  };
}
