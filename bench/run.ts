/**
 * `npm run bench`: promproxy's relay cost against a direct scrape, on loopback.
 *
 * Processes (each a fresh Node, so that no two share an event loop):
 *   driver (this file)   sends the scrapes, the way Prometheus does with proxy_url
 *   server               src/server createServer + listen
 *   app                  embedded clients (src/client createClient) for registries of about
 *                        10 KB, 1 MB and 20 MB, the same registries served directly over
 *                        plain HTTP (renderRegistry, as the client renders), and relay B
 *   relay                relay A of the floor: driver -> relay A -> relay B -> direct endpoint
 *   fleet x2             50 embedded clients each, for the throughput run
 *
 * Every scrape is timed by the driver from request to the last body byte, over
 * keep-alive HTTP/1.1 connections (one per path, like Prometheus), proxied,
 * direct and floor interleaved so that drift hits all three alike.
 *
 * Flags:
 *   --quick             a short run (fewer samples, 3 s of throughput)
 *   --only=LIST         rows to run: 10k,1m,20m,throughput (default all); also 100m (a pre-rendered
 *                       100 MiB exposition: memory stays bounded by credit and GC, not by the body)
 *   --no-live           skip the live prom-client rows (cached rows only)
 *   --no-cached         skip the cached rows
 *   --gzip              send Accept-Encoding: gzip instead of identity
 *   --duration=S        seconds of the proxied throughput run (default 10)
 *   --concurrency=N     concurrent scrapers in the throughput run (default 16)
 *   --clients=N         connected clients in the throughput run (default 100, two fleets)
 *   --samples=N         samples per path and row, overriding the defaults
 *   --paths=LIST        paths to measure: proxy,direct,floor (default all; for profiling one path)
 *   --server-options=JSON  extra createServer options, e.g. '{"creditBytes":8388608}' (experiments)
 *   --node-args=ARGS    extra Node flags (space-separated) for the server and app processes, e.g. "--trace-gc"
 *   --server-node-args=ARGS  extra Node flags for our server process only (not the alt one)
 *   --cpu-prof=DIR      write CPU profiles of the server and app processes to DIR
 *   --heap-snapshot=DIR write a server heap snapshot after each latency row and the fleet connect
 *   --json=FILE         also write the results as JSON
 *   --alt=DIR           A/B: a second checkout (with this bench/ in it, e.g. a worktree with a proposal
 *                       applied) whose server and app run beside these; its proxied scrapes ("alt") are
 *                       interleaved with ours in every row, and throughput alternates between the two.
 *                       Its app also gets the direct scrapes ("alt direct"), so that both apps do the
 *                       same work (render garbage shapes GC); use --paths=proxy,direct for A/B rows
 *                       (the floor's relay B lives in our app only).
 */
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { startChild, type Child } from "./ipc.ts";
import type { CpuReading, RssReading } from "./meters.ts";
import { type SizeName } from "./registries.ts";
import { fmtBytes, fmtMs, median, quantile, table } from "./stats.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = new Map<string, string>();
for (const a of process.argv.slice(2)) {
  const m = /^--([^=]+)(?:=(.*))?$/.exec(a);
  if (!m) {
    console.error(`bench: unknown argument ${a}`);
    process.exit(2);
  }
  args.set(m[1] as string, m[2] ?? "true");
}
const quick = args.has("quick");
const only = new Set((args.get("only") ?? "10k,1m,20m,throughput").split(","));
const live = !args.has("no-live");
const cached = !args.has("no-cached");
const encoding = args.has("gzip") ? "gzip" : "identity";
const tpSeconds = Number(args.get("duration") ?? (quick ? 3 : 10));
const concurrency = Number(args.get("concurrency") ?? 16);
const fleetClients = Number(args.get("clients") ?? 100);
const cpuProfDir = args.get("cpu-prof");
const heapDir = args.get("heap-snapshot");
const samplesOverride = args.has("samples") ? Number(args.get("samples")) : undefined;
const paths = new Set((args.get("paths") ?? "proxy,direct,floor").split(","));
const altDir = args.get("alt") ? path.resolve(args.get("alt") as string) : undefined;
if (altDir) {
  for (const f of ["server-proc.ts", "app-proc.ts"]) {
    if (!fs.existsSync(path.join(altDir, "bench", f))) {
      console.error(`bench: --alt=${altDir} has no bench/${f}; copy this bench/ there first`);
      process.exit(2);
    }
  }
  paths.add("alt");
  if (paths.has("direct")) paths.add("altDirect");
}

/** What Prometheus 2.x sends (it prefers OpenMetrics). */
const PROM_ACCEPT = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/** Samples per path (warm-up, measured), full / quick. */
const plan: Record<SizeName, { live: [number, number]; cached: [number, number]; quick: [number, number] }> = {
  "10k": { live: [50, 500], cached: [50, 500], quick: [20, 100] },
  "1m": { live: [5, 60], cached: [5, 60], quick: [3, 15] },
  "20m": { live: [2, 12], cached: [2, 20], quick: [1, 5] },
  "100m": { live: [0, 0], cached: [1, 6], quick: [1, 2] },
};

// ---------------------------------------------------------------------------
// Scraping

type PathKind = "proxy" | "alt" | "direct" | "altDirect" | "floor";
const allKinds: PathKind[] = ["proxy", "alt", "direct", "altDirect", "floor"];

interface ScrapeResult {
  ms: number;
  bytes: number;
  status: number;
  hash?: string;
}

function agent(): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: 1, keepAliveMsecs: 1000 });
}

/** One GET, timed from request to the last body byte. */
function scrape(ag: http.Agent, port: number, requestPath: string, host: string, hash = false): Promise<ScrapeResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const h = hash ? createHash("sha256") : undefined;
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        path: requestPath,
        agent: ag,
        headers: {
          host,
          accept: PROM_ACCEPT,
          "accept-encoding": encoding,
          "user-agent": "Prometheus/2.53.0",
          "x-prometheus-scrape-timeout-seconds": "30",
        },
      },
      (res) => {
        let bytes = 0;
        res.on("data", (c: Buffer) => {
          bytes += c.length;
          h?.update(c);
        });
        res.on("end", () => {
          const ms = performance.now() - t0;
          const want = res.headers["content-length"];
          if (res.statusCode === 200 && want !== undefined && Number(want) !== bytes) {
            return reject(new Error(`short body: ${bytes} of ${want} bytes from ${host}${requestPath}`));
          }
          resolve({ ms, bytes, status: res.statusCode ?? 0, hash: h?.digest("hex") });
        });
        res.on("error", reject);
      },
    );
    req.setTimeout(60_000, () => req.destroy(new Error(`timeout scraping ${requestPath}`)));
    req.on("error", reject);
    req.end();
  });
}

interface Endpoints {
  serverPort: number;
  altServerPort?: number;
  altDirectPort?: number;
  directPort: number;
  floorPort: number;
}

function target(kind: PathKind, e: Endpoints, name: string): [port: number, path: string] {
  switch (kind) {
    case "proxy":
      return [e.serverPort, `http://${name}:80/metrics`];
    case "alt":
      return [e.altServerPort ?? 0, `http://${name}:80/metrics`];
    case "direct":
      return [e.directPort, "/metrics"];
    case "altDirect":
      return [e.altDirectPort ?? 0, "/metrics"];
    case "floor":
      return [e.floorPort, "/metrics"];
  }
}

// ---------------------------------------------------------------------------
// Latency rows

interface LatencyRow {
  row: string;
  size: SizeName;
  cached: boolean;
  bytes: number;
  samples: number;
  p50: Record<PathKind, number>;
  p99: Record<PathKind, number>;
  serverRss: RssReading;
  altServerRss?: RssReading;
  /** CPU and GC of the server (only proxied scrapes reach it) and of the app (every path), per proxied scrape. */
  cpu: { server: CpuReading; app: CpuReading; altServer?: CpuReading; altApp?: CpuReading; proxied: number; altProxied: number };
  errors: number;
}

interface RowProcs {
  server: Child;
  app: Child;
  altServer?: Child;
  altApp?: Child;
}

async function latencyRow(e: Endpoints, procs: RowProcs, size: SizeName, isCached: boolean): Promise<LatencyRow> {
  const { server, altServer } = procs;
  const name = isCached ? `app-${size}-cached` : `app-${size}`;
  const [warm, n0] = quick ? plan[size].quick : isCached ? plan[size].cached : plan[size].live;
  const n = samplesOverride ?? n0;
  const kinds = allKinds.filter((k) => paths.has(k) || k === "direct");
  const agents = { proxy: agent(), alt: agent(), direct: agent(), altDirect: agent(), floor: agent() };
  const host = `${name}:80`;
  const samples: Record<PathKind, number[]> = { proxy: [], alt: [], direct: [], altDirect: [], floor: [] };
  let errors = 0;

  await server.call("rssBegin");
  await altServer?.call("rssBegin");
  for (const c of Object.values(procs)) await c?.call("cpuBegin");
  let proxied = 0;
  let altProxied = 0;
  // The same bytes on every path (the gauges do not change between scrapes).
  const hashes = new Map<PathKind, ScrapeResult>();
  for (const k of kinds) hashes.set(k, await scrape(agents[k], ...target(k, e, name), host, true));
  const ref = hashes.get("direct") as ScrapeResult;
  for (const [k, r] of hashes) {
    if (r.status !== 200 || r.hash !== ref.hash) {
      console.error(`bench: ${name}: ${k} answered ${r.status} with ${r.bytes} bytes, differing from the direct scrape (${ref.bytes} bytes)`);
      errors++;
    }
  }
  const measured = kinds.filter((k) => paths.has(k));
  for (let i = 0; i < warm + n; i++) {
    for (let j = 0; j < measured.length; j++) {
      const k = measured[(i + j) % measured.length] as PathKind;
      try {
        if (k === "proxy") proxied++;
        if (k === "alt") altProxied++;
        const r = await scrape(agents[k], ...target(k, e, name), host);
        if (r.status !== 200) errors++;
        else if (i >= warm) samples[k].push(r.ms);
      } catch (err) {
        errors++;
        console.error(`bench: ${name} ${k}: ${(err as Error).message}`);
      }
    }
  }
  const cpu = {
    server: await server.call<CpuReading>("cpuEnd"),
    app: await procs.app.call<CpuReading>("cpuEnd"),
    altServer: await altServer?.call<CpuReading>("cpuEnd"),
    altApp: await procs.altApp?.call<CpuReading>("cpuEnd"),
    proxied,
    altProxied,
  };
  const serverRss = await server.call<RssReading>("rssEnd");
  const altServerRss = await altServer?.call<RssReading>("rssEnd");
  for (const a of Object.values(agents)) a.destroy();
  const p = (q: number) => Object.fromEntries(allKinds.map((k) => [k, quantile(samples[k], q)])) as Record<PathKind, number>;
  return { row: isCached ? `${size} cached` : `${size} live`, size, cached: isCached, bytes: ref.bytes, samples: n, p50: p(0.5), p99: p(0.99), serverRss, altServerRss, cpu, errors };
}

// ---------------------------------------------------------------------------
// Throughput

interface Throughput {
  label: string;
  seconds: number;
  scrapes: number;
  errors: number;
  p50: number;
  p99: number;
  /** CPU ms per scrape, by process group. */
  cpuPerScrape: Record<string, number>;
}

async function throughputRun(
  label: string,
  seconds: number,
  request: (i: number) => { port: number; path: string; host: string },
  meters: Record<string, Child[]>,
): Promise<Throughput> {
  const ag = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  // Warm up: every connection opened, every client scraped once.
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let k = 0; k < 4; k++) {
      const r = request(next++);
      await scrape(ag, r.port, r.path, r.host).catch(() => {});
    }
  }));
  for (const cs of Object.values(meters)) for (const c of cs) await c.call("cpuBegin");
  const driverCpu = process.cpuUsage();
  const latencies: number[] = [];
  let errors = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) {
      const r = request(next++);
      try {
        const s = await scrape(ag, r.port, r.path, r.host);
        if (s.status === 200) latencies.push(s.ms);
        else errors++;
      } catch {
        errors++;
      }
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  const cpuPerScrape: Record<string, number> = {};
  const n = Math.max(1, latencies.length);
  for (const [group, cs] of Object.entries(meters)) {
    let ms = 0;
    for (const c of cs) ms += (await c.call<CpuReading>("cpuEnd")).cpuMs;
    cpuPerScrape[group] = ms / n;
  }
  const d = process.cpuUsage(driverCpu);
  cpuPerScrape["driver"] = (d.user + d.system) / 1000 / n;
  ag.destroy();
  return { label, seconds: wall, scrapes: latencies.length, errors, p50: median(latencies), p99: quantile(latencies, 0.99), cpuPerScrape };
}

/** Slices of one kind of run as one: totals, CPU per scrape weighted by scrapes, the slowest quantiles. */
function mergeThroughput(ts: Throughput[]): Throughput {
  if (ts.length === 1) return ts[0] as Throughput;
  const scrapes = ts.reduce((a, t) => a + t.scrapes, 0);
  const cpu: Record<string, number> = {};
  for (const t of ts) for (const [k, v] of Object.entries(t.cpuPerScrape)) cpu[k] = (cpu[k] ?? 0) + (v * t.scrapes) / Math.max(1, scrapes);
  return {
    label: (ts[0] as Throughput).label,
    seconds: ts.reduce((a, t) => a + t.seconds, 0),
    scrapes,
    errors: ts.reduce((a, t) => a + t.errors, 0),
    p50: median(ts.map((t) => t.p50)),
    p99: Math.max(...ts.map((t) => t.p99)),
    cpuPerScrape: cpu,
  };
}

// ---------------------------------------------------------------------------

function execArgvFor(name: string): string[] {
  const a = ["--expose-gc", ...(args.get("node-args") ?? "").split(" ").filter(Boolean)];
  if (name === "server") a.push(...(args.get("server-node-args") ?? "").split(" ").filter(Boolean));
  if (cpuProfDir) a.push("--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`, `--cpu-prof-name=${name}.cpuprofile`);
  return a;
}

/** "CPU ms (GC ms)" per scrape. */
function perScrape(c: CpuReading | undefined, n: number): string {
  if (!c || n === 0) return "-";
  return `${(c.cpuMs / n).toFixed(2)} (${(c.gcMs / n).toFixed(2)})`;
}

function ratio(a: number, b: number): string {
  const r = a / b;
  return Number.isFinite(r) ? r.toFixed(2) : "-";
}

function gitHead(): string {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: here, encoding: "utf8" }).trim();
  } catch {
    return "?";
  }
}

async function main() {
  const started = performance.now();
  if (cpuProfDir) fs.mkdirSync(cpuProfDir, { recursive: true });
  if (heapDir) fs.mkdirSync(heapDir, { recursive: true });
  const sizes = (["10k", "1m", "20m", "100m"] as SizeName[]).filter((s) => only.has(s));
  const children: Child[] = [];
  const results: { latency: LatencyRow[]; throughput: Throughput[]; idle?: { clients: number; rssPerClient: number } } = { latency: [], throughput: [] };
  console.log(
    `promproxy bench @ ${gitHead()}, node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}), ` +
      `Accept-Encoding: ${encoding}${quick ? ", --quick" : ""}`,
  );
  try {
    const server = await startChild<{ port: number }>(path.join(here, "server-proc.ts"), [args.get("server-options") ?? "{}"], execArgvFor("server"));
    children.push(server);
    const altServer = altDir
      ? await startChild<{ port: number }>(path.join(altDir, "bench", "server-proc.ts"), [args.get("server-options") ?? "{}"], execArgvFor("alt-server"))
      : undefined;
    if (altServer) children.push(altServer);
    if (sizes.length > 0) {
      process.stdout.write(`building registries (${sizes.join(", ")}) and connecting clients... `);
      const app = await startChild<{ directPort: number; relayPort: number }>(
        path.join(here, "app-proc.ts"),
        [JSON.stringify({ serverPort: server.info.port, accept: PROM_ACCEPT, role: "latency", sizes })],
        execArgvFor("app"),
      );
      children.push(app);
      // The alt app serves the same registries through the alt checkout's client.
      const altApp = altDir && altServer
        ? await startChild<{ directPort: number }>(
            path.join(altDir, "bench", "app-proc.ts"),
            [JSON.stringify({ serverPort: altServer.info.port, accept: PROM_ACCEPT, role: "latency", sizes })],
            execArgvFor("alt-app"),
          )
        : undefined;
      if (altApp) children.push(altApp);
      const relay = await startChild<{ port: number }>(path.join(here, "relay-proc.ts"), [String(app.info.relayPort)], ["--expose-gc"]);
      children.push(relay);
      console.log("done");
      const e: Endpoints = {
        serverPort: server.info.port,
        altServerPort: altServer?.info.port,
        directPort: app.info.directPort,
        altDirectPort: altApp?.info.directPort,
        floorPort: relay.info.port,
      };
      for (const size of sizes) {
        for (const isCached of [false, true]) {
          if ((isCached && !cached) || (!isCached && (!live || size === "100m"))) continue;
          const r = await latencyRow(e, { server, app, altServer, altApp }, size, isCached);
          results.latency.push(r);
          console.log(
            `  ${r.row.padEnd(10)} ${fmtBytes(r.bytes).padStart(9)}  n=${r.samples}  proxy p50 ${fmtMs(r.p50.proxy)} ms, direct ${fmtMs(r.p50.direct)} ms, ` +
              `floor ${fmtMs(r.p50.floor)} ms, ratio ${ratio(r.p50.proxy, r.p50.direct)}` +
              `, server CPU ${perScrape(r.cpu.server, r.cpu.proxied)}` +
              (altDir ? `; alt p50 ${fmtMs(r.p50.alt)} ms, alt/proxy ${ratio(r.p50.alt, r.p50.proxy)}, alt server CPU ${perScrape(r.cpu.altServer, r.cpu.altProxied)}` : "") +
              (r.errors ? `, ${r.errors} ERRORS` : ""),
          );
          if (heapDir) await server.call("heapSnapshot", path.join(heapDir, `server-after-${r.row.replace(" ", "-")}.heapsnapshot`));
        }
      }
    }

    if (only.has("throughput")) {
      process.stdout.write(`connecting ${fleetClients} clients in 2 fleet processes... `);
      const rssBefore = await server.call<number>("rssNow");
      const half = Math.ceil(fleetClients / 2);
      type Fleet = Child<{ directPort: number; relayPort: number; names: string[] }>;
      const startFleets = async (dir: string, serverPort: number, tag: string) => {
        const fs: Fleet[] = [];
        for (const [i, count] of [half, fleetClients - half].entries()) {
          if (count <= 0) continue;
          const f = await startChild<{ directPort: number; relayPort: number; names: string[] }>(
            path.join(dir, "app-proc.ts"),
            [JSON.stringify({ serverPort, accept: PROM_ACCEPT, role: "fleet", count, prefix: `fleet-${i}` })],
            execArgvFor(`${tag}fleet-${i}`),
          );
          children.push(f);
          fs.push(f);
        }
        return fs;
      };
      const fleets = await startFleets(here, server.info.port, "");
      const rssAfter = await server.call<number>("rssNow");
      const altFleets = altDir && altServer ? await startFleets(path.join(altDir, "bench"), altServer.info.port, "alt-") : [];
      results.idle = { clients: fleetClients, rssPerClient: (rssAfter - rssBefore) / fleetClients };
      console.log(`done (server RSS +${fmtBytes(rssAfter - rssBefore)}, ${fmtBytes(results.idle.rssPerClient)} per idle client)`);
      if (heapDir) await server.call("heapSnapshot", path.join(heapDir, "server-fleet-connected.heapsnapshot"));
      const names = fleets.flatMap((f) => f.info.names.map((n) => ({ name: n, fleet: f })));
      const floorRelays: Child<{ port: number }>[] = [];
      for (const f of fleets) {
        const r = await startChild<{ port: number }>(path.join(here, "relay-proc.ts"), [String(f.info.relayPort)], ["--expose-gc"]);
        children.push(r);
        floorRelays.push(r);
      }

      if (paths.has("proxy")) {
        // With --alt, the two alternate in four slices of half the duration each, so that drift hits both.
        const slices: ["proxied" | "alt", Child<{ port: number }>, Fleet[]][] = altServer
          ? [["proxied", server, fleets], ["alt", altServer, altFleets], ["alt", altServer, altFleets], ["proxied", server, fleets]]
          : [["proxied", server, fleets]];
        const parts = new Map<string, Throughput[]>();
        for (const [label, srv, fl] of slices) {
          const t = await throughputRun(
            label,
            altServer ? tpSeconds / 2 : tpSeconds,
            (i) => {
              const n = names[i % names.length] as (typeof names)[number];
              return { port: srv.info.port, path: `http://${n.name}:80/metrics`, host: `${n.name}:80` };
            },
            { server: [srv], apps: fl },
          );
          parts.set(label, [...(parts.get(label) ?? []), t]);
        }
        for (const ts of parts.values()) {
          const tp = mergeThroughput(ts);
          results.throughput.push(tp);
          console.log(`  ${tp.label}: ${(tp.scrapes / tp.seconds).toFixed(0)} scrapes/s, server ${tp.cpuPerScrape["server"]?.toFixed(3)} ms CPU per scrape`);
        }
      }
      const shortSeconds = Math.max(2, Math.round(tpSeconds / 2));
      if (paths.has("direct")) {
        const td = await throughputRun(
          "direct",
          shortSeconds,
          (i) => {
            const f = fleets[i % fleets.length] as (typeof fleets)[number];
            return { port: f.info.directPort, path: "/metrics", host: `${f.info.names[0]}:80` };
          },
          { apps: fleets },
        );
        results.throughput.push(td);
      }
      if (paths.has("floor")) {
        const tf = await throughputRun(
          "floor (2 TCP relays)",
          shortSeconds,
          (i) => {
            const k = i % fleets.length;
            return { port: (floorRelays[k] as Child<{ port: number }>).info.port, path: "/metrics", host: `${(fleets[k] as (typeof fleets)[number]).info.names[0]}:80` };
          },
          { relays: floorRelays, apps: fleets },
        );
        results.throughput.push(tf);
      }
    }
  } finally {
    await Promise.all(children.reverse().map((c) => c.stop().catch(() => {})));
  }

  // -------------------------------------------------------------------------
  console.log("");
  if (results.latency.length > 0) {
    console.log(
      `Latency: sequential scrapes, keep-alive HTTP/1.1 (one connection per path), proxied/direct/floor${altDir ? "/alt" : ""} interleaved, ` +
        `Accept-Encoding: ${encoding}. "live" = prom-client renders each scrape; "cached" = one pre-rendered exposition ` +
        `(each scrape still encodes it to a Buffer), isolating the relay. Floor = driver -> TCP relay -> TCP relay -> direct endpoint.`,
    );
    const altHead = altDir ? ["alt p50", "alt p99", "alt direct p50", "alt/alt direct", "alt/proxy", "alt server RSS growth", "alt server CPU ms (GC)"] : [];
    console.log(
      table(
        ["row", "body", "n", "proxy p50", "proxy p99", "direct p50", "direct p99", "floor p50", "proxy/direct p50", "floor/direct", "proxy/floor", "server peak RSS growth", "server CPU ms (GC)", ...altHead],
        results.latency.map((r) => [
          r.row,
          fmtBytes(r.bytes),
          String(r.samples) + (r.errors ? ` (${r.errors} err)` : ""),
          fmtMs(r.p50.proxy) + " ms",
          fmtMs(r.p99.proxy) + " ms",
          fmtMs(r.p50.direct) + " ms",
          fmtMs(r.p99.direct) + " ms",
          fmtMs(r.p50.floor) + " ms",
          ratio(r.p50.proxy, r.p50.direct),
          ratio(r.p50.floor, r.p50.direct),
          ratio(r.p50.proxy, r.p50.floor),
          fmtBytes(r.serverRss.peak - r.serverRss.baseline),
          perScrape(r.cpu.server, r.cpu.proxied),
          ...(altDir
            ? [
                fmtMs(r.p50.alt) + " ms",
                fmtMs(r.p99.alt) + " ms",
                fmtMs(r.p50.altDirect) + " ms",
                ratio(r.p50.alt, r.p50.altDirect),
                ratio(r.p50.alt, r.p50.proxy),
                r.altServerRss ? fmtBytes(r.altServerRss.peak - r.altServerRss.baseline) : "-",
                perScrape(r.cpu.altServer, r.cpu.altProxied),
              ]
            : []),
        ]),
      ),
    );
    if (altDir) console.log(`alt = the same scrapes through the server and client of ${altDir}, interleaved with the others.`);
    console.log(`Server CPU ms (GC ms): the server's CPU time (all threads) and main-thread GC pauses per proxied scrape, warm-up included.`);
    console.log(`Server peak RSS growth: peak RSS during the row (${results.latency[0]?.serverRss.method === "VmHWM" ? "kernel VmHWM, reset at the row's start" : "sampled every 5 ms"}) minus RSS after GC at its start.`);
    console.log("Goals (issue 2): proxy/direct p50 <= 1.5 at 10 KB, <= 1.1 at 1 MB and 20 MB; server RSS growth well under the body.");
    console.log("");
  }
  if (results.throughput.length > 0) {
    console.log(
      `Throughput at 10 KB: ${concurrency} concurrent scrapers (keep-alive), round-robin over ${fleetClients} connected clients ` +
        `in 2 app processes; CPU is process.cpuUsage per successful scrape.`,
    );
    const groups = ["server", "relays", "apps", "driver"];
    console.log(
      table(
        ["path", "seconds", "scrapes/s", "errors", "p50", "p99", ...groups.map((g) => `${g} CPU ms/scrape`)],
        results.throughput.map((t) => [
          t.label,
          t.seconds.toFixed(1),
          (t.scrapes / t.seconds).toFixed(0),
          String(t.errors),
          fmtMs(t.p50) + " ms",
          fmtMs(t.p99) + " ms",
          ...groups.map((g) => (t.cpuPerScrape[g] === undefined ? "-" : (t.cpuPerScrape[g] as number).toFixed(3))),
        ]),
      ),
    );
    if (results.idle) console.log(`Idle: server RSS ${fmtBytes(results.idle.rssPerClient)} per connected client (${results.idle.clients} clients, after GC).`);
    console.log("Goal (issue 2): >= 3x PushProx, i.e. >= 2100 scrapes/s; PushProx spends 0.6-0.9 ms of proxy CPU per scrape.");
  }
  console.log(`bench took ${((performance.now() - started) / 1000).toFixed(0)} s${cpuProfDir ? `; CPU profiles in ${cpuProfDir}` : ""}`);
  const jsonOut = args.get("json");
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ head: gitHead(), encoding, quick, alt: altDir, ...results }, null, 2));
}

await main();
