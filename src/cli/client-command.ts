import * as fs from "node:fs";
import { Code, type ConnectError } from "@connectrpc/connect";
import { collectDefaultMetrics } from "prom-client";
import { clientAuthOptions } from "./auth-flags.ts";
import { createClientWithTargets } from "../client/client.ts";
import { resolveClientOptions } from "../client/options.ts";
import { createForwarderMetrics, serveMetrics } from "./forwarder-metrics.ts";
import { createHttpTargets, type HttpTarget } from "../client/targets/http-target.ts";
import { targetHealthLog } from "./target-health-log.ts";
import type { HttpTargetOptions } from "../client/targets/http-target-options.ts";
import { loadUndici } from "../client/targets/exporter-pool.ts";
import { createConsoleLogger, type Logger } from "../shared/logger.ts";
import { escapedLine } from "../shared/escaped-line.ts";
import { noMessageWords } from "../client/reason-field.ts";
import { clientUsage, resolveClientConfig, type TargetConfig } from "./config.ts";
import { CliError, untilSignal } from "./util.ts";

export { clientUsage };

/** `promproxy client`: the standalone forwarder. Resolves with the exit code. */
export async function runClient(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const cfg = resolveClientConfig(argv, env, (p) => fs.readFileSync(p, "utf8"));
  if (cfg === "help") {
    process.stdout.write(clientUsage + "\n");
    return 0;
  }
  const logger = createConsoleLogger(cfg.logLevel, "promproxy", cfg.logFormat);
  for (const w of cfg.warnings) logger.warn(w);
  const metrics = cfg.metricsListen ? createForwarderMetrics() : undefined;
  if (metrics) collectDefaultMetrics({ register: metrics.registry });
  const health = targetHealthLog(logger);

  let targets: HttpTarget[];
  try {
    targets = createHttpTargets(
      cfg.targets.map(targetOptions),
      {
        onResult(r) {
          metrics?.onResult(r);
          health(r);
        },
      },
    );
  } catch (e) {
    if (e instanceof TypeError) throw new CliError(e.message.replace(/^promproxy: /, ""));
    throw e;
  }
  // The exporters' HTTP client, loaded before connecting rather than by the first scrape, which waited for it after
  // every start (about 100 ms of loading, 0.15 s and more while V8 compiles the loader: bench/measurements.md).
  loadUndici();

  let client;
  try {
    const auth = clientAuthOptions(
      { tokenFile: cfg.tokenFile, serverCaFile: cfg.serverCaFile, clientCertFile: cfg.clientCertFile, clientKeyFile: cfg.clientKeyFile },
      cfg.servers.find((u) => !u.startsWith("https://")) ?? (cfg.servers[0] as string), // TLS flags need https:// everywhere
    );
    client = createClientWithTargets(
      resolveClientOptions({
        name: cfg.name,
        serverUrl: cfg.servers,
        labels: cfg.labels,
        logger: quietRetries(logger),
        maxScrapesInFlight: cfg.maxScrapesInFlight,
        // A process of its own relaying for many exporters: a higher read budget than a library in a host's process.
        maxServerFramesPerSecond: cfg.maxServerFramesPerSecond ?? 10_000,
        maxServerControlFramesPerSecond: cfg.maxServerControlFramesPerSecond, // the library's 100: control frames do not grow with the exporters
        maxServerOverheadBytesPerSecond: cfg.maxServerOverheadBytesPerSecond, // the library's 1 MiB: no more with many exporters
        interceptors: auth.interceptors,
        tls: auth.tls,
        onConnected: () => metrics?.onConnected(),
        onDisconnected: () => metrics?.onDisconnected(),
        onError: (e: ConnectError) => metrics?.onConnectError(e),
      }),
      targets,
    );
  } catch (e) {
    for (const t of targets) t.close();
    if (e instanceof TypeError) throw new CliError(e.message.replace(/^promproxy: /, ""));
    throw e;
  }

  let metricsServer: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  try {
    if (metrics && cfg.metricsListen) metricsServer = await serveMetrics(metrics.registry, cfg.metricsListen.host, cfg.metricsListen.port);
  } catch (e) {
    for (const t of targets) t.close();
    throw new CliError(`--metrics-listen ${cfg.metricsListen?.host}:${cfg.metricsListen?.port}: ${(e as Error).message}`);
  }

  const lines = targets.map((t) => `  ${t.port ? `${cfg.name}:${t.port}` : `${cfg.name} (any port)`}${t.path === "/" ? "" : ` ${t.path}`} -> ${t.display}`);
  process.stdout.write(
    `promproxy client "${cfg.name}" forwarding to ${cfg.server}\n${lines.join("\n")}\n` +
      (metricsServer ? `own metrics on http://${cfg.metricsListen?.host}:${metricsServer.port}/metrics\n` : ""),
  );

  // Connect in the background; a refusal retrying cannot fix ends the process.
  let fatal: ConnectError | undefined;
  void client.start();
  const refused = new Promise<"refused">((resolve) => {
    client.ready().catch((e: ConnectError) => {
      if (e.code !== Code.Canceled) {
        fatal = e;
        resolve("refused");
      }
    });
  });
  const outcome = await Promise.race([untilSignal(), refused]);
  if (outcome !== "refused") logger.info("shutting down", { signal: outcome });
  await client.stop();
  for (const t of targets) t.close();
  await metricsServer?.close();
  if (fatal) {
    // The server's words, printed raw to a terminal: one line, control characters escaped, 512 characters at most.
    const said = fatal.rawMessage === "" ? noMessageWords : escapedLine(fatal.rawMessage, 512);
    process.stderr.write(`promproxy: the server refused client "${cfg.name}": ${said} (${Code[fatal.code]})\n`);
    return 1;
  }
  return 0;
}

/** A target's options from its configuration: files read (secrets on every scrape, so rotated ones are picked up). */
function targetOptions(t: TargetConfig): HttpTargetOptions {
  const o: HttpTargetOptions = {
    url: t.url,
    port: t.port,
    labels: t.labels,
    timeoutMs: t.timeoutMs,
    maxResponseBytes: t.maxResponseBytes,
    maxScrapesInFlight: t.maxScrapesInFlight,
    maxScrapesPerSecond: t.maxScrapesPerSecond,
  };
  if (t.caFile || t.certFile || t.keyFile || t.serverName || t.insecureSkipVerify) {
    o.tls = {
      ca: t.caFile ? readOnce(t.caFile, "ca-file") : undefined,
      cert: t.certFile ? readOnce(t.certFile, "cert-file") : undefined,
      key: t.keyFile ? readOnce(t.keyFile, "key-file") : undefined,
      serverName: t.serverName,
      insecureSkipVerify: t.insecureSkipVerify,
    };
  }
  if (t.bearerToken !== undefined) o.bearerToken = t.bearerToken;
  if (t.bearerTokenFile) o.bearerToken = secretFile(t.bearerTokenFile);
  if (t.basicAuthUser !== undefined) {
    o.basicAuth = { username: t.basicAuthUser, password: t.basicAuthPasswordFile ? secretFile(t.basicAuthPasswordFile) : (t.basicAuthPassword ?? "") };
  }
  return o;
}

function readOnce(path: string, what: string): Buffer {
  try {
    return fs.readFileSync(path);
  } catch (e) {
    throw new CliError(`${what}: cannot read ${path}: ${(e as Error).message}`);
  }
}

/** Reads a secret file at every scrape, trailing newline dropped. Checked once at start. */
function secretFile(path: string): () => Promise<string> {
  readOnce(path, "secret file");
  return async () => (await fs.promises.readFile(path, "utf8")).replace(/\r?\n$/, "");
}

/**
 * Passes everything on, except repeats of the same failed connection attempt
 * (the engine logs every retry): one line per change of state.
 */
function quietRetries(logger: Logger): Logger {
  let lastFailure: string | undefined;
  return {
    debug: (m, f) => logger.debug(m, f),
    info(m, f) {
      if (m === "connected") lastFailure = undefined;
      logger.info(m, f);
    },
    warn(m, f) {
      if (m === "connection attempt failed") {
        const key = `${String(f?.["code"])} ${String(f?.["reason"])}`;
        if (key === lastFailure) return logger.debug(m, f);
        lastFailure = key;
        return logger.warn(`${m} (retrying with backoff; repeats are logged at debug level)`, f);
      }
      if (m === "disconnected") lastFailure = undefined;
      logger.warn(m, f);
    },
    error: (m, f) => logger.error(m, f),
  };
}
