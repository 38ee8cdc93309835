import { exporterExchange, type ExchangeFailure, type ExchangeRequest, type ExchangeSink } from "./exporter-exchange.ts";
import { createExporterPools } from "./exporter-pool.ts";
import { closedUnderKeptRequest, cutOffError, describe, exporterHeaders } from "./exporter-request.ts";
import { ScrapeErrorReason, TargetError, type ResultWriter, type ScrapeTarget, type ServeRequest } from "./target.ts";
import { createScrapeRate } from "./scrape-rate.ts";
import { checkUrl, parseTargetSpec, type HttpTargetOptions, type Secret } from "./http-target-options.ts";
import { closedWithoutAByte, goTlsAnswerCheck, speaksTls, tlsOnPlainPort } from "./tls-mismatch.ts";
import { checkRequestPath, pathMatches } from "../../shared/paths.ts";

/** What a forwarded scrape came to, for metrics and logs. @internal */
export interface TargetOutcome {
  /** The target's display URL (no credentials). */
  target: string;
  /** "success" when the exporter's answer was relayed whole (whatever its status), else the failure reason. */
  outcome: "success" | "unreachable" | "timeout" | "too_large" | "busy" | "rate_limited" | "not_found" | "cancelled" | "internal";
  /** The exporter's HTTP status, when it answered. */
  status?: number;
  /** Body bytes relayed. */
  bytes: number;
  /** The failure message (names the target), when it failed. */
  message?: string;
}

/** @internal */
export interface HttpTargetHooks {
  onResult?(result: TargetOutcome): void;
  /** The clock of the `maxScrapesPerSecond` bucket, in ms. Default `performance.now`. */
  now?: () => number;
}

/** An HTTP forwarding target, plus the keep-alive connections it holds. @internal */
export interface HttpTarget extends ScrapeTarget {
  /** The target's URL without credentials, for messages and metric labels. */
  readonly display: string;
  /** Closes idle keep-alive connections to the exporter. */
  close(): void;
}

const MiB = 1024 * 1024;
const reasonNames: Record<number, TargetOutcome["outcome"]> = {
  [ScrapeErrorReason.UNREACHABLE]: "unreachable",
  [ScrapeErrorReason.TIMEOUT]: "timeout",
  [ScrapeErrorReason.TOO_LARGE]: "too_large",
  [ScrapeErrorReason.BUSY]: "busy",
  [ScrapeErrorReason.NOT_FOUND]: "not_found",
  [ScrapeErrorReason.CANCELLED]: "cancelled",
};
const cutOff = (where: string, cause: unknown) =>
  new TargetError(ScrapeErrorReason.UNREACHABLE, `target ${where} closed the connection before the end of its answer`, { cause });
/** Finish a little before the scrape's deadline, so the error that names the target wins the race. */
const deadlineMarginMs = 25;
/** How much later than the budget's timer undici's own header and body timers are set: the budget's message wins. */
const undiciTimerSlackMs = 1000;

/**
 * Creates the targets for a list of specs: checked, with no two serving the
 * same port and path, ordered most specific first (a port before any port,
 * a longer path before a shorter one).
 *
 * @internal
 */
export function createHttpTargets(specs: readonly (string | HttpTargetOptions)[], hooks: HttpTargetHooks = {}): HttpTarget[] {
  const targets = specs.map((s, i) => createHttpTarget(parseTargetSpec(s), hooks, `target ${i + 1}`));
  const seen = new Map<string, string>();
  for (const t of targets) {
    const key = `${t.port} ${t.path}`;
    const other = seen.get(key);
    if (other) {
      throw new TypeError(`promproxy: targets ${other} and ${t.display} both serve ${t.port ? `port ${t.port}` : "any port"} at ${t.path}: give them different ports (PORT=URL)`);
    }
    seen.set(key, t.display);
  }
  return targets
    .map((t, i) => ({ t, i }))
    .sort((a, b) => rank(a.t) - rank(b.t) || b.t.path.length - a.t.path.length || a.i - b.i)
    .map(({ t }) => t);
}

function rank(t: ScrapeTarget): number {
  return t.port === 0 ? 1 : 0;
}

/** @internal */
export function createHttpTarget(o: HttpTargetOptions, hooks: HttpTargetHooks = {}, what = "target"): HttpTarget {
  if (typeof o.url !== "string") throw new TypeError(`promproxy: ${what}: url is required`);
  const { base, prefix, display, userinfo } = checkUrl(o.url, what);
  const port = o.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`promproxy: ${what} (${display}): port must be 1-65535, got ${String(o.port)}`);
  if (port === 80) {
    throw new TypeError(
      `promproxy: ${what} (${display}): port 80 cannot be told apart from "no port" (Prometheus adds :80 to a target without a port); give the target no port or another number`,
    );
  }
  const positive = (v: number | undefined, name: string) => {
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new TypeError(`promproxy: ${what} (${display}): ${name} must be a positive number, got ${String(v)}`);
  };
  positive(o.timeoutMs, "timeoutMs");
  positive(o.maxResponseBytes, "maxResponseBytes");
  positive(o.maxScrapesInFlight, "maxScrapesInFlight");
  positive(o.maxScrapesPerSecond, "maxScrapesPerSecond");
  if (o.basicAuth && o.bearerToken !== undefined) throw new TypeError(`promproxy: ${what} (${display}): give basicAuth or bearerToken, not both`);
  if (o.bearerToken !== undefined && userinfo) throw new TypeError(`promproxy: ${what} (${display}): give user:password@ in the URL or bearerToken, not both`);

  const basic = o.basicAuth ?? userinfo;
  const bearer = o.bearerToken;
  const maxBytes = o.maxResponseBytes ?? 256 * MiB;
  const maxInFlight = o.maxScrapesInFlight ?? Infinity;
  // A target serving one path (an exporter's /metrics) is scraped once an interval by each Prometheus: 10 a second by
  // default. One serving every path (blackbox_exporter's /probe?target=..., a scrape per probed target) has no default.
  const perSecond = o.maxScrapesPerSecond ?? (prefix === "/" ? Infinity : 10);
  const rate = Number.isFinite(perSecond) ? createScrapeRate({ perSecond, now: hooks.now }) : undefined;
  // One undici Pool per scheme, made on first use; idle connections are kept for the next scrape.
  const pools = createExporterPools(base.host, o.tls ?? {});
  let inFlight = 0;

  async function authorization(): Promise<string | undefined> {
    if (basic) {
      const password = typeof basic.password === "function" ? await basic.password() : basic.password;
      return "Basic " + Buffer.from(`${basic.username}:${password}`).toString("base64");
    }
    if (bearer !== undefined) {
      const token = typeof bearer === "function" ? await bearer() : bearer;
      return `Bearer ${token.trim()}`;
    }
    return undefined;
  }

  const target: HttpTarget = {
    port,
    path: prefix,
    labels: { ...(o.labels ?? {}) },
    display,
    close() {
      pools.close();
    },
    async serve(req, out) {
      const started = { bytes: 0, status: undefined as number | undefined };
      let limited = false;
      try {
        const refused = refusedScrape(req, port, prefix, display);
        if (refused) throw refused;
        if (inFlight >= maxInFlight) throw new TargetError(ScrapeErrorReason.BUSY, `target ${display} has ${maxInFlight} scrapes in flight, its maximum`);
        if (rate && !rate.take()) {
          limited = true;
          throw new TargetError(ScrapeErrorReason.BUSY, `target ${display} was asked for more than ${perSecond} scrapes a second, its maximum (maxScrapesPerSecond); not sent to the exporter`);
        }
        inFlight++;
        try {
          await forward(req, out, started);
        } finally {
          inFlight--;
        }
        hooks.onResult?.({ target: display, outcome: "success", status: started.status, bytes: started.bytes });
      } catch (e) {
        const err = e instanceof TargetError ? e : new TargetError(ScrapeErrorReason.INTERNAL, `target ${display}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
        hooks.onResult?.({ target: display, outcome: limited ? "rate_limited" : (reasonNames[err.reason] ?? "internal"), status: started.status, bytes: started.bytes, message: err.message });
        throw err;
      }
    },
  };

  async function forward(req: ServeRequest, out: ResultWriter, progress: { bytes: number; status?: number }): Promise<void> {
    if (req.signal.aborted) throw req.signal.reason;
    const https_ = base.protocol === "https:" || req.scheme === "https";
    const where = `${https_ ? "https" : "http"}://${base.host}${req.path.split("?")[0]}`;
    const budgetMs = Math.max(1, Math.min(o.timeoutMs ?? Infinity, req.timeoutMs - deadlineMarginMs));
    const headers = exporterHeaders(req, budgetMs, await authorization());
    headers["host"] = base.host;

    const ac = new AbortController();
    const timer = setTimeout(
      () => {
        const within = `within ${+(budgetMs / 1000).toFixed(3)}s`;
        const what = progress.status === undefined ? `did not answer ${within}` : `answered, but its answer did not end ${within}`;
        ac.abort(new TargetError(ScrapeErrorReason.TIMEOUT, `target ${where} ${what}`));
      },
      budgetMs,
    );
    const onOuterAbort = () => ac.abort(req.signal.reason);
    req.signal.addEventListener("abort", onOuterAbort, { once: true });
    try {
      const pool = pools.get(https_);
      const request: ExchangeRequest = { path: req.path, headers, servername: https_ ? o.tls?.serverName : undefined };
      const sink: ExchangeSink = {
        chunkBytes: out.chunkBytes,
        head(status, relayed) {
          progress.status = status;
          const length = relayed["content-length"];
          if (length !== undefined && Number(length) > maxBytes) {
            throw new TargetError(ScrapeErrorReason.TOO_LARGE, `target ${where} answered ${length} bytes, more than the maximum of ${maxBytes}`);
          }
          out.head(status, relayed);
        },
        // Each chunk waits for the server's credit; the exporter's connection is read at most a chunk ahead meanwhile.
        data(chunk) {
          progress.bytes += chunk.byteLength;
          if (progress.bytes > maxBytes) {
            throw new TargetError(ScrapeErrorReason.TOO_LARGE, `target ${where} sent more than the maximum of ${maxBytes} bytes`);
          }
          return out.write(chunk);
        },
      };
      // Go's answer to a plain request on its TLS port is told from the exporter's own 400.
      const checked = https_ ? undefined : goTlsAnswerCheck(sink, where);
      for (let attempt = 1; ; attempt++) {
        const failure: ExchangeFailure = { keptFree: false };
        try {
          await exporterExchange(pool, request, ac.signal, budgetMs + undiciTimerSlackMs, checked ?? sink, failure);
          await checked?.finish();
          return;
        } catch (e) {
          if (ac.signal.aborted) throw ac.signal.reason;
          if (e instanceof TargetError) throw e;
          if (req.signal.aborted) throw req.signal.reason;
          const headed = progress.status !== undefined;
          // No response head came: a kept-alive connection the exporter closed while idle gets one fresh try.
          if (!headed && attempt === 1 && closedUnderKeptRequest(e, failure.keptFree)) continue;
          if (headed && cutOffError(e)) throw cutOff(where, e);
          // A TLS port closes a plain request's connection without a byte: a handshake tried on it tells.
          if (!headed && !https_ && closedWithoutAByte(e) && (await speaksTls(base.hostname, Number(base.port || 80), ac.signal))) throw tlsOnPlainPort(e, where);
          throw describe(e, where);
        }
      }
    } finally {
      clearTimeout(timer);
      req.signal.removeEventListener("abort", onOuterAbort);
    }
  }

  return target;
}

/**
 * The forwarder's own gate, whatever the server let through: a scrape for
 * another port, a path outside the target's prefix, or a path not in
 * canonical form (an encoded "/", "\" or ".", double encoding, ";", "//",
 * dot segments: see `checkRequestPath`) is refused with NOT_FOUND and never
 * reaches the exporter. Returns the error, or undefined when the scrape may go.
 *
 * @internal
 */
export function refusedScrape(req: Pick<ServeRequest, "port" | "path">, port: number, prefix: string, display: string): TargetError | undefined {
  const bad = checkRequestPath(req.path);
  if (bad) return new TargetError(ScrapeErrorReason.NOT_FOUND, `target ${display}: ${bad}; not sent to the exporter`);
  if ((port !== 0 && req.port !== port) || !pathMatches(prefix, req.path)) {
    return new TargetError(ScrapeErrorReason.NOT_FOUND, `target ${display} does not serve port ${req.port || "(none)"} path ${JSON.stringify(req.path.slice(0, 200))}`);
  }
  return undefined;
}
