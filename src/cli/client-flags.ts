/**
 * The flags of `promproxy client`: its usage text and the parseArgs spec.
 *
 * @internal
 */
import { clientAuthFlagSpec, clientAuthUsage } from "./auth-flags.ts";

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
  --log-format F               text, or json (one object per line)                        [text]
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

export const targetDefaults = [
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
  "log-format": { type: "string" },
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

/** Settings `promproxy client` reads from PROMPROXY_* variables besides CONFIG: every flag, and the targets' secrets (no flags: argv is public). @internal */
export const clientEnvKeys: readonly string[] = [
  ...Object.keys(clientOptionSpec).filter((k) => k !== "help" && k !== "config"),
  "target-bearer-token",
  "target-basic-auth-password",
];
