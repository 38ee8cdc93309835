import * as fs from "node:fs";
import { hashPasswordFromStdin, secureScrapeConfig, serverAuthOptions } from "./auth-flags.ts";
import { createServer } from "../server/server.ts";
import { parsePeerSecrets } from "../server/peers/peer-auth.ts";
import { parsePeers } from "../server/peers/peer-list.ts";
import { createConsoleLogger, type LogLevel } from "../shared/logger.ts";
import { resolveServerConfig, type ServerValues } from "./server-config.ts";
import { replicaWarmupMs, serverDefaults, serverUsage } from "./server-flags.ts";
import { CliError, listenFailure, parseDurationMs, parseHostPort, parsePositiveInt, scrapeConfig, untilSignal, dialableHost } from "./util.ts";

export { serverUsage };

/** `promproxy server`. Resolves with the exit code. */
export async function runServer(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const cfg = resolveServerConfig(argv, env, (p) => fs.readFileSync(p, "utf8"));
  if (cfg === "help") {
    process.stdout.write(serverUsage + "\n");
    return 0;
  }
  const v = cfg.values;
  if (v["hash-password"]) {
    process.stdout.write((await hashPasswordFromStdin().catch((e: Error) => Promise.reject(new CliError(e.message)))) + "\n");
    return 0;
  }
  const level = (v["log-level"] ?? serverDefaults["log-level"]) as LogLevel;
  if (!["debug", "info", "warn", "error", "silent"].includes(level)) throw new CliError(`${cfg.from("log-level")}: unknown level ${JSON.stringify(level)}`);
  const format = v["log-format"] ?? serverDefaults["log-format"];
  if (format !== "text" && format !== "json") throw new CliError(`${cfg.from("log-format")}: want text or json, got ${JSON.stringify(format)}`);
  const logger = createConsoleLogger(level, "promproxy", format);
  if (cfg.configFile) logger.info("configuration read", { file: cfg.configFile });
  for (const w of cfg.warnings) logger.warn(w);
  const { host, port } = parseHostPort(v.listen ?? serverDefaults.listen, cfg.from("listen"));
  let auth: ReturnType<typeof serverAuthOptions>;
  try {
    auth = serverAuthOptions(v, logger);
  } catch (e) {
    throw new CliError((e as Error).message.replace(/^promproxy: /, ""));
  }
  const loopback = host === "127.0.0.1" || host === "::1" || host === "localhost";
  if (!loopback && auth.interceptors.length === 0) {
    logger.warn("client streams are not authenticated: any client can connect under any name (see --client-token-file, --tls-client-ca-file)");
  }
  if (!loopback && !auth.promAuth) logger.warn("anyone who reaches this port can scrape through it (see --prom-users-file)");
  type Flag = keyof ServerValues;
  const dur = (k: Flag, allowZero = false) => (typeof v[k] === "string" ? parseDurationMs(v[k], cfg.from(k), { allowZero }) : undefined);
  type WithDefault = { [K in Flag]: (typeof serverDefaults)[K] extends string ? K : never }[Flag];
  /** A duration setting's value, else the table's default (src/cli/server-flags.ts). */
  const durOr = (k: WithDefault, allowZero = false) => dur(k, allowZero) ?? parseDurationMs(serverDefaults[k], `--${k}`, { allowZero });
  const int = (k: Flag) => (typeof v[k] === "string" ? parsePositiveInt(v[k], cfg.from(k)) : undefined);
  if (v["max-forwards-per-peer"] !== undefined && v.peers === undefined) throw new CliError(`${cfg.from("max-forwards-per-peer")}: only with --peers`);
  const server = createServer({
    logger,
    interceptors: auth.interceptors,
    promAuth: auth.promAuth,
    defaultScrapeTimeoutMs: dur("default-scrape-timeout"),
    maxScrapeTimeoutMs: dur("max-scrape-timeout"),
    maxClients: int("max-clients"),
    maxScrapesInFlight: int("max-scrapes-in-flight"),
    maxScrapesWaiting: v["max-scrapes-waiting"] !== undefined ? parseCount(v["max-scrapes-waiting"], cfg.from("max-scrapes-waiting")) : undefined,
    maxResponseBytes: int("max-response-bytes"),
    heartbeatIntervalMs: dur("heartbeat-interval"),
    warmupMs: v["replica-count"] !== undefined ? (dur("warmup", true) ?? replicaWarmupMs) : durOr("warmup", true),
    warmupSettleMs: durOr("warmup-settle", true),
    vanishedRetentionMs: dur("vanished-retention", true),
    maxVanishedPerIdentity: int("max-vanished-per-identity"),
    replicaId: v["replica-id"],
    replicaCount: v["replica-count"] !== undefined ? parseCount(v["replica-count"], cfg.from("replica-count")) : undefined,
    replicasPerClient: perClient(v["replicas-per-client"], v.peers, cfg.from("replicas-per-client")),
    maxForwardsPerPeer: int("max-forwards-per-peer"),
    ...peerOptions(v.peers, v["peer-secret-file"], cfg.from),
  });
  const grace = durOr("shutdown-grace");
  const drainDelay = durOr("drain-delay", true);
  const bound = await server.listen({
    host,
    port,
    tls: auth.tls,
    maxConnections: int("max-connections"),
    maxConnectionsPerAddress: int("max-connections-per-address"),
    backlog: int("backlog"),
    maxStreamsPerConnection: int("max-streams-per-connection"),
    idleSessionTimeoutMs: dur("idle-session-timeout"),
    maxHeaderListBytes: int("max-header-list-bytes"),
    unreadAnswerTimeoutMs: dur("unread-answer-timeout"),
    maxPipelinedRequests: int("max-pipelined-requests"),
    maxUnreadAnswerBytesPerConnection: int("max-unread-answer-bytes-per-connection"),
    maxUnreadAnswerBytes: v["max-unread-answer-bytes"] !== undefined ? parseCount(v["max-unread-answer-bytes"], cfg.from("max-unread-answer-bytes")) : undefined,
    maxClientOverheadBytesPerSecond: int("max-client-overhead-bytes-per-second"),
    maxRefusedStreamsPerConnection: int("max-refused-streams-per-connection"),
    maxRequestBodyBytes: v["max-request-body-bytes"] !== undefined ? parseCount(v["max-request-body-bytes"], cfg.from("max-request-body-bytes")) : undefined,
  }).catch((e: unknown) => {
    // A listen limit out of range is a usage error: name the flag, no stack.
    if (e instanceof RangeError) {
      throw new CliError(e.message.replace(/^promproxy: listen option (\w+)/, (_m, k: string) => `--${k.replace(/Ms$/, "").replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`));
    }
    return listenFailure(e, host, port);
  });
  if (typeof bound === "string") {
    process.stderr.write(`promproxy: ${bound}\n`);
    return 1;
  }
  const shown = dialableHost(host);
  const config =
    auth.tls || auth.promAuth
      ? secureScrapeConfig(`${shown}:${bound.port}`, {
          tls: Boolean(auth.tls),
          basic: Boolean(auth.promAuth?.usersFile),
          bearer: Boolean(auth.promAuth?.tokenFile),
          protect: auth.promAuth?.protect,
        })
      : scrapeConfig(`http://${shown}:${bound.port}`);
  process.stdout.write(`promproxy server listening on ${host}:${bound.port}${auth.tls ? " (TLS)" : ""}\n\nPrometheus configuration:\n\n${config}\n\n`);
  const sig = await untilSignal();
  logger.info("shutting down: draining", { signal: sig, drainDelayMs: drainDelay, graceMs: grace });
  await server.close({ graceMs: grace, drainDelayMs: drainDelay });
  logger.info("stopped");
  return 0;
}

/** `--peers` and `--peer-secret-file`, checked here so that a mistake is a usage error naming where it came from. */
function peerOptions(peers: string | undefined, secretFile: string | undefined, from: (k: "peers" | "peer-secret-file") => string): { peers?: string; peerSecret?: { file: string } } {
  if (peers === undefined) {
    if (secretFile !== undefined) throw new CliError(`${from("peer-secret-file")}: only with --peers`);
    return {};
  }
  try {
    parsePeers(peers);
  } catch (e) {
    throw new CliError(`${from("peers")}: ${(e as Error).message.replace(/^promproxy: option peers: /, "")}`);
  }
  if (secretFile === undefined) throw new CliError(`${from("peers")} needs --peer-secret-file (a shared secret: peer requests are signed with it; try: openssl rand -hex 32 > peer-secret)`);
  try {
    parsePeerSecrets(fs.readFileSync(secretFile, "utf8"), secretFile);
  } catch (e) {
    throw new CliError(`${from("peer-secret-file")}: ${(e as Error).message}`);
  }
  return { peers, peerSecret: { file: secretFile } };
}

/** --replicas-per-client: a whole number 0-64, and only with --peers (the set is known only to replicas that know each other). */
function perClient(s: string | undefined, peers: string | undefined, what: string): number | undefined {
  if (s === undefined) return undefined;
  const k = parseCount(s, what);
  if (k > 64) throw new CliError(`${what}: at most 64 (the largest replica set), got ${k}`);
  if (k > 0 && !peers) throw new CliError(`${what}: needs --peers (only replicas that know each other know the replica set)`);
  return k;
}

/** A whole number >= 0. */
function parseCount(s: string, what: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw new CliError(`${what}: want a whole number >= 0, got ${JSON.stringify(s)}`);
  return n;
}
