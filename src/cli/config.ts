/**
 * The configuration of `promproxy client`: command-line flags over
 * PROMPROXY_* environment variables over a JSON or YAML file (--config) over
 * defaults. Pure: reading files is passed in, so it is tested without any.
 */
import { splitPortUrl } from "../client/targets/http-target-options.ts";
import { checkKey, helpHint, readSources } from "./config-source.ts";
import { clientDefaults, clientEnvKeys, clientFileKeys, clientOptionSpec, clientUsage, targetSettingKeys } from "./client-flags.ts";
import { envName } from "./flag-table.ts";
import { serverSettingKeys } from "./server-flags.ts";
import { bool, byteSize, duration, labelMap, optionalString, portOf, positiveInt, splitLabels, splitTargets, type Sourced } from "./config-values.ts";
import type { LogFormat, LogLevel } from "../shared/logger.ts";
import { CliError, parseHostPort } from "./util.ts";

export { clientUsage, splitLabels, splitTargets };

/** One target as the command line, environment or file gives it, before files are read. @internal */
export interface TargetConfig {
  url: string;
  port?: number;
  labels: Record<string, string>;
  timeoutMs?: number;
  maxResponseBytes?: number;
  maxScrapesInFlight?: number;
  maxScrapesPerSecond?: number;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  serverName?: string;
  insecureSkipVerify?: boolean;
  bearerToken?: string;
  bearerTokenFile?: string;
  basicAuthUser?: string;
  basicAuthPassword?: string;
  basicAuthPasswordFile?: string;
}

/** Everything `promproxy client` runs with. @internal */
export interface ClientConfig {
  name: string;
  /** The server URLs (one, or one per replica); a stream to every replica either way. */
  servers: string[];
  /** The same, comma-separated, for messages. */
  server: string;
  targets: TargetConfig[];
  labels: Record<string, string>;
  logLevel: LogLevel;
  /** Text or JSON lines. */
  logFormat: LogFormat;
  metricsListen?: { host: string; port: number };
  maxScrapesInFlight?: number;
  maxServerFramesPerSecond?: number;
  maxServerControlFramesPerSecond?: number;
  maxServerOverheadBytesPerSecond?: number;
  /** The connection to the server: bearer token file, CA, client certificate (src/cli/auth-flags.ts). */
  tokenFile?: string;
  serverCaFile?: string;
  clientCertFile?: string;
  clientKeyFile?: string;
  /** The config file read, if any. */
  configFile?: string;
  /** PROMPROXY_* variables ignored, and why: for the log. */
  warnings: string[];
}

/** Keys a target object in a config file may hold. */
const targetKeys = new Set(["url", "port", "labels", ...targetSettingKeys]);

type Raw = Record<string, unknown>;


/**
 * Builds the client's configuration from argv, the environment and the
 * config file. Returns "help" for --help. Throws a CliError naming the flag,
 * variable or file key at fault.
 *
 * @internal
 */
export function resolveClientConfig(
  argv: string[],
  env: NodeJS.ProcessEnv,
  readFile: (path: string) => string,
): ClientConfig | "help" {
  const sources = readSources({ command: "client", argv, env, readFile, spec: clientOptionSpec, keys: clientFileKeys, envKeys: clientEnvKeys, otherKeys: serverSettingKeys });
  if (sources === "help") return "help";
  const { flags, fromEnv, fromFile, pick, configPath } = sources;
  const str = (k: string) => optionalString(pick(k));

  const name = str("name");
  if (!name) throw new CliError(`--name is required (or ${envName("name")}, or name: in --config); ${helpHint("client")}`);
  const servers = serverList(flags["server"] ? { value: flags["server"], from: "--server" } : fromEnv("server") ?? fromFile("server"));
  if (servers.length === 0) throw new CliError(`--server is required (or ${envName("server")}, or server: in --config); ${helpHint("client")}`);

  // Labels: merged, file < env < flags.
  const labels: Record<string, string> = {};
  for (const k of ["labels", "label"]) {
    const s = fromFile(k);
    if (s) Object.assign(labels, labelMap(s.value, s.from));
  }
  const envLabels = fromEnv("label");
  if (envLabels) Object.assign(labels, labelMap(splitLabels(envLabels.value as string), envLabels.from));
  if (flags["label"]) Object.assign(labels, labelMap(flags["label"], "--label"));

  // Defaults every target inherits (flag > env > file), then the targets themselves (the first source that has any).
  const defaults = targetSettings((k) => pick(`target-${k}`));
  let targets: TargetConfig[];
  if (flags["target"]) {
    targets = (flags["target"] as string[]).map((t) => targetOf(t, "--target", defaults));
  } else if (fromEnv("target")) {
    const s = fromEnv("target") as Sourced;
    targets = splitTargets(s.value as string).map((t) => targetOf(t, s.from, defaults));
  } else {
    const list: Sourced[] = [];
    for (const k of ["targets", "target"]) {
      const s = fromFile(k);
      if (!s) continue;
      const items = Array.isArray(s.value) ? s.value : [s.value];
      items.forEach((v, i) => list.push({ value: v, from: `${s.from}[${i}]` }));
    }
    targets = list.map((s) => targetOf(s.value, s.from, defaults));
  }
  if (targets.length === 0) {
    throw new CliError(`at least one --target [PORT=]URL is required (or ${envName("target")}, or targets: in --config); ${helpHint("client")}`);
  }

  const level = (str("log-level") ?? clientDefaults["log-level"]) as LogLevel;
  if (!["debug", "info", "warn", "error", "silent"].includes(level)) throw new CliError(`--log-level: unknown level ${JSON.stringify(level)}`);
  const logFormat = (str("log-format") ?? clientDefaults["log-format"]) as LogFormat;
  if (logFormat !== "text" && logFormat !== "json") throw new CliError(`--log-format: want text or json, got ${JSON.stringify(logFormat)}`);
  const metrics = str("metrics-listen");
  const inFlight = pick("max-scrapes-in-flight");
  const framesPerSecond = pick("max-server-frames-per-second");
  const controlPerSecond = pick("max-server-control-frames-per-second");
  const overheadPerSecond = pick("max-server-overhead-bytes-per-second");
  return {
    name,
    servers,
    server: servers.join(", "),
    targets,
    labels,
    logLevel: level,
    logFormat,
    metricsListen: metrics ? parseHostPort(metrics, "--metrics-listen") : undefined,
    maxScrapesInFlight: inFlight ? positiveInt(inFlight) : undefined,
    maxServerFramesPerSecond: framesPerSecond ? framesPerSecondOf(framesPerSecond) : undefined,
    maxServerControlFramesPerSecond: controlPerSecond ? framesPerSecondOf(controlPerSecond) : undefined,
    maxServerOverheadBytesPerSecond: overheadPerSecond ? overheadBytesOf(overheadPerSecond) : undefined,
    tokenFile: str("token-file"),
    serverCaFile: str("server-ca-file"),
    clientCertFile: str("client-cert-file"),
    clientKeyFile: str("client-key-file"),
    configFile: configPath,
    warnings: sources.warnings,
  };
}

/** --max-server-(control-)frames-per-second: the library's range (10 - 1 000 000), said with the flag's name. */
function framesPerSecondOf(s: Sourced): number {
  const n = positiveInt(s);
  if (n < 10 || n > 1_000_000) throw new CliError(`${s.from}: want a whole number from 10 to 1000000, got ${n}`);
  return n;
}

/** --max-server-overhead-bytes-per-second: the library's range (64 KiB - 1 GiB), said with the flag's name. */
function overheadBytesOf(s: Sourced): number {
  const n = positiveInt(s);
  if (n < 65_536 || n > 1_073_741_824) throw new CliError(`${s.from}: want a whole number from 65536 to 1073741824, got ${n}`);
  return n;
}

/** A positive finite number (a fraction allowed: 0.5 is one every 2 s). */
function positiveNumber(s: Sourced): number {
  const v = typeof s.value === "number" ? s.value : typeof s.value === "string" && s.value.trim() !== "" ? Number(s.value) : NaN;
  if (!Number.isFinite(v) || v <= 0) throw new CliError(`${s.from}: want a positive number, got ${JSON.stringify(s.value)}`);
  return v;
}

/** Server URLs: repeated flags, a list in the file, or commas and white space in a string. */
function serverList(s: Sourced | undefined): string[] {
  if (s === undefined) return [];
  const items = Array.isArray(s.value) ? s.value : [s.value];
  return items.flatMap((v) => {
    if (typeof v !== "string" || v.trim() === "") throw new CliError(`${s.from}: want a URL, got ${JSON.stringify(v)}`);
    return v.split(/[\s,]+/).filter((x) => x !== "");
  });
}

/** Target settings from some source, by key without "target-". */
function targetSettings(get: (k: string) => Sourced | undefined): Omit<TargetConfig, "url" | "port" | "labels"> {
  const out: Omit<TargetConfig, "url" | "port" | "labels"> = {};
  const s = (k: string) => optionalString(get(k));
  const timeout = get("timeout");
  if (timeout) out.timeoutMs = duration(timeout);
  const bytes = get("max-response-bytes");
  if (bytes) out.maxResponseBytes = byteSize(bytes);
  const inFlight = get("max-scrapes-in-flight");
  if (inFlight) out.maxScrapesInFlight = positiveInt(inFlight);
  const perSecond = get("max-scrapes-per-second");
  if (perSecond) out.maxScrapesPerSecond = positiveNumber(perSecond);
  const skip = get("insecure-skip-verify");
  if (skip) out.insecureSkipVerify = bool(skip);
  out.caFile = s("ca-file");
  out.certFile = s("cert-file");
  out.keyFile = s("key-file");
  out.serverName = s("server-name");
  out.bearerToken = s("bearer-token");
  out.bearerTokenFile = s("bearer-token-file");
  out.basicAuthUser = s("basic-auth-user");
  out.basicAuthPassword = s("basic-auth-password");
  out.basicAuthPasswordFile = s("basic-auth-password-file");
  for (const k of Object.keys(out) as (keyof typeof out)[]) if (out[k] === undefined) delete out[k];
  return out;
}

function targetOf(v: unknown, from: string, defaults: Omit<TargetConfig, "url" | "port" | "labels">): TargetConfig {
  let t: TargetConfig;
  if (typeof v === "string") {
    const { port, url } = splitPortUrl(v);
    t = { ...defaults, url, labels: {} };
    if (port !== undefined) t.port = portOf(port, from);
  } else if (v && typeof v === "object" && !Array.isArray(v)) {
    const o = v as Raw;
    for (const k of Object.keys(o)) checkKey(k, targetKeys, from);
    if (typeof o["url"] !== "string" || o["url"] === "") throw new CliError(`${from}: url is required (a string)`);
    const own = targetSettings((k) => (o[k] === undefined || o[k] === null ? undefined : { value: o[k], from: `${from}.${k}` }));
    t = { ...defaults, ...own, url: o["url"], labels: o["labels"] === undefined ? {} : labelMap(o["labels"], `${from}.labels`) };
    if (o["port"] !== undefined && o["port"] !== null) t.port = portOf(o["port"], `${from}.port`);
  } else {
    throw new CliError(`${from}: want "[PORT=]URL" or a map with url:, got ${JSON.stringify(v)}`);
  }
  if (t.basicAuthPassword !== undefined && t.basicAuthPasswordFile !== undefined) throw new CliError(`${from}: basic-auth-password and basic-auth-password-file exclude each other`);
  if (t.bearerToken !== undefined && t.bearerTokenFile !== undefined) throw new CliError(`${from}: bearer-token and bearer-token-file exclude each other`);
  if ((t.basicAuthPassword !== undefined || t.basicAuthPasswordFile !== undefined) && t.basicAuthUser === undefined) {
    throw new CliError(`${from}: a basic auth password needs basic-auth-user`);
  }
  return t;
}
