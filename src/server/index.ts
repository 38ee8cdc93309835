/**
 * promproxy/server: the server that holds client streams and proxies
 * Prometheus' scrapes to them.
 *
 * @packageDocumentation
 */
export { createServer, preferHttp1Alpn, type PromproxyServer } from "./server.ts";
export type { ServerOptions } from "./options.ts";
export type { ListenOptions } from "./listen.ts";
export type { ClientInfo } from "./client-info.ts";
export type { ServerEvents, ScrapeEvent } from "./activity.ts";
export type { ServerStatus } from "./status.ts";
export type { ErrorGroup } from "./error-groups.ts";
export type { RefusedEntry } from "./refusals.ts";
export type { VanishedClient } from "./vanished.ts";
export type { Phase } from "./coordinator.ts";
export type { DiscoveryGroup } from "./discovery.ts";
export { identityKey, type Identity } from "../auth/identity.ts";
export { bearerAuth, type BearerAuthOptions, type BearerVerifyContext, type TokenGrant } from "../auth/bearer-auth.ts";
export { mtlsAuth, type MtlsAuthOptions } from "../auth/mtls-auth.ts";
export { peerKey, type Peer } from "../auth/peer.ts";
export type { PromAuthOptions, PromAuthRequest, PromCredential, PromEndpoint } from "../auth/prom-auth.ts";
export { hashPassword, verifyPassword } from "../auth/passwords.ts";
export type { ListenTlsOptions } from "../auth/tls-credentials.ts";
export { createConsoleLogger, silentLogger, type AnyLogger, type FieldsFirstLogger, type Logger, type LogFormat, type LogLevel } from "../shared/logger.ts";
