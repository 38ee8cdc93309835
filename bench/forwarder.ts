/**
 * The forwarder section of `npm run bench`: one static exporter (static-target.ts, its own process)
 * scraped three ways, interleaved: direct; through the floor (driver -> relay A -> relay B -> target,
 * two raw TCP relays in their own processes); and through the promproxy server with a real
 * `promproxy client` forwarder process (src/cli/main.ts client --target URL). Then 8 concurrent
 * scrapers at 10 KB through one forwarder. CPU per scrape comes from /proc/PID/stat of each process.
 */
import type { ChildProcess } from "node:child_process";
import * as http from "node:http";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { ThroughputRow } from "./format.ts";
import { name, startForwarder, startPushProx, stopProc } from "./forwarder-procs.ts";
import { startChild, type Child } from "./ipc.ts";
import type { RssReading } from "./meters.ts";
import { cpuDelta, procCpuMs } from "./proc.ts";
import { agent, scrape } from "./scrape.ts";
import type { StaticSize } from "./static-target.ts";
import { median, quantile } from "./stats.ts";

const here = path.dirname(fileURLToPath(import.meta.url));

export type FwdPath = "proxy" | "alt" | "direct" | "floor" | "pushprox";

export interface ForwarderRow {
  size: StaticSize;
  bytes: number;
  samples: number;
  p50: Partial<Record<FwdPath, number>>;
  p99: Partial<Record<FwdPath, number>>;
  /** CPU ms per scrape of the path the process serves: server and forwarder per proxied scrape, relays per floor scrape. */
  cpuPerScrape: Record<string, number>;
  serverRss: RssReading;
  errors: number;
}

export interface ForwarderThroughput extends ThroughputRow {
  /** Scrapers at once. */
  concurrency: number;
}

export interface ForwarderResults {
  rows: ForwarderRow[];
  throughput: ForwarderThroughput[];
}

export interface ForwarderConfig {
  sizes: StaticSize[];
  /** [warm-up, measured] samples per path by size. */
  plan: Record<StaticSize, [number, number]>;
  encoding: string;
  tpSeconds: number;
  tpConcurrency: number;
  serverOptions: string;
  execArgvFor(name: string): string[];
  /** Extra Node flags for the forwarder process (e.g. --cpu-prof). */
  forwarderNodeArgs: string[];
  /** When set, each row also logs every path's p50 over consecutive blocks of this many samples (warm-up). */
  blocks?: number;
  /** Paths to measure (proxy, direct, floor; pushprox when a PushProx is given). */
  paths: Set<string>;
  /** A locally built PushProx (proxy and client binaries), measured beside us when given. */
  pushprox?: { proxy: string; client: string };
  /** A/B: a second checkout whose server and `promproxy client` run beside ours ("alt" path, interleaved). */
  altDir?: string;
  children: Child[];
  log(line: string): void;
}

export async function forwarderSection(cfg: ForwarderConfig): Promise<ForwarderResults> {
  const results: ForwarderResults = { rows: [], throughput: [] };
  const extra: ChildProcess[] = [];
  try {
    const server = await startChild<{ port: number }>(path.join(here, "server-proc.ts"), [cfg.serverOptions], cfg.execArgvFor("fwd-server"));
    cfg.children.push(server);
    const target = await startChild<{ port: number; sizes: Record<StaticSize, number> }>(path.join(here, "static-target.ts"), [], ["--expose-gc"]);
    cfg.children.push(target);
    const relayB = await startChild<{ port: number }>(path.join(here, "relay-proc.ts"), [String(target.info.port)], ["--expose-gc"]);
    cfg.children.push(relayB);
    const relayA = await startChild<{ port: number }>(path.join(here, "relay-proc.ts"), [String(relayB.info.port)], ["--expose-gc"]);
    cfg.children.push(relayA);
    const forwarder = await startForwarder(server.info.port, target.info.port, server, cfg.forwarderNodeArgs);
    extra.push(forwarder);
    let alt: { server: Child<{ port: number }>; forwarder: ChildProcess } | undefined;
    if (cfg.altDir) {
      const altServer = await startChild<{ port: number }>(path.join(cfg.altDir, "bench", "server-proc.ts"), [cfg.serverOptions], cfg.execArgvFor("alt-fwd-server"));
      cfg.children.push(altServer);
      const altFwd = await startForwarder(altServer.info.port, target.info.port, altServer, [], cfg.altDir);
      extra.push(altFwd);
      alt = { server: altServer, forwarder: altFwd };
    }
    let pushprox: { port: number; procs: ChildProcess[] } | undefined;
    if (cfg.pushprox) {
      pushprox = await startPushProx(cfg.pushprox, target.info.port);
      extra.push(...pushprox.procs);
    }
    const pids: Record<string, number> = {
      server: server.proc.pid as number,
      forwarder: forwarder.pid as number,
      relays: NaN,
      target: target.proc.pid as number,
    };
    const relayPids = [relayA.proc.pid as number, relayB.proc.pid as number];
    const pushproxPids = pushprox ? pushprox.procs.map((p) => p.pid as number) : [];

    const kinds = (["proxy", "alt", "direct", "floor", "pushprox"] as FwdPath[]).filter(
      (k) => (cfg.paths.has(k) && (k !== "pushprox" || pushprox)) || (k === "alt" && alt),
    );
    const endpoint = (k: FwdPath, size: StaticSize): [number, string, string] => {
      switch (k) {
        case "proxy":
          return [server.info.port, `http://${name}:80/${size}`, `${name}:80`];
        case "alt":
          return [alt?.server.info.port ?? 0, `http://${name}:80/${size}`, `${name}:80`];
        case "direct":
          return [target.info.port, `/${size}`, `127.0.0.1:${target.info.port}`];
        case "floor":
          return [relayA.info.port, `/${size}`, `127.0.0.1:${target.info.port}`];
        case "pushprox":
          return [pushprox?.port ?? 0, `http://127.0.0.1:${target.info.port}/${size}`, `127.0.0.1:${target.info.port}`];
      }
    };

    for (const size of cfg.sizes) {
      const [warm, n] = cfg.plan[size];
      const agents = Object.fromEntries(kinds.map((k) => [k, agent()])) as Record<FwdPath, http.Agent>;
      const samples = Object.fromEntries(kinds.map((k) => [k, [] as number[]])) as Record<FwdPath, number[]>;
      let errors = 0;
      // Every path returns the target's bytes.
      const ref = await scrape(agents.direct ?? agent(), ...endpoint("direct", size), { hash: true, encoding: cfg.encoding });
      for (const k of kinds) {
        const r = await scrape(agents[k], ...endpoint(k, size), { hash: true, encoding: cfg.encoding });
        if (r.status !== 200 || r.hash !== ref.hash) {
          cfg.log(`bench: forwarder ${size}: ${k} answered ${r.status} with ${r.bytes} bytes, differing from the direct scrape (${ref.bytes} bytes)`);
          errors++;
        }
      }
      // Both servers alike: rssBegin's full collections leave a small heap, and V8 then marks more often for a while
      // (at 20 MB about twice the server's CPU per scrape): only one side collected would bias the A/B.
      await server.call("rssBegin");
      await alt?.server.call("rssBegin");
      const meter = cpuDelta({
        server: pids.server as number,
        forwarder: pids.forwarder as number,
        target: pids.target as number,
        ...(alt ? { altServer: alt.server.proc.pid as number, altForwarder: alt.forwarder.pid as number } : {}),
      });
      const relayStart = relayPids.reduce((a, p) => a + procCpuMs(p), 0);
      const ppStart = pushproxPids.map((p) => procCpuMs(p));
      meter.begin();
      const count: Partial<Record<FwdPath, number>> = {};
      for (let i = 0; i < warm + n; i++) {
        for (let j = 0; j < kinds.length; j++) {
          const k = kinds[(i + j) % kinds.length] as FwdPath;
          count[k] = (count[k] ?? 0) + 1;
          try {
            const r = await scrape(agents[k], ...endpoint(k, size), { encoding: cfg.encoding });
            if (r.status !== 200) errors++;
            else if (i >= warm) samples[k].push(r.ms);
          } catch (e) {
            errors++;
            cfg.log(`bench: forwarder ${size} ${k}: ${(e as Error).message}`);
          }
        }
      }
      const cpu = meter.end().cpuMs;
      if (cfg.blocks) {
        const b = cfg.blocks;
        for (const k of kinds) {
          const p50s = Array.from({ length: Math.ceil(samples[k].length / b) }, (_, i) => quantile(samples[k].slice(i * b, (i + 1) * b), 0.5).toFixed(2));
          cfg.log(`    ${size} ${k} p50 per ${b} samples: ${p50s.join(" ")}`);
        }
      }
      const relayMs = relayPids.reduce((a, p) => a + procCpuMs(p), 0) - relayStart;
      const ppMs = pushproxPids.map((p, i) => procCpuMs(p) - (ppStart[i] as number));
      const serverRss = await server.call<RssReading>("rssEnd");
      for (const a of Object.values(agents)) a.destroy();
      const proxied = count.proxy ?? 0;
      const cpuPerScrape: Record<string, number> = {
        server: (cpu.server as number) / proxied,
        forwarder: (cpu.forwarder as number) / proxied,
        relays: relayMs / (count.floor ?? NaN),
      };
      if (pushprox) {
        // Proxy and client together (as the floor's two relays), and the client alone (the forwarder's counterpart).
        cpuPerScrape["pushprox"] = ppMs.reduce((a, b) => a + b, 0) / (count.pushprox ?? NaN);
        cpuPerScrape["pushprox client"] = (ppMs[1] as number) / (count.pushprox ?? NaN);
      }
      if (alt) {
        cpuPerScrape["alt server"] = (cpu.altServer as number) / (count.alt ?? NaN);
        cpuPerScrape["alt forwarder"] = (cpu.altForwarder as number) / (count.alt ?? NaN);
      }
      const q = (x: number) => Object.fromEntries(kinds.map((k) => [k, quantile(samples[k], x)])) as Partial<Record<FwdPath, number>>;
      const row: ForwarderRow = { size, bytes: ref.bytes, samples: n, p50: q(0.5), p99: q(0.99), cpuPerScrape, serverRss, errors };
      results.rows.push(row);
      cfg.log(
        `  forwarder ${size.padEnd(4)} n=${n}  proxy p50 ${row.p50.proxy?.toFixed(2)} ms, direct ${row.p50.direct?.toFixed(2)}, floor ${row.p50.floor?.toFixed(2)}` +
          (pushprox ? `, pushprox ${row.p50.pushprox?.toFixed(2)}` : "") +
          (alt ? `, alt ${row.p50.alt?.toFixed(2)} (alt/proxy ${((row.p50.alt ?? NaN) / (row.p50.proxy ?? NaN)).toFixed(2)}; CPU server ${cpuPerScrape["alt server"]?.toFixed(2)}, forwarder ${cpuPerScrape["alt forwarder"]?.toFixed(2)})` : "") +
          `; CPU/scrape server ${cpuPerScrape.server?.toFixed(2)} ms, forwarder ${cpuPerScrape.forwarder?.toFixed(2)} ms` +
          (errors ? `, ${errors} ERRORS` : ""),
      );
    }

    // Concurrent scrapers through one forwarder at 10 KB (and the same load on the floor and on PushProx).
    if (cfg.tpSeconds > 0 && cfg.sizes.includes("10k")) {
      const runs: [FwdPath, Record<string, number[]>][] = [["proxy", { server: [pids.server as number], forwarder: [pids.forwarder as number] }]];
      // With --alt, ours and alt alternate twice (proxy, alt, alt, proxy), so that drift hits both.
      if (alt) {
        const a: [FwdPath, Record<string, number[]>] = ["alt", { server: [alt.server.proc.pid as number], forwarder: [alt.forwarder.pid as number] }];
        runs.push(a, a, runs[0] as [FwdPath, Record<string, number[]>]);
      }
      if (kinds.includes("floor")) runs.push(["floor", { relays: relayPids }]);
      if (kinds.includes("pushprox")) runs.push(["pushprox", { "pushprox proxy": [pushproxPids[0] as number], "pushprox client": [pushproxPids[1] as number] }]);
      if (kinds.includes("direct")) runs.push(["direct", {}]);
      for (const [k, groups] of runs) {
        const t = await concurrentRun(k, cfg.tpConcurrency, k === "direct" || k === "floor" ? Math.max(2, cfg.tpSeconds / 2) : cfg.tpSeconds, () => endpoint(k, "10k"), groups, cfg.encoding);
        t.cpuPerScrape["target"] = NaN;
        results.throughput.push(t);
        cfg.log(`  forwarder 10k x${cfg.tpConcurrency} ${k}: ${(t.scrapes / t.seconds).toFixed(0)} scrapes/s, ${Object.entries(t.cpuPerScrape).filter(([, v]) => Number.isFinite(v)).map(([g, v]) => `${g} ${v.toFixed(3)} ms`).join(", ")}`);
      }
    }
  } finally {
    await Promise.all(extra.map(stopProc));
  }
  return results;
}

async function concurrentRun(
  label: FwdPath,
  concurrency: number,
  seconds: number,
  request: () => [number, string, string],
  groups: Record<string, number[]>,
  encoding: string,
): Promise<ForwarderThroughput> {
  const ag = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let k = 0; k < 20; k++) await scrape(ag, ...request(), { encoding }).catch(() => {});
  }));
  const start = Object.fromEntries(Object.entries(groups).map(([g, ps]) => [g, ps.reduce((a, p) => a + procCpuMs(p), 0)]));
  const latencies: number[] = [];
  let errors = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) {
      try {
        const s = await scrape(ag, ...request(), { encoding });
        if (s.status === 200) latencies.push(s.ms);
        else errors++;
      } catch {
        errors++;
      }
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  const n = Math.max(1, latencies.length);
  const cpuPerScrape = Object.fromEntries(Object.entries(groups).map(([g, ps]) => [g, (ps.reduce((a, p) => a + procCpuMs(p), 0) - (start[g] as number)) / n]));
  ag.destroy();
  return { label, concurrency, seconds: wall, scrapes: latencies.length, errors, p50: median(latencies), p99: quantile(latencies, 0.99), cpuPerScrape };
}
