/**
 * The flags of `promproxy server`: its usage text and the parseArgs spec.
 *
 * @internal
 */
import { serverAuthFlagSpec, serverAuthUsage } from "./auth-flags.ts";

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
  --backlog N                  connections the kernel queues for accepting (listen backlog) [4096]
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
  --peers X                    the other replicas, so that any ready replica serves any client
                               (forwarding) and /clients lists the whole fleet: a name whose
                               addresses are all replicas (a headless Service, resolved every
                               5s), or comma-separated URLs (this replica may be among them)  [none]
  --peer-secret-file F         the secret peer requests are signed with, one a line (the first
                               signs, all verify), at least 16 characters; re-read when it
                               changes; required with --peers                               [none]
  --log-level L                debug, info, warn, error or silent                        [info]
  --log-format F               text, or json (one object per line: time, level,
                               component, msg, then the event's fields)                   [text]
  --config FILE                a JSON or YAML file with the same settings (see below)

${serverAuthUsage}

Every option can also be set as an environment variable: --max-clients as PROMPROXY_MAX_CLIENTS
and so on (PROMPROXY_CONFIG for --config). Flags win over the environment, the environment over
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

/** @internal */
export const serverOptionSpec = {
  listen: { type: "string" },
  "default-scrape-timeout": { type: "string" },
  "max-scrape-timeout": { type: "string" },
  "max-clients": { type: "string" },
  "max-scrapes-in-flight": { type: "string" },
  "max-response-bytes": { type: "string" },
  "heartbeat-interval": { type: "string" },
  "max-connections": { type: "string" },
  "max-connections-per-address": { type: "string" },
  backlog: { type: "string" },
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
  peers: { type: "string" },
  "peer-secret-file": { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  config: { type: "string" },
  ...serverAuthFlagSpec,
  help: { type: "boolean", short: "h" },
} as const;

/** Settings a file or PROMPROXY_* variable may hold for `promproxy server`: every flag but --help, --config and --hash-password. @internal */
export const serverSettingKeys = (Object.keys(serverOptionSpec) as (keyof typeof serverOptionSpec)[]).filter(
  (k): k is Exclude<keyof typeof serverOptionSpec, "help" | "config" | "hash-password"> => k !== "help" && k !== "config" && k !== "hash-password",
);
