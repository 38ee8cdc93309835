import { parseArgs } from "node:util";
import { createServer } from "../server/server.ts";
import { createConsoleLogger, type LogLevel } from "../shared/logger.ts";
import { CliError, parseDurationMs, parseHostPort, parsePositiveInt, scrapeConfig, untilSignal } from "./util.ts";

export const serverUsage = `usage: promproxy server [options]

  --listen HOST:PORT           address to listen on (HTTP/1.1 and HTTP/2 on one port)   [127.0.0.1:8080]
  --default-scrape-timeout D   timeout when Prometheus sends none (curl)                 [15s]
  --max-scrape-timeout D       upper bound for any scrape timeout                        [5m]
  --max-clients N              most connected clients                                    [10000]
  --max-scrapes-in-flight N    most scrapes in flight per client                         [16]
  --max-response-bytes N       largest scrape body                                       [268435456]
  --heartbeat-interval D       app-level ping interval on every stream                   [10s]
  --shutdown-grace D           how long in-flight scrapes may finish on SIGTERM          [10s]
  --log-level L                debug, info, warn, error or silent                        [info]

Every option can also be set as an environment variable: PROMPROXY_LISTEN, PROMPROXY_MAX_CLIENTS, ...`;

const optionSpec = {
  listen: { type: "string" },
  "default-scrape-timeout": { type: "string" },
  "max-scrape-timeout": { type: "string" },
  "max-clients": { type: "string" },
  "max-scrapes-in-flight": { type: "string" },
  "max-response-bytes": { type: "string" },
  "heartbeat-interval": { type: "string" },
  "shutdown-grace": { type: "string" },
  "log-level": { type: "string" },
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
  const v = withEnv(parsed.values, Object.keys(optionSpec).filter((k) => k !== "help"));
  const level = (v["log-level"] ?? "info") as LogLevel;
  if (!["debug", "info", "warn", "error", "silent"].includes(level)) throw new CliError(`--log-level: unknown level ${JSON.stringify(level)}`);
  const logger = createConsoleLogger(level);
  const { host, port } = parseHostPort(v.listen ?? "127.0.0.1:8080", "--listen");
  const server = createServer({
    logger,
    defaultScrapeTimeoutMs: v["default-scrape-timeout"] ? parseDurationMs(v["default-scrape-timeout"], "--default-scrape-timeout") : undefined,
    maxScrapeTimeoutMs: v["max-scrape-timeout"] ? parseDurationMs(v["max-scrape-timeout"], "--max-scrape-timeout") : undefined,
    maxClients: v["max-clients"] ? parsePositiveInt(v["max-clients"], "--max-clients") : undefined,
    maxScrapesInFlight: v["max-scrapes-in-flight"] ? parsePositiveInt(v["max-scrapes-in-flight"], "--max-scrapes-in-flight") : undefined,
    maxResponseBytes: v["max-response-bytes"] ? parsePositiveInt(v["max-response-bytes"], "--max-response-bytes") : undefined,
    heartbeatIntervalMs: v["heartbeat-interval"] ? parseDurationMs(v["heartbeat-interval"], "--heartbeat-interval") : undefined,
  });
  const grace = v["shutdown-grace"] ? parseDurationMs(v["shutdown-grace"], "--shutdown-grace") : 10_000;
  const bound = await server.listen({ host, port });
  const shown = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  process.stdout.write(`promproxy server listening on ${host}:${bound.port}\n\nPrometheus configuration:\n\n${scrapeConfig(`http://${shown}:${bound.port}`)}\n\n`);
  const sig = await untilSignal();
  logger.info("shutting down", { signal: sig });
  await server.close({ graceMs: grace });
  return 0;
}
