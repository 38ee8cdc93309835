/**
 * promproxy: let Prometheus scrape applications it cannot reach, through one
 * outbound stream per application. The server lives in `promproxy/server`,
 * the embedded client in `promproxy/client`; both are re-exported here.
 *
 * @packageDocumentation
 */
export { createServer, type PromproxyServer, type ServerOptions, type ListenOptions, type ClientInfo, type DiscoveryGroup } from "./server/index.ts";
export { identityKey, type Identity } from "./auth/identity.ts";
export { createClient, type PromproxyClient, type ClientOptions, type ClientState, type BackoffOptions, type MetricsRegistry } from "./client/index.ts";
export { createConsoleLogger, silentLogger, type Logger, type LogLevel } from "./shared/logger.ts";
