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
 * Sections: embedded (the rows above), forwarder (forwarder.ts: a static exporter scraped direct,
 * through the floor and through the server + a `promproxy client` process), idle and storm (idle.ts,
 * opt-in: they take minutes). The end prints the goals of issue 11, one verdict line each.
 *
 * Flags:
 *   --quick             a short run (fewer samples, 3 s of throughput)
 *   --only=LIST         sections and rows to run: 10k,1m,20m,100m,throughput (embedded), forwarder,
 *                       idle, storm. Default: 10k,1m,20m,100m,throughput,forwarder. 100m is a pre-rendered
 *                       100 MiB exposition (memory stays bounded by credit and GC, not by the body).
 *                       "embedded" stands for 10k,1m,20m,100m,throughput; "all" for everything.
 *   --clients=LIST      idle: connected clients to measure, e.g. 1000,5000,10000 (the default)
 *   --storm-clients=N   storm: clients connected when the server is killed (default 10000)
 *   --idle-seconds=S    idle: the CPU window with only heartbeats (default 30)
 *   --per-process=N     idle/storm: clients per load process (default 2500)
 *   --fwd-duration=S    forwarder: seconds of the concurrent 10 KB run (default 5; 2 with --quick)
 *   --fwd-concurrency=N forwarder: concurrent scrapers in that run (default 8)
 *   --fwd-sizes=LIST    forwarder: bodies to measure (default 10k,1m,20m; e.g. 10k alone for profiling)
 *   --pushprox=DIR      forwarder: also measure a locally built PushProx (DIR/pushprox-proxy and
 *                       DIR/pushprox-client; built by hand, never part of this repository)
 *   --fleet-clients=N   embedded throughput: connected clients (default 100, two fleets)
 *   --no-live           skip the live prom-client rows (cached rows only)
 *   --no-cached         skip the cached rows
 *   --gzip              send Accept-Encoding: gzip instead of identity
 *   --duration=S        seconds of the proxied throughput run (default 10)
 *   --concurrency=N     concurrent scrapers in the throughput run (default 16)
 *   --samples=N         samples per path and row, overriding the defaults
 *   --paths=LIST        paths to measure: proxy,direct,floor (default all; for profiling one path)
 *   --server-options=JSON  extra createServer options, e.g. '{"creditBytes":8388608}' (experiments)
 *   --node-args=ARGS    extra Node flags (space-separated) for the server and app processes, e.g. "--trace-gc"
 *   --server-node-args=ARGS  extra Node flags for our server process only (not the alt one)
 *   --cpu-prof=DIR      write CPU profiles of the server and app processes to DIR (forwarder section:
 *                       fwd-server.cpuprofile and forwarder.cpuprofile)
 *   --heap-snapshot=DIR write a server heap snapshot after each latency row and the fleet connect
 *                       (idle section: server-idle-N.heapsnapshot once the N clients have settled)
 *   --json=FILE         also write the results as JSON
 *   --alt=DIR           A/B: a second checkout (with this bench/ in it, e.g. a worktree with a proposal
 *                       applied) whose server and app run beside these; its proxied scrapes ("alt") are
 *                       interleaved with ours in every row, and throughput alternates between the two.
 *                       Its app also gets the direct scrapes ("alt direct"), so that both apps do the
 *                       same work (render garbage shapes GC); use --paths=proxy,direct for A/B rows
 *                       (the floor's relay B lives in our app only).
 */
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
import { forwarderSection, type ForwarderResults } from "./forwarder.ts";
import { fdLimits, idleSection, stormSection, type IdleResult, type StormResult } from "./idle.ts";
import { agent, PROM_ACCEPT, scrape as scrapeOnce, type ScrapeResult } from "./scrape.ts";
import type { StaticSize } from "./static-target.ts";

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
const onlyList = (args.get("only") ?? "10k,1m,20m,100m,throughput,forwarder").split(",").flatMap((x) =>
  x === "embedded" ? ["10k", "1m", "20m", "100m", "throughput"] : x === "all" ? ["10k", "1m", "20m", "100m", "throughput", "forwarder", "idle", "storm"] : [x],
);
const only = new Set(onlyList);
const live = !args.has("no-live");
const cached = !args.has("no-cached");
const encoding = args.has("gzip") ? "gzip" : "identity";
const tpSeconds = Number(args.get("duration") ?? (quick ? 3 : 10));
const concurrency = Number(args.get("concurrency") ?? 16);
const fleetClients = Number(args.get("fleet-clients") ?? 100);
const idleCounts = (args.get("clients") ?? "1000,5000,10000").split(",").map(Number);
const stormClients = Number(args.get("storm-clients") ?? 10_000);
const idleSeconds = Number(args.get("idle-seconds") ?? 30);
const perProcess = Number(args.get("per-process") ?? 2500);
const fwdSeconds = Number(args.get("fwd-duration") ?? (quick ? 2 : 5));
const fwdConcurrency = Number(args.get("fwd-concurrency") ?? 8);
const fwdSizes = (args.get("fwd-sizes") ?? "10k,1m,20m").split(",") as StaticSize[];
const pushproxDir = args.get("pushprox") ? path.resolve(args.get("pushprox") as string) : undefined;
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

/** One GET with this run's Accept-Encoding, timed from request to the last body byte. */
function scrape(ag: http.Agent, port: number, requestPath: string, host: string, hash = false): Promise<ScrapeResult> {
  return scrapeOnce(ag, port, requestPath, host, { hash, encoding });
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

// ---------------------------------------------------------------------------
// Forwarder, idle and storm tables; the goals of issue 11

function printForwarder(f: ForwarderResults | undefined) {
  if (!f) return;
  const hasPP = f.rows.some((r) => r.p50.pushprox !== undefined);
  console.log(
    `Forwarder: a static exporter (own process, fixed bodies) scraped sequentially, paths interleaved, keep-alive HTTP/1.1, ` +
      `Accept-Encoding: ${encoding}. proxy = driver -> server -> stream -> \`promproxy client\` process -> target; ` +
      `floor = driver -> TCP relay -> TCP relay -> target (each relay its own process)${hasPP ? "; pushprox = PushProx proxy + client, same target" : ""}. ` +
      `CPU from /proc/PID/stat (10 ms ticks): server and forwarder per proxied scrape, both relays together per floor scrape.`,
  );
  const ppHead = hasPP ? ["pushprox p50", "pushprox p99", "pushprox/floor", "pushprox CPU ms"] : [];
  console.log(
    table(
      ["body", "n", "proxy p50", "proxy p99", "direct p50", "direct p99", "floor p50", "floor p99", "proxy/direct", "floor/direct", "proxy/floor", "server CPU ms", "forwarder CPU ms", "relays CPU ms", "server peak RSS growth", ...ppHead],
      f.rows.map((r) => [
        `${r.size} (${fmtBytes(r.bytes)})`,
        String(r.samples) + (r.errors ? ` (${r.errors} err)` : ""),
        fmtMs(r.p50.proxy ?? NaN) + " ms",
        fmtMs(r.p99.proxy ?? NaN) + " ms",
        fmtMs(r.p50.direct ?? NaN) + " ms",
        fmtMs(r.p99.direct ?? NaN) + " ms",
        fmtMs(r.p50.floor ?? NaN) + " ms",
        fmtMs(r.p99.floor ?? NaN) + " ms",
        ratio(r.p50.proxy ?? NaN, r.p50.direct ?? NaN),
        ratio(r.p50.floor ?? NaN, r.p50.direct ?? NaN),
        ratio(r.p50.proxy ?? NaN, r.p50.floor ?? NaN),
        (r.cpuPerScrape["server"] ?? NaN).toFixed(2),
        (r.cpuPerScrape["forwarder"] ?? NaN).toFixed(2),
        (r.cpuPerScrape["relays"] ?? NaN).toFixed(2),
        fmtBytes(r.serverRss.peak - r.serverRss.baseline),
        ...(hasPP
          ? [fmtMs(r.p50.pushprox ?? NaN) + " ms", fmtMs(r.p99.pushprox ?? NaN) + " ms", ratio(r.p50.pushprox ?? NaN, r.p50.floor ?? NaN), (r.cpuPerScrape["pushprox"] ?? NaN).toFixed(2)]
          : []),
      ]),
    ),
  );
  if (f.throughput.length > 0) {
    const groups = ["server", "forwarder", "relays", "pushprox", "pushprox client"].filter((g) => f.throughput.some((t) => t.cpuPerScrape[g] !== undefined));
    console.log(`Forwarder at 10 KB, ${f.throughput[0]?.concurrency} concurrent scrapers (keep-alive) through one forwarder; CPU ms per successful scrape (/proc/PID/stat).`);
    console.log(
      table(
        ["path", "seconds", "scrapes/s", "errors", "p50", "p99", ...groups.map((g) => `${g} CPU ms/scrape`)],
        f.throughput.map((t) => [
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
  }
  console.log("");
}

function printIdle(idle: IdleResult[] | undefined, storm: StormResult | undefined) {
  if (idle && idle.length > 0) {
    console.log(
      `Idle clients: real clients (createClient, one HTTP/2 connection and one Scrape stream each) in load processes of up to ${perProcess}; ` +
        `server RSS and JS heap after GC, before and after they connected and settled (5 s); CPU over a window with heartbeats only (default intervals).`,
    );
    console.log(
      table(
        ["clients", "connected", "connect s", "server RSS before", "server RSS after", "RSS per client", "JS heap per client", "idle server CPU", "window s", "reconnects in window", "load procs CPU", "load RSS per client"],
        idle.map((r) => [
          String(r.clients),
          String(r.connected),
          r.connectSeconds.toFixed(1),
          fmtBytes(r.before.rss),
          fmtBytes(r.after.rss),
          fmtBytes(r.rssPerClient),
          fmtBytes(r.heapPerClient),
          r.serverCpuPercent.toFixed(2) + " %",
          r.cpuWindowSeconds.toFixed(0),
          String(r.reconnects ?? "-"),
          r.loadCpuPercent.toFixed(1) + " %",
          fmtBytes(r.loadRssPerClient),
        ]),
      ),
    );
  }
  if (storm) {
    console.log(`Reconnect storm: ${storm.clients} clients connected, server SIGKILLed and a new one started on the same port at once; clients use the default backoff (500 ms doubling to 30 s, half random).`);
    console.log(
      table(
        ["clients", "back", "all back (from kill)", "from new listen", "50%", "90%", "99%", "new server peak RSS", "settled RSS", "server CPU ms"],
        [[
          String(storm.clients),
          String(storm.back),
          Number.isFinite(storm.allBackSeconds) ? storm.allBackSeconds.toFixed(1) + " s" : "NOT ALL",
          Number.isFinite(storm.fromListenSeconds) ? storm.fromListenSeconds.toFixed(1) + " s" : "-",
          storm.quantiles.q50.toFixed(1) + " s",
          storm.quantiles.q90.toFixed(1) + " s",
          storm.quantiles.q99.toFixed(1) + " s",
          fmtBytes(storm.peakRss),
          fmtBytes(storm.settledRss),
          storm.serverCpuMs.toFixed(0),
        ]],
      ),
    );
  }
  if ((idle && idle.length > 0) || storm) console.log("");
}

function printVerdicts(r: {
  latency: LatencyRow[];
  throughput: Throughput[];
  idle?: { clients: number; rssPerClient: number };
  forwarder?: ForwarderResults;
  idleClients?: IdleResult[];
  storm?: StormResult;
}) {
  const lines: string[] = [];
  const verdict = (goal: string, ok: boolean | undefined, detail: string) =>
    lines.push(`${ok === undefined ? "n/a " : ok ? "MET " : "MISS"}  ${goal}: ${detail}`);
  const fw = r.forwarder;
  const fwRatios = (fw?.rows ?? []).map((x) => [x.size, (x.p50.proxy ?? NaN) / (x.p50.floor ?? NaN)] as const);
  verdict(
    "forwarder p50/floor <= 1.5 at 10 KB, 1 MB, 20 MB",
    fwRatios.length === 3 && fwRatios.every(([, v]) => Number.isFinite(v)) ? fwRatios.every(([, v]) => v <= 1.5) : undefined,
    fwRatios.length ? fwRatios.map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ") : "not run (--only=forwarder)",
  );
  const fwTp = fw?.throughput.find((t) => t.label === "proxy");
  const sCpu = fwTp?.cpuPerScrape["server"];
  verdict("server CPU per 10 KB scrape (one forwarder, 8 concurrent) <= 0.12 ms", sCpu === undefined ? undefined : sCpu <= 0.12, sCpu === undefined ? "not run" : `${sCpu.toFixed(3)} ms (x${fwTp?.concurrency})`);
  const fCpu = fwTp?.cpuPerScrape["forwarder"];
  const fSeq = fw?.rows.find((x) => x.size === "10k")?.cpuPerScrape["forwarder"];
  verdict(
    "forwarder client CPU per 10 KB scrape <= 0.20 ms",
    fCpu === undefined ? undefined : fCpu <= 0.2,
    fCpu === undefined ? "not run" : `${fCpu.toFixed(3)} ms (x${fwTp?.concurrency}); sequential ${fSeq?.toFixed(2) ?? "-"} ms`,
  );
  const e10 = r.latency.find((x) => x.row === "10k live");
  verdict(
    "embedded p50/direct registry at 10 KB <= 1.5",
    e10 ? e10.p50.proxy / e10.p50.direct <= 1.5 : undefined,
    e10 ? `${ratio(e10.p50.proxy, e10.p50.direct)} (live; cached ${ratio(r.latency.find((x) => x.row === "10k cached")?.p50.proxy ?? NaN, r.latency.find((x) => x.row === "10k cached")?.p50.direct ?? NaN)})` : "not run (--only=10k)",
  );
  const cachedRows = r.latency.filter((x) => x.cached && x.size !== "100m");
  const relay = cachedRows.map((x) => [x.size, x.p50.proxy / x.p50.floor] as const);
  verdict(
    "relay cost alone (cached rows) proxy/floor <= 1.3",
    relay.length && relay.every(([, v]) => Number.isFinite(v)) ? relay.every(([, v]) => v <= 1.3) : undefined,
    relay.length ? relay.map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ") : "not run",
  );
  const idle = r.idleClients ?? [];
  if (idle.length > 0) {
    const worst = Math.max(...idle.map((x) => x.rssPerClient));
    verdict("server RSS per idle client <= 20 KiB", worst <= 20 * 1024, idle.map((x) => `${x.clients}: ${fmtBytes(x.rssPerClient)}`).join(", "));
  } else {
    verdict("server RSS per idle client <= 20 KiB", undefined, r.idle ? `not run (--only=idle); the throughput fleet gave ${fmtBytes(r.idle.rssPerClient)} at ${r.idle.clients} clients` : "not run (--only=idle)");
  }
  const big = r.latency.find((x) => x.size === "100m");
  const growth = big ? big.serverRss.peak - big.serverRss.baseline : NaN;
  verdict("peak RSS growth for one ~100 MB scrape <= 16 MiB", big ? growth <= 16 * 1024 * 1024 : undefined, big ? `${fmtBytes(growth)} (server, 100 MiB cached row)` : "not run (--only=100m)");
  const st = r.storm;
  verdict(
    "reconnect storm: all clients back <= 30 s",
    st ? Number.isFinite(st.allBackSeconds) && st.allBackSeconds <= 30 && st.back >= st.clients : undefined,
    st ? `${st.back}/${st.clients} back, ${Number.isFinite(st.allBackSeconds) ? st.allBackSeconds.toFixed(1) + " s" : "not all"} from the kill; peak RSS ${fmtBytes(st.peakRss)}` : "not run (--only=storm)",
  );
  console.log("Goals (issue 11), each against figures of this run:");
  for (const l of lines) console.log("  " + l);
}

async function main() {
  const started = performance.now();
  if (cpuProfDir) fs.mkdirSync(cpuProfDir, { recursive: true });
  if (heapDir) fs.mkdirSync(heapDir, { recursive: true });
  const sizes = (["10k", "1m", "20m", "100m"] as SizeName[]).filter((s) => only.has(s));
  const children: Child[] = [];
  const results: {
    latency: LatencyRow[];
    throughput: Throughput[];
    idle?: { clients: number; rssPerClient: number };
    forwarder?: ForwarderResults;
    idleClients?: IdleResult[];
    storm?: StormResult;
  } = { latency: [], throughput: [] };
  const embedded = sizes.length > 0 || only.has("throughput");
  console.log(
    `promproxy bench @ ${gitHead()}, node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}), ` +
      `Accept-Encoding: ${encoding}${quick ? ", --quick" : ""}`,
  );
  try {
    if (!embedded) throw "skip";
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
  } catch (e) {
    if (e !== "skip") throw e;
  } finally {
    await Promise.all(children.splice(0).reverse().map((c) => c.stop().catch(() => {})));
  }

  const log = (line: string) => console.log(line);
  if (only.has("forwarder")) {
    console.log(`forwarder section: static target, floor (2 TCP relays), server + promproxy client process${pushproxDir ? ", PushProx" : ""}`);
    const plan: Record<StaticSize, [number, number]> = quick
      ? { "10k": [20, 100], "1m": [3, 15], "20m": [1, 5] }
      : { "10k": [50, 500], "1m": [5, 60], "20m": [2, 20] };
    if (samplesOverride) for (const k of Object.keys(plan) as StaticSize[]) plan[k] = [plan[k][0], samplesOverride];
    try {
      results.forwarder = await forwarderSection({
        sizes: fwdSizes,
        plan,
        encoding,
        tpSeconds: fwdSeconds,
        tpConcurrency: fwdConcurrency,
        serverOptions: args.get("server-options") ?? "{}",
        execArgvFor,
        forwarderNodeArgs: cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`, "--cpu-prof-name=forwarder.cpuprofile"] : [],
        paths: new Set([...paths, ...(pushproxDir ? ["pushprox"] : [])]),
        pushprox: pushproxDir ? { proxy: path.join(pushproxDir, "pushprox-proxy"), client: path.join(pushproxDir, "pushprox-client") } : undefined,
        altDir,
        children,
        log,
      });
    } finally {
      await Promise.all(children.splice(0).reverse().map((c) => c.stop().catch(() => {})));
    }
  }
  if (only.has("idle") || only.has("storm")) console.log(`idle/storm: open files ${fdLimits()} (each client holds one socket in the server and one in its load process)`);
  const idleCfg = {
    counts: idleCounts,
    cpuSeconds: idleSeconds,
    perProcess,
    serverOptions: JSON.parse(args.get("server-options") ?? "{}") as Record<string, unknown>,
    execArgvFor,
    heapSnapshotDir: heapDir,
    children,
    log,
  };
  if (only.has("idle")) {
    try {
      results.idleClients = await idleSection(idleCfg);
    } finally {
      await Promise.all(children.splice(0).reverse().map((c) => c.stop(30_000).catch(() => {})));
    }
  }
  if (only.has("storm")) {
    try {
      results.storm = await stormSection(idleCfg, stormClients);
    } finally {
      await Promise.all(children.splice(0).reverse().map((c) => c.stop(30_000).catch(() => {})));
    }
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
  }
  printForwarder(results.forwarder);
  printIdle(results.idleClients, results.storm);
  printVerdicts(results);
  console.log(`bench took ${((performance.now() - started) / 1000).toFixed(0)} s${cpuProfDir ? `; CPU profiles in ${cpuProfDir}` : ""}`);
  const jsonOut = args.get("json");
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ head: gitHead(), encoding, quick, alt: altDir, ...results }, null, 2));
}

await main();
