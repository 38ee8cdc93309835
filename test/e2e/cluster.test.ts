/**
 * A node:cluster app (examples/cluster/app.ts) as one scrape target: three real
 * worker processes share an HTTP port and count in their own prom-client
 * registries; the primary's client (`clusterRegistry()`) serves them summed,
 * scraped through a real server with `curl -x`. The example imports promproxy/client
 * from dist/ (package self-reference), which `npm test` builds first (pretest).
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import * as http from "node:http";
import { test } from "node:test";
import { clusterRegistry, clusterWorker } from "../../src/client/index.ts";
import { curl, proxyGet, startServer, waitFor } from "../helpers.ts";
import { freePort } from "./prometheus.ts";

const node = new URL("../../node_modules/.bin/node", import.meta.url).pathname;
const app = new URL("../../examples/cluster/app.ts", import.meta.url).pathname;
const WORKERS = 3;

/** Sample values by series (`name{labels}`), and the families' TYPE lines, of a text exposition. */
function parse(text: string): { samples: Map<string, number>; types: string[] } {
  const samples = new Map<string, number>();
  const types: string[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("# TYPE ")) types.push(line.split(" ")[2] as string);
    if (line === "" || line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    samples.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return { samples, types };
}

function get(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve(body));
      })
      .on("error", reject);
  });
}

test("a cluster app's workers are scraped as one target, their counters summed", { timeout: 120_000 }, async () => {
  const server = await startServer();
  const appPort = await freePort();
  let out = "";
  const child: ChildProcess = spawn(node, [app], {
    env: { ...process.env, PROMPROXY_SERVER: server.url, PROMPROXY_NAME: "web-1", WORKERS: String(WORKERS), PORT: String(appPort) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const listening = () => new Set([...out.matchAll(/^worker (\d+) listening on (\d+)$/gm)].map((m) => m[1])).size;
  const scrape = async () => {
    const r = await curl(["-x", server.url, "http://web-1/metrics"]);
    assert.equal(r.code, 0, r.stderr);
    return parse(r.stdout);
  };
  try {
    await waitFor("the primary's client to connect", () => out.includes("connected;"), 30_000);
    await waitFor(`${WORKERS} workers to listen`, () => listening() === WORKERS, 30_000);

    // Real traffic on the shared port: the cluster hands the connections to the workers in turn.
    const served = new Set<string>();
    for (let i = 0; i < 30; i++) served.add(await get(appPort, i < 20 ? "/a" : "/b"));
    assert.equal(served.size, WORKERS, `every worker served requests: ${[...served].join(", ")}`);

    const { samples, types } = await scrape();
    assert.equal(new Set(types).size, types.length, "every family once: one exposition, not one per worker");
    assert.equal(samples.get('example_requests_total{route="/a"}'), 20);
    assert.equal(samples.get('example_requests_total{route="/b"}'), 10);
    const perWorker = [...samples].filter(([k]) => k.startsWith("example_worker_requests_total{"));
    assert.equal(perWorker.length, WORKERS, "a label unique to a worker keeps its series apart");
    assert.equal(perWorker.reduce((s, [, v]) => s + v, 0), 30);
    assert.equal(samples.get("example_request_seconds_count"), 30, "histograms are summed too");
    assert.equal(samples.get('example_request_seconds_bucket{le="+Inf"}'), 30);
    assert.equal(samples.get("example_warmup_jobs_total"), 1 + 2 + 3, "worker N did N+1 jobs: summed");
    assert.equal(samples.get("example_workers_up"), WORKERS, "gauges are summed by default");
    const heap = samples.get("example_largest_worker_heap_bytes") ?? 0;
    assert.ok(heap > 0 && heap < 1024 ** 3, `a gauge with aggregator "max" is the largest worker's (${heap})`);
    assert.ok((samples.get("process_cpu_seconds_total") ?? 0) > 0, "the workers' default metrics are there, summed");

    // prom-client aggregates into the text format only: OpenMetrics asked for, text 0.0.4 served.
    const om = await proxyGet(server.port, "http://web-1/metrics", { accept: "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5" });
    assert.equal(om.status, 200);
    assert.match(String(om.headers["content-type"]), /^text\/plain; version=0\.0\.4/);

    // A worker dies: the primary starts another, and scrapes go on with the workers there are. What the dead
    // worker had counted is gone from the sums (Prometheus reads the drop as a counter reset).
    const [, victim, victimPid] = /worker (\d+) \(pid (\d+)\)/.exec([...served][0] as string) as RegExpExecArray;
    const victimCount = samples.get(`example_worker_requests_total{worker="${victim}"}`) as number;
    process.kill(Number(victimPid), "SIGKILL");
    await waitFor("the primary to replace the worker", () => [...out.matchAll(new RegExp(`^worker ${victim} listening`, "gm"))].length === 2, 30_000);
    const after = await scrape();
    assert.equal(after.samples.get("example_workers_up"), WORKERS);
    assert.equal(after.samples.get("example_warmup_jobs_total"), 1 + 2 + 3);
    assert.equal(after.samples.get(`example_worker_requests_total{worker="${victim}"}`), undefined);
    const routes = (after.samples.get('example_requests_total{route="/a"}') ?? 0) + (after.samples.get('example_requests_total{route="/b"}') ?? 0);
    assert.equal(routes, 30 - victimCount);

    // SIGTERM: the primary stops its client and disconnects the workers; all of them exit.
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0, `the cluster app exits cleanly on SIGTERM:\n${out}`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, "exit");
      child.kill("SIGKILL");
      await exited;
    }
    await server.close();
  }
});

test("clusterRegistry and clusterWorker refuse the wrong process; a silent worker's timeout names the cause", async () => {
  assert.throws(() => clusterWorker(), /clusterWorker\(\) is for a cluster's workers/);
  const silent = clusterRegistry({ clusterMetrics: () => Promise.reject(new Error("Operation timed out.")) });
  assert.equal(silent.contentType, "text/plain; version=0.0.4; charset=utf-8");
  await assert.rejects(silent.metrics(), /a cluster worker did not answer within 5 s \(does every worker call clusterWorker\(\)\?\)/);
  const broken = clusterRegistry({ clusterMetrics: () => Promise.reject(new Error("boom")) });
  await assert.rejects(broken.metrics(), /^Error: boom$/);
  assert.equal(await clusterRegistry({ clusterMetrics: async () => "x_total 1\n" }).metrics(), "x_total 1\n");
});
