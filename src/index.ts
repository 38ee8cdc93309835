/**
 * promproxy: let Prometheus scrape applications it cannot reach, through one
 * outbound stream per application. The server lives in `promproxy/server`,
 * the embedded client and forwarder in `promproxy/client`; both are re-exported here.
 *
 * @packageDocumentation
 */
export * from "./server/index.ts";
export {
  createClient,
  clusterRegistry,
  clusterWorker,
  bearerToken,
  clientTlsFromFiles,
  type PromproxyClient,
  type ClientOptions,
  type ClientState,
  type StreamInfo,
  type BackoffOptions,
  type MetricsRegistry,
  type ClientTlsOptions,
  type HttpTargetOptions,
  type Secret,
} from "./client/index.ts";
