// A node:cluster app whose workers share one HTTP port, each worker with its own prom-client metrics,
// scrapeable as one target: the primary's promproxy client serves every worker's metrics, summed.
//   PROMPROXY_SERVER=http://127.0.0.1:8080 PROMPROXY_NAME=web-1 WORKERS=3 PORT=3000 node examples/cluster/app.ts
import cluster, { type Worker } from "node:cluster";
import * as http from "node:http";
import { collectDefaultMetrics, Counter, Gauge, Histogram } from "prom-client";
import { clusterRegistry, clusterWorker, createClient } from "promproxy/client";

const serverUrl = process.env["PROMPROXY_SERVER"] ?? "http://127.0.0.1:8080";
const name = process.env["PROMPROXY_NAME"] ?? "web-1";
const workers = Number(process.env["WORKERS"] ?? 3);
const port = Number(process.env["PORT"] ?? 3000);

if (cluster.isPrimary) {
  const indexOf = new Map<Worker, number>();
  const fork = (index: number) => indexOf.set(cluster.fork({ WORKER_INDEX: String(index) }), index);
  for (let i = 0; i < workers; i++) fork(i);
  cluster.on("message", (worker, msg: { listening?: number }) => {
    if (msg.listening !== undefined) console.log(`worker ${indexOf.get(worker)} listening on ${msg.listening}`);
  });
  let stopping = false;
  cluster.on("exit", (worker, code, signal) => {
    const index = indexOf.get(worker) ?? 0;
    indexOf.delete(worker);
    if (stopping) return;
    console.warn(`worker ${index} exited (${signal ?? code}); starting another`);
    fork(index);
  });

  // The two lines, in the primary: one client, serving every worker's metrics summed (prom-client's AggregatorRegistry).
  const client = createClient({ name, serverUrl, registry: clusterRegistry() });
  await client.start(); // returns at once: the app starts whatever the server does
  await client.ready(); // this example waits for the welcome, to print the curl line

  console.log(`connected; scrape with: curl -x ${serverUrl} http://${name}/metrics`);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      stopping = true;
      void client.stop().then(() => {
        for (const worker of Object.values(cluster.workers ?? {})) worker?.disconnect();
      });
    });
  }
} else {
  // A worker counts in prom-client's global register, and answers the primary's requests for it
  // (clusterWorker(registry) for registries of its own).
  clusterWorker();
  const index = Number(process.env["WORKER_INDEX"]);
  collectDefaultMetrics();
  const requests = new Counter({ name: "example_requests_total", help: "HTTP requests served.", labelNames: ["route"] });
  const byWorker = new Counter({ name: "example_worker_requests_total", help: "HTTP requests served, per worker.", labelNames: ["worker"] });
  const seconds = new Histogram({ name: "example_request_seconds", help: "Time to serve a request.", buckets: [0.001, 0.01, 0.1, 1] });
  const warmup = new Counter({ name: "example_warmup_jobs_total", help: "Jobs done at start (worker N does N+1)." });
  const up = new Gauge({ name: "example_workers_up", help: "Workers running (each sets 1: the sum counts them)." });
  const heap = new Gauge({ name: "example_largest_worker_heap_bytes", help: "The largest heap of any worker.", aggregator: "max" });

  warmup.inc(index + 1);
  up.set(1);
  heap.set(process.memoryUsage().heapUsed);

  const server = http.createServer((req, res) => {
    const end = seconds.startTimer();
    requests.inc({ route: new URL(req.url ?? "/", "http://x").pathname });
    byWorker.inc({ worker: String(index) });
    res.end(`served by worker ${index} (pid ${process.pid})\n`);
    end();
  });
  server.listen(port, () => process.send?.({ listening: (server.address() as { port: number }).port }));
}
