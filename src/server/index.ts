/**
 * promproxy/server: the server that holds client streams and proxies
 * Prometheus' scrapes to them.
 *
 * @packageDocumentation
 */
export { createServer, preferHttp1Alpn, type PromproxyServer } from "./server.ts";
export type { ServerOptions } from "./options.ts";
export type { ListenOptions } from "./listen/listen.ts";
export type { ClientInfo } from "./client-info.ts";
export type { ServerEvents, ScrapeEvent } from "./activity.ts";
export type { ServerStatus } from "./status/server-status.ts";
export type { ErrorGroup } from "./status/error-groups.ts";
export type { RefusedEntry } from "./status/refusals.ts";
export type { VanishedClient } from "./vanished.ts";
export type { Phase } from "./coordinator.ts";
export type { DiscoveryGroup } from "./discovery.ts";
export { identityKey, type Identity } from "../auth/stream/identity.ts";
export { bearerAuth, type BearerAuthOptions, type BearerVerifyContext, type TokenGrant } from "../auth/stream/bearer-auth.ts";
export { mtlsAuth, type MtlsAuthOptions } from "../auth/stream/mtls-auth.ts";
export { peerKey, type Peer } from "../auth/stream/peer.ts";
export type { PromAuthOptions, PromAuthRequest, PromCredential, PromEndpoint } from "../auth/prometheus/prom-auth.ts";
export { hashPassword, verifyPassword } from "../auth/prometheus/passwords.ts";
export type { ListenTlsOptions } from "../auth/tls-credentials.ts";
export { createConsoleLogger, silentLogger, type AnyLogger, type FieldsFirstLogger, type Logger, type LogFormat, type LogLevel } from "../shared/logger.ts";
