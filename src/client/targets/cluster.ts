import cluster from "node:cluster";
import { AggregatorRegistry, Registry } from "prom-client";
import type { MetricsRegistry } from "./render.ts";

/** What `clusterRegistry` needs of prom-client's `AggregatorRegistry`: its `clusterMetrics()`. */
export interface ClusterAggregator {
  clusterMetrics(): Promise<string>;
}

/**
 * The metrics of every worker of a `node:cluster` app, aggregated, as a
 * registry to serve from the primary:
 * `createClient({ ..., registry: clusterRegistry() })`. Every worker calls
 * {@link clusterWorker} once.
 *
 * A cluster app has one prom-client registry per worker process; scraping one
 * of them shows that worker only. prom-client's `AggregatorRegistry` asks
 * every connected worker for its metrics over the cluster's IPC channel and
 * aggregates them per series: counters, histograms and summaries summed,
 * gauges per their `aggregator` option (sum by default; "max", "min",
 * "average", "first", "omit"). A label unique to a worker keeps its series apart.
 *
 * Pass an `AggregatorRegistry` of your own (or anything with
 * `clusterMetrics()`), or let this create one. The exposition is always the
 * text format 0.0.4 (prom-client aggregates into that format only), whatever
 * Prometheus asks for; the primary's own metrics are not part of it. A worker
 * that does not answer within 5 s fails the scrape (prom-client's timeout).
 * `createClient({ registry })` wraps an `AggregatorRegistry` with this
 * itself in a cluster's primary (in a process that is no cluster at all it
 * then serves nothing: there are no workers).
 *
 * Call it in the primary; in a worker it throws. Process managers that own
 * the primary themselves (pm2 in cluster mode) run the application in workers
 * only: there, give each worker a client of its own (examples/cluster/README.md).
 */
export function clusterRegistry(aggregator?: ClusterAggregator): MetricsRegistry {
  if (!cluster.isPrimary) {
    throw new TypeError("promproxy: clusterRegistry() serves the workers' metrics from the cluster's primary process; in a worker, call clusterWorker()");
  }
  const source = aggregator ?? new AggregatorRegistry();
  return {
    contentType: Registry.PROMETHEUS_CONTENT_TYPE,
    metrics: () =>
      source.clusterMetrics().catch((e: unknown) => {
        if (e instanceof Error && e.message === "Operation timed out.") {
          throw new Error("a cluster worker did not answer within 5 s (does every worker call clusterWorker()?)", { cause: e });
        }
        throw e;
      }),
  };
}

/**
 * Makes this cluster worker answer the primary's `clusterRegistry()`, with
 * the metrics of `registries` (default: prom-client's global `register`).
 * Call it once in every worker: prom-client's workers answer only once an
 * `AggregatorRegistry` was created in them, and without an answer from every
 * worker the primary's scrapes fail.
 */
export function clusterWorker(registries?: Registry | Registry[]): void {
  if (!cluster.isWorker) throw new TypeError("promproxy: clusterWorker() is for a cluster's workers; in the primary, use clusterRegistry()");
  new AggregatorRegistry(); // adds prom-client's IPC listener (once per process)
  if (registries) AggregatorRegistry.setRegistries(registries);
}
