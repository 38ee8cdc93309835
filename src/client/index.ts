/**
 * promproxy/client: keep one outbound stream to a promproxy server and serve
 * Prometheus' scrapes from a prom-client registry in-process.
 *
 * @packageDocumentation
 */
export { createClient, type ClientState, type PromproxyClient } from "./client.ts";
export type { ClientOptions, StreamInfo } from "./options.ts";
export type { RegistryOptions } from "./registry-options.ts";
export { bearerToken } from "../auth/client/bearer-token.ts";
export { clientTlsFromFiles, type ClientTlsOptions } from "../auth/client/client-tls.ts";
export type { HttpTargetOptions, Secret } from "./targets/http-target-options.ts";
export type { BackoffOptions } from "./backoff.ts";
export type { MetricsRegistry } from "./targets/render.ts";
export { clusterRegistry, clusterWorker, type ClusterAggregator } from "./targets/cluster.ts";
export { createConsoleLogger, silentLogger, type Logger, type LogLevel } from "../shared/logger.ts";
