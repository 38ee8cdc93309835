import { parseArgs } from "node:util";
import { hashPasswordFromStdin, secureScrapeConfig, serverAuthFlagSpec, serverAuthOptions, serverAuthUsage } from "./auth-flags.ts";
import { createServer } from "../server/server.ts";
import { replicaWarmupMs } from "../server/options.ts";
import { createConsoleLogger, type LogLevel } from "../shared/logger.ts";
import { CliError, parseDurationMs, parseHostPort, parsePositiveInt, scrapeConfig, untilSignal, dialableHost } from "./util.ts";

export const serverUsage = `usage: promproxy server [options]

  --listen HOST:PORT           address to listen on (HTTP/1.1 and HTTP/2 on one port)   [127.0.0.1:8080]
  --default-scrape-timeout D   timeout when Prometheus sends none (curl)                 [15s]
  --max-scrape-timeout D       upper bound for any scrape timeout                        [5m]
  --max-clients N              most connected clients                                    [10000]
  --max-scrapes-in-flight N    most scrapes in flight per client                         [16]
  --max-response-bytes N       largest scrape body                                       [268435456]
  --heartbeat-interval D       app-level ping interval on every stream                   [10s]
  --max-connections N          open connections at most, HTTP/1.1 and HTTP/2   [max-clients + 1000]
  --max-connections-per-address N
                               open connections at most per IPv4 address or IPv6 /64     [1000]
  --max-streams-per-connection N
                               concurrent HTTP/2 streams per connection                  [16]
  --idle-session-timeout D     an HTTP/2 connection without an open stream is closed     [30s]
  --max-header-list-bytes N    largest request header list (HTTP/1.1 and HTTP/2)         [16384]
  --drain-delay D              on SIGTERM: /readyz fails at once, scrapes are still served
                               (Connection: close) this long, then refused with 503       [5s]
  --shutdown-grace D           then how long in-flight scrapes may finish                [10s]
  --warmup D                   after start, /readyz fails at least this long, then until no
                               new client joined for --warmup-settle (at most 6x warmup)
                               [5s; 15s with --replica-count: clients search every 10 s]
  --warmup-settle D            see --warmup                                               [2s]
  --vanished-retention D       a client whose stream broke stays in /clients (connected
                               "false", scrapes answered 503) this long; 0s: not at all  [10m]
  --max-vanished-per-identity N
                               vanished clients kept per identity (a token's or
                               certificate's); its oldest goes first                     [max-clients]
  --replica-id ID              this replica's id in every welcome              [host name-random]
  --replica-count N            how many replicas serve the clients' address; clients dial
                               until they hold a stream to that many (0: unknown)         [0]
  --log-level L                debug, info, warn, error or silent                        [info]
  --log-format F               text, or json (one object per line: time, level,
                               component, msg, then the event's fields)                   [text]

${serverAuthUsage}

Every option can also be set as an environment variable: PROMPROXY_LISTEN, PROMPROXY_MAX_CLIENTS, ...`;

const optionSpec = {
  listen: { type: "string" },
  "default-scrape-timeout": { type: "string" },
  "max-scrape-timeout": { type: "string" },
  "max-clients": { type: "string" },
  "max-scrapes-in-flight": { type: "string" },
  "max-response-bytes": { type: "string" },
  "heartbeat-interval": { type: "string" },
  "max-connections": { type: "string" },
  "max-connections-per-address": { type: "string" },
  "max-streams-per-connection": { type: "string" },
  "idle-session-timeout": { type: "string" },
  "max-header-list-bytes": { type: "string" },
  "shutdown-grace": { type: "string" },
  "drain-delay": { type: "string" },
  warmup: { type: "string" },
  "warmup-settle": { type: "string" },
  "vanished-retention": { type: "string" },
  "max-vanished-per-identity": { type: "string" },
  "replica-id": { type: "string" },
  "replica-count": { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  ...serverAuthFlagSpec,
  help: { type: "boolean", short: "h" },
} as const;

/** Fills options missing from the command line from PROMPROXY_* environment variables. @internal */
export function withEnv<T extends Record<string, unknown>>(values: T, names: readonly string[], env = process.env): T {
  const out: Record<string, unknown> = { ...values };
  for (const n of names) {
    if (out[n] !== undefined) continue;
    const v = env[`PROMPROXY_${n.toUpperCase().replace(/-/g, "_")}`];
    if (v !== undefined && v !== "") out[n] = v;
  }
  return out as T;
}

export async function runServer(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: optionSpec, strict: true, allowPositionals: false });
  } catch (e) {
    throw new CliError(`${(e as Error).message}\n\n${serverUsage}`);
  }
  if (parsed.values.help) {
    process.stdout.write(serverUsage + "\n");
    return 0;
  }
  if (parsed.values["hash-password"]) {
    process.stdout.write((await hashPasswordFromStdin().catch((e: Error) => Promise.reject(new CliError(e.message)))) + "\n");
    return 0;
  }
  const v = withEnv(parsed.values, Object.keys(optionSpec).filter((k) => k !== "help" && k !== "hash-password"));
  const level = (v["log-level"] ?? "info") as LogLevel;
  if (!["debug", "info", "warn", "error", "silent"].includes(level)) throw new CliError(`--log-level: unknown level ${JSON.stringify(level)}`);
  const format = v["log-format"] ?? "text";
  if (format !== "text" && format !== "json") throw new CliError(`--log-format: want text or json, got ${JSON.stringify(format)}`);
  const logger = createConsoleLogger(level, "promproxy", format);
  const { host, port } = parseHostPort(v.listen ?? "127.0.0.1:8080", "--listen");
  let auth: ReturnType<typeof serverAuthOptions>;
  try {
    auth = serverAuthOptions({ ...v, "tls-require-client-cert": asFlag(v["tls-require-client-cert"]) }, logger);
  } catch (e) {
    throw new CliError((e as Error).message.replace(/^promproxy: /, ""));
  }
  const loopback = host === "127.0.0.1" || host === "::1" || host === "localhost";
  if (!loopback && auth.interceptors.length === 0) {
    logger.warn("client streams are not authenticated: any client can connect under any name (see --client-token-file, --tls-client-ca-file)");
  }
  if (!loopback && !auth.promAuth) logger.warn("anyone who reaches this port can scrape through it (see --prom-users-file)");
  type Flag = keyof typeof optionSpec;
  const dur = (k: Flag, allowZero = false) => (typeof v[k] === "string" ? parseDurationMs(v[k], `--${k}`, { allowZero }) : undefined);
  const int = (k: Flag) => (typeof v[k] === "string" ? parsePositiveInt(v[k], `--${k}`) : undefined);
  const server = createServer({
    logger,
    interceptors: auth.interceptors,
    promAuth: auth.promAuth,
    defaultScrapeTimeoutMs: dur("default-scrape-timeout"),
    maxScrapeTimeoutMs: dur("max-scrape-timeout"),
    maxClients: int("max-clients"),
    maxScrapesInFlight: int("max-scrapes-in-flight"),
    maxResponseBytes: int("max-response-bytes"),
    heartbeatIntervalMs: dur("heartbeat-interval"),
    warmupMs: dur("warmup", true) ?? (v["replica-count"] !== undefined ? replicaWarmupMs : 5_000),
    warmupSettleMs: dur("warmup-settle", true) ?? 2_000,
    vanishedRetentionMs: dur("vanished-retention", true),
    maxVanishedPerIdentity: int("max-vanished-per-identity"),
    replicaId: v["replica-id"],
    replicaCount: v["replica-count"] !== undefined ? parseCount(v["replica-count"], "--replica-count") : undefined,
  });
  const grace = dur("shutdown-grace") ?? 10_000;
  const drainDelay = dur("drain-delay", true) ?? 5_000;
  const bound = await server.listen({
    host,
    port,
    tls: auth.tls,
    maxConnections: int("max-connections"),
    maxConnectionsPerAddress: int("max-connections-per-address"),
    maxStreamsPerConnection: int("max-streams-per-connection"),
    idleSessionTimeoutMs: dur("idle-session-timeout"),
    maxHeaderListBytes: int("max-header-list-bytes"),
  }).catch((e: unknown) => {
    // A listen limit out of range is a usage error: name the flag, no stack.
    if (!(e instanceof RangeError)) throw e;
    throw new CliError(e.message.replace(/^promproxy: listen option (\w+)/, (_m, k: string) => `--${k.replace(/Ms$/, "").replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`));
  });
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

/** A whole number >= 0. */
function parseCount(s: string, what: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw new CliError(`${what}: want a whole number >= 0, got ${JSON.stringify(s)}`);
  return n;
}

/** A boolean flag, also when it came from the environment as a string ("1", "true"). */
function asFlag(v: unknown): boolean | undefined {
  if (v === undefined || typeof v === "boolean") return v;
  return /^(1|true|yes|on)$/i.test(String(v));
}
