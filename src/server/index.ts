/**
 * promproxy/server: the server that holds client streams and proxies
 * Prometheus' scrapes to them.
 *
 * @packageDocumentation
 */
export { createServer, type PromproxyServer } from "./server.ts";
export type { ServerOptions } from "./options.ts";
export type { ListenOptions } from "./listen.ts";
export type { ClientInfo } from "./session.ts";
export type { DiscoveryGroup } from "./discovery.ts";
export { identityKey, type Identity } from "../auth/identity.ts";
export { createConsoleLogger, silentLogger, type Logger, type LogLevel } from "../shared/logger.ts";
