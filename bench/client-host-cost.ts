/**
 * What idle embedded clients cost their host: `npx node --expose-gc bench/client-host-cost.ts [--clients=50]
 * [--transport=fast|connect] [--seconds=20]`. Three promproxy servers run in a child process; this process is
 * the host: it creates `--clients` clients, each holding 3 streams (one per server), and prints its RSS and JS
 * heap after GC, before and after they connected and settled, per client, and its CPU per idle minute (default
 * heartbeats), then its CPU per 10 KB scrape (`--scrapes` sequential scrapes of client 0 through the first server, sent
 * by the child). Run it once per transport and compare (memory per client is far less noisy than CPU).
 * `--heap-snapshot=DIR` writes the host's heap before and after (bench/heap-summary.ts AFTER BEFORE --per=N).
 * `--transport=http`: the baseline, prom-client's registry served by its own idle HTTP endpoint per "client".
 */
import * as http from "node:http";
import { writeHeapSnapshot } from "node:v8";
import { fork } from "node:child_process";
import { Registry, Gauge } from "prom-client";
import { createClient, type PromproxyClient } from "../src/client/index.ts";
import { createServer, silentLogger } from "../src/server/index.ts";

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, "").split("=") as [string, string]));

if (args.get("role") === "servers") {
  const urls: string[] = [];
  for (let i = 0; i < 3; i++) {
    const server = createServer({ logger: silentLogger, replicaCount: 1, maxClients: 100_000 });
    const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
    urls.push(`http://127.0.0.1:${port}`);
  }
  process.send?.(urls);
  process.on("disconnect", () => process.exit(0));
  // Scrapes for the parent: { port, uri, n } -> "done" once n sequential scrapes answered 200 (keep-alive).
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  process.on("message", async (m: { port: number; uri: string; n: number }) => {
    let ok = 0;
    for (let i = 0; i < m.n; i++) {
      ok += await new Promise<number>((resolve) => {
        const req = http.request({ host: "127.0.0.1", port: m.port, path: m.uri, agent, headers: { accept: "text/plain" } }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode === 200 ? 1 : 0));
        });
        req.on("error", () => resolve(0));
        req.end();
      });
    }
    process.send?.({ ok });
  });
} else {
  const clients = Number(args.get("clients") ?? 50);
  const transport = (args.get("transport") ?? "fast") as "fast" | "connect" | "http";
  const seconds = Number(args.get("seconds") ?? 20);
  const scrapes = Number(args.get("scrapes") ?? 2000);
  const child = fork(new URL(import.meta.url).pathname, ["--role=servers"], { stdio: "inherit" });
  const urls = await new Promise<string[]>((r) => child.once("message", (m) => r(m as string[])));
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --expose-gc");
  const measure = async () => {
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 50));
    }
    const m = process.memoryUsage();
    return { rss: m.rss, heap: m.heapUsed };
  };
  const registry = new Registry();
  const gauge = new Gauge({ name: "host_cost_gauge", help: "about 10 KB of series", labelNames: ["series"], registers: [registry] });
  for (let i = 0; i < 200; i++) gauge.set({ series: `series-number-${i}` }, i);
  const snapshotDir = args.get("heap-snapshot"); // --heap-snapshot=DIR: before/after snapshots for bench/heap-summary.ts
  if (snapshotDir) writeHeapSnapshot(`${snapshotDir}/host-before.heapsnapshot`);
  const before = await measure();
  const list: PromproxyClient[] = [];
  let connected = 0;
  const servers: http.Server[] = [];
  for (let i = 0; i < clients && transport === "http"; i++) {
    const s = http.createServer((_, res) => void registry.metrics().then((b) => res.end(b)));
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    connected += 3;
  }
  for (let i = 0; i < clients && transport !== "http"; i++) {
    // Scraped back to back: every scrape renders for itself (no reuse under maxRenderPercent) and is read at once.
    const c = createClient({
      name: `host-${i}`, serverUrl: urls, registry, transport, logger: silentLogger, onConnected: () => void connected++,
      maxServerFramesPerSecond: 1_000_000, maxRenderPercent: 100, maxRegistryScrapesPerSecond: 1_000_000,
    });
    list.push(c);
    void c.start().catch(() => {});
  }
  const deadline = Date.now() + 60_000;
  while (connected < clients * 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 5_000));
  const after = await measure();
  if (snapshotDir) writeHeapSnapshot(`${snapshotDir}/host-after.heapsnapshot`);
  const cpu0 = process.cpuUsage();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const cpu = process.cpuUsage(cpu0);
  const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  const bodyBytes = (await registry.metrics()).length;
  const [first] = servers;
  const target = first
    ? { port: (first.address() as { port: number }).port, uri: "/metrics", n: scrapes }
    : { port: Number(new URL(urls[0] as string).port), uri: "http://host-0/metrics", n: scrapes };
  child.send({ ...target, n: 100 }); // warm-up
  await new Promise((r) => child.once("message", r));
  const cpu1 = process.cpuUsage();
  child.send(target);
  const { ok } = await new Promise<{ ok: number }>((r) => child.once("message", (m) => r(m as { ok: number })));
  const scrapeCpu = process.cpuUsage(cpu1);
  console.log(
    `transport ${transport}: ${clients} clients, ${connected} streams; per client RSS ${kib((after.rss - before.rss) / clients)}, ` +
      `JS heap ${kib((after.heap - before.heap) / clients)}; idle CPU ${(((cpu.user + cpu.system) / 1000 / clients) * (60 / seconds)).toFixed(2)} ms per client-minute; ` +
      `CPU per ${kib(bodyBytes)} scrape ${((scrapeCpu.user + scrapeCpu.system) / 1000 / Math.max(1, ok)).toFixed(3)} ms (${ok}/${scrapes} answered)`,
  );
  for (const c of list) await c.stop();
  for (const s of servers) s.close();
  child.disconnect();
}
