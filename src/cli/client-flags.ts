/**
 * The settings of `promproxy client`, as one table: every flag with its usage
 * lines and default, the targets' secrets (variables and file keys only:
 * argv is public) and the file's list forms, and what is read from it
 * (src/cli/flag-table.ts): the parseArgs spec, the usage text, the
 * PROMPROXY_* variables and file keys.
 *
 * @internal
 */
import { defaultsOf, envKeysOf, envName, fileKeysOf, specOf, usageOf, type SettingRow } from "./flag-table.ts";

const clientFlags = [
  { key: "name", type: "string", arg: "NAME", required: true, help: ["the name Prometheus scrapes this client by (a DNS label)"] },
  {
    key: "server", type: "string", multiple: true, arg: "URL", required: true,
    help: [
      "the promproxy server, e.g. http://proxy:8080",
      "repeatable (a stream to each); one URL whose name has several",
      "addresses: a stream to each address; one address (a load",
      "balancer): new connections until every replica is held",
    ],
  },
  {
    key: "target", type: "string", multiple: true, arg: "[PORT=]URL", required: true,
    help: [
      "an exporter, e.g. 9100=http://127.0.0.1:9100/metrics;",
      "repeatable; PORT is the port Prometheus addresses",
      "(NAME:PORT, announced in /clients); a target without",
      "PORT= is served on any port; the URL's path is the prefix",
      "served; user:password@ in the URL is basic auth",
    ],
  },
  { key: "targets", type: "string", in: ["file"] },
  { key: "label", type: "string", multiple: true, arg: "KEY=VALUE", help: ["a label announced in /clients for every target; repeatable"] },
  { key: "labels", type: "string", in: ["file"] },
  { key: "config", type: "string", arg: "FILE", in: ["flag"], help: ["a JSON or YAML file with the same fields (see below)"] },
  { key: "log-level", type: "string", arg: "L", help: ["debug, info, warn, error or silent"], default: "info" },
  { key: "log-format", type: "string", arg: "F", help: ["text, or json (one object per line)"], default: "text" },
  { key: "metrics-listen", type: "string", arg: "HOST:PORT", help: ["serve this client's own metrics at http://HOST:PORT/metrics"], shown: "off" },
  { key: "max-scrapes-in-flight", type: "string", arg: "N", help: ["most scrapes served at once; more get HTTP 503"], shown: "8" },
  {
    key: "max-server-frames-per-second", type: "string", arg: "N",
    help: ["most frames read from the servers a second; past it", "the streams wait (flow control holds the server)"], shown: "10000",
  },
  {
    key: "max-server-control-frames-per-second", type: "string", arg: "N",
    help: ["most HTTP/2 control frames (PING, SETTINGS, ...) a server", "sends a second on a connection; past it, it is closed"], shown: "100",
  },
  {
    key: "max-server-overhead-bytes-per-second", type: "string", arg: "N",
    help: ["most bytes a server sends a second on a connection that", "carry no data (WINDOW_UPDATE, padding); past it, it is closed"], shown: "1048576",
  },
  {
    key: "token-file", type: "string", arg: "FILE", section: " The connection to the server:",
    help: ["bearer token for the server, re-read on every reconnect"], shown: "none",
  },
  { key: "server-ca-file", type: "string", arg: "FILE", help: ["CA (PEM) to verify an https:// server with"], shown: "system CAs" },
  { key: "client-cert-file", type: "string", arg: "FILE", help: ["client certificate (PEM) for mTLS, re-read per reconnect"], shown: "none" },
  { key: "client-key-file", type: "string", arg: "FILE", help: ["its private key (PEM)"], shown: "none" },
  {
    key: "target-timeout", type: "string", arg: "D", shown: "deadline",
    section: ` For every target (a target in the config file can set each for itself, without "target-"):`,
    help: ["time an exporter has per scrape, cut to the scrape's deadline"],
  },
  { key: "target-max-response-bytes", type: "string", arg: "N", help: ["largest body accepted from an exporter (also 64MiB, 1GiB)"], shown: "256MiB" },
  { key: "target-max-scrapes-in-flight", type: "string", arg: "N", help: ["most scrapes of one exporter at once"], shown: "no own limit" },
  {
    key: "target-max-scrapes-per-second", type: "string", arg: "N",
    help: ["most scrapes sent to one exporter a second (a burst", "of N, then N a second); more get HTTP 503; none by", "default for a target serving every path (blackbox)"], shown: "10",
  },
  { key: "target-ca-file", type: "string", arg: "FILE", help: ["CA (PEM) to verify https:// exporters with"], shown: "system CAs" },
  { key: "target-cert-file", type: "string", arg: "FILE", help: ["client certificate (PEM) for exporters requiring mTLS"] },
  { key: "target-key-file", type: "string", arg: "FILE", help: ["its private key (PEM)"] },
  { key: "target-server-name", type: "string", arg: "NAME", help: ["TLS server name to verify instead of the URL's host"] },
  { key: "target-insecure-skip-verify", type: "boolean", help: ["accept any exporter certificate"] },
  { key: "target-bearer-token-file", type: "string", arg: "FILE", help: [`send "Authorization: Bearer <file contents>" (re-read per scrape)`] },
  { key: "target-basic-auth-user", type: "string", arg: "USER", help: ["basic auth user for exporters"] },
  { key: "target-basic-auth-password-file", type: "string", arg: "FILE", help: ["its password (re-read per scrape)"] },
  { key: "target-bearer-token", type: "string", in: ["env", "file"] },
  { key: "target-basic-auth-password", type: "string", in: ["env", "file"] },
  { key: "help", type: "boolean", short: "h", in: ["flag"] },
] as const satisfies readonly SettingRow[];

/** @internal */
export const clientOptionSpec = specOf(clientFlags);

/** Settings `promproxy client` reads from PROMPROXY_* variables besides CONFIG: every flag, and the targets' secrets (no flags: argv is public). @internal */
export const clientEnvKeys: readonly string[] = envKeysOf(clientFlags);

/** Keys a config file may hold at the top level (flag names; `targets`/`labels` as lists/maps). @internal */
export const clientFileKeys: ReadonlySet<string> = new Set(fileKeysOf(clientFlags));

/** Settings every target inherits, by key without "target-": a target object in the file may set each for itself. @internal */
export const targetSettingKeys: readonly string[] = clientFlags.flatMap((r) => (r.key.startsWith("target-") ? [r.key.slice("target-".length)] : []));

/** What the command uses for a setting not given (where the library's own default is not the one). @internal */
export const clientDefaults = defaultsOf(clientFlags);

export const clientUsage = `usage: promproxy client --name NAME --server URL --target [PORT=]URL [--target ...] [options]

Runs a forwarder: keeps a stream open to every promproxy server replica and serves
Prometheus' scrapes of http://NAME:PORT/PATH from the exporter configured for PORT.

${usageOf(clientFlags, { helpColumn: 31, markColumn: 90, longFlags: "inline", maxWidth: 110 })}
  (secrets themselves are no flags, argv being public: ${envName("target-bearer-token")} and
   ${envName("target-basic-auth-password")}, or bearer-token: / basic-auth-password: in the file)

Every flag can also be set as an environment variable: --max-scrapes-in-flight as
${envName("max-scrapes-in-flight")} and so on; ${envName("target")} and ${envName("label")} take
several values separated by commas or spaces, and so does ${envName("server")}. Flags win over the environment, the
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
