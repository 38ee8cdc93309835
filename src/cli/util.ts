/** A usage error: printed without a stack, exit code 2. @internal */
export class CliError extends Error {
  override name = "CliError";
}

/** Parses "HOST:PORT", "[::1]:PORT" or ":PORT". @internal */
export function parseHostPort(s: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new CliError(`${what}: want HOST:PORT, got ${JSON.stringify(s)}`);
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

/** Parses a positive duration in seconds ("15", "2.5", "15s", "500ms", "5m") into milliseconds. @internal */
export function parseDurationMs(s: string, what: string, { allowZero = false } = {}): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s.trim());
  const v = m ? Number(m[1]) * (m[2] === "ms" ? 1 : m[2] === "m" ? 60_000 : 1000) : NaN;
  if (!(v > 0) && !(allowZero && v === 0)) {
    throw new CliError(`${what}: want a ${allowZero ? "" : "positive "}duration such as 15s, 500ms or 5m, got ${JSON.stringify(s)}`);
  }
  return v;
}

/** Parses a positive integer. @internal */
export function parsePositiveInt(s: string, what: string): number {
  const v = Number(s);
  if (!Number.isInteger(v) || v <= 0) throw new CliError(`${what}: want a positive whole number, got ${JSON.stringify(s)}`);
  return v;
}

/** Resolves once SIGINT or SIGTERM arrives. @internal */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off("SIGINT", on);
      process.off("SIGTERM", on);
      resolve(sig);
    };
    process.on("SIGINT", on);
    process.on("SIGTERM", on);
  });
}

/** The Prometheus configuration that scrapes every client through a server. @internal */
export function scrapeConfig(serverUrl: string): string {
  return `scrape_configs:
  - job_name: promproxy
    proxy_url: ${serverUrl}
    http_sd_configs:
      - url: ${serverUrl}/clients`;
}

/** The host to print in URLs for a listen address: loopback for a wildcard, brackets for IPv6. @internal */
export function dialableHost(host: string): string {
  if (host === "0.0.0.0" || host === "::") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}

/** Why a port could not be opened, in a line that says what to do (for `listen().catch`); the unexpected is thrown on. @internal */
export function listenFailure(e: unknown, host: string, port: number): string {
  switch ((e as NodeJS.ErrnoException).code) {
    case "EADDRINUSE":
      return `port ${port} is in use (another promproxy or program listens there): choose another with --listen`;
    case "EACCES":
      return `not allowed to listen on port ${port} (ports below 1024 need privileges): choose another with --listen`;
    case "EADDRNOTAVAIL":
      return `${host} is no address of this machine: choose another with --listen (0.0.0.0 for all)`;
    default:
      throw e;
  }
}
