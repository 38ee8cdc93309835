/**
 * The configuration of `promproxy client`: command-line flags over
 * PROMPROXY_* environment variables over a JSON or YAML file (--config) over
 * defaults. Pure: reading files is passed in, so it is tested without any.
 */
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { clientAuthFlagSpec, clientAuthUsage } from "./auth-flags.ts";
import type { LogLevel } from "../shared/logger.ts";
import { CliError, parseDurationMs, parseHostPort, parsePositiveInt } from "./util.ts";

/** One target as the command line, environment or file gives it, before files are read. @internal */
export interface TargetConfig {
  url: string;
  port?: number;
  labels: Record<string, string>;
  timeoutMs?: number;
  maxResponseBytes?: number;
  maxScrapesInFlight?: number;
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
  metricsListen?: { host: string; port: number };
  maxScrapesInFlight?: number;
  /** The connection to the server: bearer token file, CA, client certificate (src/cli/auth-flags.ts). */
  tokenFile?: string;
  serverCaFile?: string;
  clientCertFile?: string;
  clientKeyFile?: string;
  /** The config file read, if any. */
  configFile?: string;
}

export const clientUsage = `usage: promproxy client --name NAME --server URL --target [PORT=]URL [--target ...] [options]

Runs a forwarder: keeps a stream open to every promproxy server replica and serves
Prometheus' scrapes of http://NAME:PORT/PATH from the exporter configured for PORT.

  --name NAME                  the name Prometheus scrapes this client by (a DNS label)    (required)
  --server URL                 the promproxy server, e.g. http://proxy:8080                (required)
                               repeatable (a stream to each); one URL whose name has several
                               addresses: a stream to each address; one address (a load
                               balancer): new connections until every replica is held
  --target [PORT=]URL          an exporter, e.g. 9100=http://127.0.0.1:9100/metrics;     (required)
                               repeatable; PORT is the port Prometheus addresses
                               (NAME:PORT, announced in /clients); a target without
                               PORT= is served on any port; the URL's path is the prefix
                               served; user:password@ in the URL is basic auth
  --label KEY=VALUE            a label announced in /clients for every target; repeatable
  --config FILE                a JSON or YAML file with the same fields (see below)
  --log-level L                debug, info, warn, error or silent                         [info]
  --metrics-listen HOST:PORT   serve this client's own metrics at http://HOST:PORT/metrics  [off]
  --max-scrapes-in-flight N    most scrapes served at once; more get HTTP 503             [8]

 The connection to the server:
${clientAuthUsage}

 For every target (a target in the config file can set each for itself, without "target-"):
  --target-timeout D           time an exporter has per scrape, cut to the scrape's deadline [deadline]
  --target-max-response-bytes N  largest body accepted from an exporter (also 64MiB, 1GiB) [256MiB]
  --target-max-scrapes-in-flight N  most scrapes of one exporter at once                   [no own limit]
  --target-ca-file FILE        CA (PEM) to verify https:// exporters with                 [system CAs]
  --target-cert-file FILE      client certificate (PEM) for exporters requiring mTLS
  --target-key-file FILE       its private key (PEM)
  --target-server-name NAME    TLS server name to verify instead of the URL's host
  --target-insecure-skip-verify  accept any exporter certificate
  --target-bearer-token-file FILE  send "Authorization: Bearer <file contents>" (re-read per scrape)
  --target-basic-auth-user USER    basic auth user for exporters
  --target-basic-auth-password-file FILE  its password (re-read per scrape)
  (secrets themselves are no flags, argv being public: PROMPROXY_TARGET_BEARER_TOKEN and
   PROMPROXY_TARGET_BASIC_AUTH_PASSWORD, or bearer-token: / basic-auth-password: in the file)

Every flag can also be set as an environment variable: --max-scrapes-in-flight as
PROMPROXY_MAX_SCRAPES_IN_FLIGHT and so on; PROMPROXY_TARGET and PROMPROXY_LABEL take
several values separated by commas or spaces, and so does PROMPROXY_SERVER. Flags win over the environment, the
environment over the config file. Labels from all three are merged.

Config file (YAML or JSON), keys as the flags:
  name: host-1
  server: http://proxy:8080
  labels: { env: prod }
  target-timeout: 10s
  targets:
    - 9100=http://127.0.0.1:9100/metrics
    - port: 9187
      url: https://127.0.0.1:9187/metrics
      labels: { exporter: postgres }
      ca-file: /etc/ssl/pg-exporter-ca.pem
      basic-auth-user: prometheus
      basic-auth-password-file: /run/secrets/pg-exporter

SIGINT or SIGTERM stops the client (exit code 0).`;

const targetDefaults = [
  "target-timeout",
  "target-max-response-bytes",
  "target-max-scrapes-in-flight",
  "target-ca-file",
  "target-cert-file",
  "target-key-file",
  "target-server-name",
  "target-insecure-skip-verify",
  "target-bearer-token-file",
  "target-basic-auth-user",
  "target-basic-auth-password-file",
] as const;

/** @internal */
export const clientOptionSpec = {
  name: { type: "string" },
  server: { type: "string", multiple: true },
  target: { type: "string", multiple: true },
  label: { type: "string", multiple: true },
  config: { type: "string" },
  "log-level": { type: "string" },
  "metrics-listen": { type: "string" },
  "max-scrapes-in-flight": { type: "string" },
  ...clientAuthFlagSpec,
  "target-timeout": { type: "string" },
  "target-max-response-bytes": { type: "string" },
  "target-max-scrapes-in-flight": { type: "string" },
  "target-ca-file": { type: "string" },
  "target-cert-file": { type: "string" },
  "target-key-file": { type: "string" },
  "target-server-name": { type: "string" },
  "target-insecure-skip-verify": { type: "boolean" },
  "target-bearer-token-file": { type: "string" },
  "target-basic-auth-user": { type: "string" },
  "target-basic-auth-password-file": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** Keys a config file may hold at the top level (flag names; `targets`/`labels` as lists/maps). */
const fileKeys = new Set([
  "name", "server", "target", "targets", "label", "labels", "log-level", "metrics-listen", "max-scrapes-in-flight",
  ...Object.keys(clientAuthFlagSpec),
  ...targetDefaults,
  "target-bearer-token", "target-basic-auth-password",
]);
/** Keys a target object in a config file may hold. */
const targetKeys = new Set([
  "url", "port", "labels",
  ...targetDefaults.map((k) => k.slice("target-".length)),
  "bearer-token", "basic-auth-password",
]);

type Raw = Record<string, unknown>;
/** A value and where it came from. */
interface Sourced {
  value: unknown;
  from: string;
}

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
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: clientOptionSpec, strict: true, allowPositionals: false });
  } catch (e) {
    throw new CliError(`${(e as Error).message}\n\n${clientUsage}`);
  }
  if (parsed.values.help) return "help";
  const flags = parsed.values as Raw;

  const envName = (k: string) => `PROMPROXY_${k.toUpperCase().replace(/-/g, "_")}`;
  const fromEnv = (k: string): Sourced | undefined => {
    const v = env[envName(k)];
    return v === undefined || v === "" ? undefined : { value: v, from: envName(k) };
  };

  const configPath = (flags["config"] as string | undefined) ?? (fromEnv("config")?.value as string | undefined);
  const file = configPath === undefined ? {} : loadFile(configPath, readFile);
  const fromFile = (k: string): Sourced | undefined => (file[k] === undefined || file[k] === null ? undefined : { value: file[k], from: `${configPath}: ${k}` });

  /** A single-valued option: flag, then env, then file. */
  const pick = (k: string): Sourced | undefined => {
    if (flags[k] !== undefined) return { value: flags[k], from: `--${k}` };
    return fromEnv(k) ?? fromFile(k);
  };
  const str = (k: string): string | undefined => {
    const s = pick(k);
    if (s === undefined) return undefined;
    if (typeof s.value !== "string" || s.value === "") throw new CliError(`${s.from}: want a string, got ${JSON.stringify(s.value)}`);
    return s.value;
  };

  const name = str("name");
  if (!name) throw new CliError(`--name is required (or PROMPROXY_NAME, or name: in --config)\n\n${clientUsage}`);
  const servers = serverList(flags["server"] ? { value: flags["server"], from: "--server" } : fromEnv("server") ?? fromFile("server"));
  if (servers.length === 0) throw new CliError(`--server is required (or PROMPROXY_SERVER, or server: in --config)\n\n${clientUsage}`);

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
    throw new CliError(`at least one --target [PORT=]URL is required (or PROMPROXY_TARGET, or targets: in --config)\n\n${clientUsage}`);
  }

  const level = (str("log-level") ?? "info") as LogLevel;
  if (!["debug", "info", "warn", "error", "silent"].includes(level)) throw new CliError(`--log-level: unknown level ${JSON.stringify(level)}`);
  const metrics = str("metrics-listen");
  const inFlight = pick("max-scrapes-in-flight");
  return {
    name,
    servers,
    server: servers.join(", "),
    targets,
    labels,
    logLevel: level,
    metricsListen: metrics ? parseHostPort(metrics, "--metrics-listen") : undefined,
    maxScrapesInFlight: inFlight ? positiveInt(inFlight) : undefined,
    tokenFile: str("token-file"),
    serverCaFile: str("server-ca-file"),
    clientCertFile: str("client-cert-file"),
    clientKeyFile: str("client-key-file"),
    configFile: configPath,
  };
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

function loadFile(path: string, readFile: (path: string) => string): Raw {
  let text: string;
  try {
    text = readFile(path);
  } catch (e) {
    throw new CliError(`--config: cannot read ${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new CliError(`--config: ${path} is not valid ${/\.json$/i.test(path) ? "JSON" : "YAML or JSON"}: ${(e as Error).message.split("\n")[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) throw new CliError(`--config: ${path}: want a map of settings at the top level`);
  for (const k of Object.keys(doc)) {
    if (!fileKeys.has(k)) throw new CliError(`--config: ${path}: unknown key ${JSON.stringify(k)} (known: ${[...fileKeys].join(", ")})`);
  }
  return doc as Raw;
}

/** Target settings from some source, by key without "target-". */
function targetSettings(get: (k: string) => Sourced | undefined): Omit<TargetConfig, "url" | "port" | "labels"> {
  const out: Omit<TargetConfig, "url" | "port" | "labels"> = {};
  const s = (k: string) => {
    const v = get(k);
    if (v === undefined) return undefined;
    if (typeof v.value !== "string" || v.value === "") throw new CliError(`${v.from}: want a string, got ${JSON.stringify(v.value)}`);
    return v.value;
  };
  const timeout = get("timeout");
  if (timeout) out.timeoutMs = duration(timeout);
  const bytes = get("max-response-bytes");
  if (bytes) out.maxResponseBytes = byteSize(bytes);
  const inFlight = get("max-scrapes-in-flight");
  if (inFlight) out.maxScrapesInFlight = positiveInt(inFlight);
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
    const m = /^(\d+)=(.*)$/s.exec(v.trim());
    t = { ...defaults, url: m ? (m[2] as string) : v.trim(), labels: {} };
    if (m) t.port = portOf(m[1], from);
  } else if (v && typeof v === "object" && !Array.isArray(v)) {
    const o = v as Raw;
    for (const k of Object.keys(o)) {
      if (!targetKeys.has(k)) throw new CliError(`${from}: unknown key ${JSON.stringify(k)} (known: ${[...targetKeys].join(", ")})`);
    }
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

function portOf(v: unknown, from: string): number {
  const n = typeof v === "number" ? v : Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new CliError(`${from}: want a port 1-65535, got ${JSON.stringify(v)}`);
  return n;
}

function duration(s: Sourced): number {
  if (typeof s.value === "number") {
    if (!(s.value > 0)) throw new CliError(`${s.from}: want a positive duration, got ${s.value}`);
    return s.value * 1000;
  }
  return parseDurationMs(String(s.value), s.from);
}

function positiveInt(s: Sourced): number {
  return parsePositiveInt(String(s.value), s.from);
}

function bool(s: Sourced): boolean {
  if (typeof s.value === "boolean") return s.value;
  const v = String(s.value).toLowerCase();
  if (["1", "true", "yes", "on"].includes(v)) return true;
  if (["0", "false", "no", "off"].includes(v)) return false;
  throw new CliError(`${s.from}: want true or false, got ${JSON.stringify(s.value)}`);
}

const units: Record<string, number> = { "": 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** "1048576", "64MiB", "1GB". @internal */
export function byteSize(s: Sourced): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(String(s.value).trim());
  const unit = units[(m?.[2] ?? "").toLowerCase()];
  const v = m && unit ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!(v > 0)) throw new CliError(`${s.from}: want a positive size such as 1048576, 64MiB or 1GB, got ${JSON.stringify(s.value)}`);
  return v;
}

function labelMap(v: unknown, from: string): Record<string, string> {
  const out: Record<string, string> = {};
  const one = (kv: string) => {
    const i = kv.indexOf("=");
    if (i <= 0) throw new CliError(`${from}: want KEY=VALUE, got ${JSON.stringify(kv)}`);
    out[kv.slice(0, i).trim()] = kv.slice(i + 1);
  };
  if (typeof v === "string") one(v);
  else if (Array.isArray(v)) {
    for (const x of v) {
      if (typeof x !== "string") throw new CliError(`${from}: want KEY=VALUE strings, got ${JSON.stringify(x)}`);
      one(x);
    }
  } else if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      if (typeof x !== "string" && typeof x !== "number" && typeof x !== "boolean") throw new CliError(`${from}: label ${k}: want a string, got ${JSON.stringify(x)}`);
      out[k] = String(x);
    }
  } else throw new CliError(`${from}: want a map of labels, got ${JSON.stringify(v)}`);
  return out;
}

/** "a=1,b=2, c=x,y" → ["a=1", "b=2", "c=x,y"]: a comma starts a new label only where KEY= follows. @internal */
export function splitLabels(s: string): string[] {
  return s.split(/\s*,\s*(?=[A-Za-z_][A-Za-z0-9_]*=)/).map((x) => x.trim()).filter((x) => x !== "");
}

/** "9100=http://a/metrics, http://b" → two specs: commas and white space separate targets. @internal */
export function splitTargets(s: string): string[] {
  return s.split(/[\s,]+/).filter((x) => x !== "");
}
