/**
 * The settings of `promproxy server`, as one table: every flag with its usage
 * lines and default, and what is read from it (src/cli/flag-table.ts): the
 * parseArgs spec, the usage text, the PROMPROXY_* variables and file keys.
 *
 * @internal
 */
import { defaultsOf, envKeysOf, envName, specOf, usageOf, type SettingRow, type ValuesOf } from "./flag-table.ts";

/**
 * The CLI's warm-up with `--replica-count`: clients missing a replica search
 * for it at most 10 s apart (PROTOCOL.md, "Several replicas"), so a
 * replacement that listens after a long outage is found within 10 s; 5 s more
 * for a loaded host or a round that missed it.
 */
export const replicaWarmupMs = 15_000;

const serverFlags = [
  { key: "listen", type: "string", arg: "HOST:PORT", help: ["address to listen on (HTTP/1.1 and HTTP/2 on one port)"], default: "127.0.0.1:8080" },
  { key: "default-scrape-timeout", type: "string", arg: "D", help: ["timeout when Prometheus sends none (curl)"], shown: "15s" },
  { key: "max-scrape-timeout", type: "string", arg: "D", help: ["upper bound for any scrape timeout"], shown: "5m" },
  { key: "max-clients", type: "string", arg: "N", help: ["most connected clients"], shown: "10000" },
  { key: "max-scrapes-in-flight", type: "string", arg: "N", help: ["most scrapes in flight per client"], shown: "16" },
  { key: "max-scrapes-waiting", type: "string", arg: "N", help: ["most scrapes per client waiting for a place (0: 503 at once)"], shown: "64" },
  { key: "max-response-bytes", type: "string", arg: "N", help: ["largest scrape body"], shown: "268435456" },
  { key: "heartbeat-interval", type: "string", arg: "D", help: ["app-level ping interval on every stream"], shown: "10s" },
  { key: "max-connections", type: "string", arg: "N", help: ["open connections at most, HTTP/1.1 and HTTP/2"], shown: "max-clients + 1000" },
  { key: "max-connections-per-address", type: "string", arg: "N", help: ["open connections at most per IPv4 address or IPv6 /64"], shown: "1000" },
  { key: "backlog", type: "string", arg: "N", help: ["connections the kernel queues for accepting (listen backlog)"], shown: "4096" },
  { key: "max-streams-per-connection", type: "string", arg: "N", help: ["concurrent HTTP/2 streams per connection"], shown: "16" },
  { key: "idle-session-timeout", type: "string", arg: "D", help: ["an HTTP/2 connection without an open stream is closed"], shown: "30s" },
  { key: "max-header-list-bytes", type: "string", arg: "N", help: ["largest request header list (HTTP/1.1 and HTTP/2)"], shown: "16384" },
  { key: "unread-answer-timeout", type: "string", arg: "D", help: ["an answer the peer takes nothing of this long: reset", "(HTTP/2), or its connection closed (HTTP/1.1)"], shown: "60s" },
  { key: "max-pipelined-requests", type: "string", arg: "N", help: ["HTTP/1.1 requests waiting behind the one in service per", "connection; one more drops the connection"], shown: "16" },
  { key: "max-unread-answer-bytes-per-connection", type: "string", arg: "N", help: ["page bytes one HTTP/2 connection may hold unread"], shown: "16777216" },
  { key: "max-unread-answer-bytes", type: "string", arg: "N", help: ["page bytes all HTTP/2 connections together may hold unread"], shown: "268435456" },
  { key: "max-client-overhead-bytes-per-second", type: "string", arg: "N", help: ["bytes without data one HTTP/2 connection may send a second", "(WINDOW_UPDATE, padding, frame headers); past it: closed"], shown: "1048576" },
  { key: "max-request-body-bytes", type: "string", arg: "N", help: ["request body bytes read on a request that takes none (all", "but the RPCs); past it: 413 and the connection closed"], shown: "65536" },
  { key: "max-refused-streams-per-connection", type: "string", arg: "N", help: ["HTTP/2 streams whose header blocks (HEADERS or trailers) were", "refused as too large one connection may open; one more: closed"], shown: "10" },
  {
    key: "drain-delay", type: "string", arg: "D", default: "5s",
    help: ["on SIGTERM: /readyz fails at once, scrapes are still served", "(Connection: close) this long, then refused with 503"],
  },
  { key: "shutdown-grace", type: "string", arg: "D", help: ["then how long in-flight scrapes may finish"], default: "10s" },
  {
    key: "warmup", type: "string", arg: "D", default: "5s", shown: `5s; ${replicaWarmupMs / 1000}s with --replica-count: clients search every 10 s`,
    help: ["after start, /readyz fails at least this long, then until no", "new client joined for --warmup-settle (at most 6x warmup)"],
  },
  { key: "warmup-settle", type: "string", arg: "D", help: ["see --warmup"], default: "2s" },
  {
    key: "vanished-retention", type: "string", arg: "D", shown: "10m",
    help: ["a client whose stream broke stays in /clients (connected", `"false", scrapes answered 503) this long; 0s: not at all`],
  },
  {
    key: "max-vanished-per-identity", type: "string", arg: "N", shown: "max-clients",
    help: ["vanished clients kept per identity (a token's or", "certificate's); its oldest goes first"],
  },
  { key: "replica-id", type: "string", arg: "ID", help: ["this replica's id in every welcome"], shown: "host name-random" },
  {
    key: "replica-count", type: "string", arg: "N", shown: "0",
    help: ["how many replicas serve the clients' address; clients dial", "until they hold a stream to that many (0: unknown)"],
  },
  {
    key: "peers", type: "string", arg: "X", shown: "none",
    help: [
      "the other replicas, so that any ready replica serves any client",
      "(forwarding) and /clients lists the whole fleet: a name whose",
      "addresses are all replicas (a headless Service, resolved every",
      "5s), or comma-separated URLs (this replica may be among them)",
    ],
  },
  {
    key: "peer-secret-file", type: "string", arg: "F", shown: "none",
    help: [
      "the secret peer requests are signed with, one a line (the first",
      "signs, all verify), at least 16 characters; re-read when it",
      "changes; required with --peers",
    ],
  },
  {
    key: "replicas-per-client", type: "string", arg: "K", shown: "0: all",
    help: ["with --peers: each client holds K of the replicas (rendezvous", "hashing of its name); the others serve it by forwarding"],
  },
  {
    key: "max-forwards-per-peer", type: "string", arg: "N", shown: "256",
    help: ["with --peers: scrapes forwarded to one peer in flight at most,", "one address at most half (past either: 503 at once)"],
  },
  { key: "log-level", type: "string", arg: "L", help: ["debug, info, warn, error or silent"], default: "info" },
  {
    key: "log-format", type: "string", arg: "F", default: "text",
    help: ["text, or json (one object per line: time, level,", "component, msg, then the event's fields)"],
  },
  { key: "config", type: "string", arg: "FILE", in: ["flag"], help: ["a JSON or YAML file with the same settings (see below)"] },
  {
    key: "tls-cert-file", type: "string", arg: "FILE", section: "TLS (certificate files are reloaded when they change):",
    help: ["serve TLS (HTTP/1.1, HTTP/2 by ALPN) with this PEM chain"], shown: "cleartext",
  },
  { key: "tls-key-file", type: "string", arg: "FILE", help: ["its private key (PEM)"] },
  {
    key: "tls-client-ca-file", type: "string", arg: "FILE", shown: "none",
    help: ["ask for client certificates signed by this CA; a client's", "certificate (CN, DNS SANs) binds the names it may hold"],
  },
  {
    key: "tls-require-client-cert", type: "boolean",
    help: ["refuse connections without such a certificate (Prometheus", "too); without it, only client streams need one"],
  },
  {
    key: "client-token-file", type: "string", arg: "FILE", section: "Client streams:", shown: "none",
    help: [`bearer tokens, "TOKEN NAME-PATTERNS [IDENTITY]" per line,`, `e.g. "3f9a... app-*,db-1 team-a"; reloaded on change`, "(with --tls-client-ca-file too, a client needs both)"],
  },
  {
    key: "prom-users-file", type: "string", arg: "FILE", section: "Prometheus (proxied scrapes, /clients, /metrics; /healthz stays open):", shown: "none",
    help: [`basic auth, "user:hash" per line (bcrypt as htpasswd -nbB`, "writes it, or scrypt from --hash-password); reloaded"],
  },
  { key: "prom-token-file", type: "string", arg: "FILE", help: ["bearer tokens, one per line; reloaded"], shown: "none" },
  { key: "prom-auth-endpoints", type: "string", arg: "LIST", help: ["which need credentials: proxy,clients,metrics"], shown: "all three" },
  { key: "prom-failure-burst", type: "string", arg: "N", help: ["failed logins an address may make before 429s"], shown: "10" },
  { key: "prom-failure-refill-ms", type: "string", arg: "MS", help: ["then one more failure allowed every MS"], shown: "6000" },
  {
    key: "prom-max-checks", type: "string", arg: "N", shown: "half the CPUs",
    help: ["password hash checks at once (16 more may wait, then 503)", "(keep it under 4: scrypt shares libuv threads)"],
  },
  { key: "hash-password", type: "boolean", in: ["flag"], help: ["read a password on stdin, print its scrypt hash, exit"] },
  { key: "help", type: "boolean", short: "h", in: ["flag"] },
] as const satisfies readonly SettingRow[];

/** A setting of `promproxy server` by its flag name. @internal */
export type ServerFlag = Exclude<(typeof serverFlags)[number]["key"], "help">;
/** The settings by flag name: strings, booleans for switches. @internal */
export type ServerValues = Omit<ValuesOf<typeof serverFlags>, "help">;

/** @internal */
export const serverOptionSpec = specOf(serverFlags);

/** Settings a file or PROMPROXY_* variable may hold for `promproxy server`: every flag but --help, --config and --hash-password. @internal */
export const serverSettingKeys = envKeysOf(serverFlags) as Exclude<ServerFlag, "config" | "hash-password">[];

/** What the command uses for a setting not given (where the library's own default is not the one). @internal */
export const serverDefaults = defaultsOf(serverFlags);

export const serverUsage = `usage: promproxy server [options]

${usageOf(serverFlags, { helpColumn: 31, markColumn: 89, longFlags: "own-line", maxWidth: 110 })}

Every option can also be set as an environment variable: --max-clients as ${envName("max-clients")}
and so on (${envName("config")} for --config). Flags win over the environment, the environment over
the config file. An unknown flag or file key is an error, and so is a PROMPROXY_* variable close to
a setting's name; other PROMPROXY_* variables are ignored with a warning.

Config file (YAML or JSON), keys as the flags:
  listen: 0.0.0.0:8080
  max-clients: 2000
  drain-delay: 10s
  tls-cert-file: /etc/promproxy/tls.crt
  tls-key-file: /etc/promproxy/tls.key
  client-token-file: /etc/promproxy/client-tokens
  prom-auth-endpoints: [proxy, clients]`;
