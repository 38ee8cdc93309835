/**
 * The embedded section of `npm run bench`: an app process with embedded clients (createClient) for registries
 * of about 10 KB, 1 MB, 20 MB (and a pre-rendered 100 MiB exposition), scraped through the server, directly and
 * through the floor (latency rows, embedded-latency.ts); then concurrent scrapes over a fleet of connected
 * clients in two processes (throughput rows, embedded-throughput.ts). With --alt, a second checkout's server and
 * app run beside ours, interleaved.
 */
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { latencyRow, type Endpoints, type LatencyRow } from "./embedded-latency.ts";
import { mergeThroughput, throughputRun, type Throughput } from "./embedded-throughput.ts";
import { startChild, type Child } from "./ipc.ts";
import { execArgvFor, type BenchOptions } from "./options.ts";
import type { SizeName } from "./registries.ts";
import { PROM_ACCEPT } from "./scrape.ts";
import { fmtBytes, fmtMs } from "./stats.ts";
import { perScrape, ratio } from "./format.ts";

const here = path.dirname(fileURLToPath(import.meta.url));

export interface EmbeddedResults {
  latency: LatencyRow[];
  throughput: Throughput[];
  /** Server RSS per connected fleet client, after GC. */
  idle?: { clients: number; rssPerClient: number };
}

/** Runs the rows of the embedded section --only asks for; its children go into `children` (the caller stops them). */
export async function embeddedSection(o: BenchOptions, children: Child[]): Promise<EmbeddedResults> {
  const results: EmbeddedResults = { latency: [], throughput: [] };
  const sizes = (["10k", "1m", "20m", "100m"] as SizeName[]).filter((s) => o.only.has(s));
  const { altDir, heapDir, paths } = o;
  const tpSeconds = o.tpSeconds;
  const fleetClients = o.fleetClients;
  const server = await startChild<{ port: number }>(path.join(here, "server-proc.ts"), [o.serverOptions], execArgvFor(o, "server"));
  children.push(server);
  const altServer = altDir
    ? await startChild<{ port: number }>(path.join(altDir, "bench", "server-proc.ts"), [o.serverOptions], execArgvFor(o, "alt-server"))
    : undefined;
  if (altServer) children.push(altServer);
  if (sizes.length > 0) {
    process.stdout.write(`building registries (${sizes.join(", ")}) and connecting clients... `);
    const app = await startChild<{ directPort: number; relayPort: number }>(
      path.join(here, "app-proc.ts"),
      [JSON.stringify({ serverPort: server.info.port, accept: PROM_ACCEPT, role: "latency", sizes })],
      execArgvFor(o, "app"),
    );
    children.push(app);
    // The alt app serves the same registries through the alt checkout's client.
    const altApp = altDir && altServer
      ? await startChild<{ directPort: number }>(
          path.join(altDir, "bench", "app-proc.ts"),
          [JSON.stringify({ serverPort: altServer.info.port, accept: PROM_ACCEPT, role: "latency", sizes })],
          execArgvFor(o, "alt-app"),
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
        if ((isCached && !o.cached) || (!isCached && (!o.live || size === "100m"))) continue;
        const r = await latencyRow(o, e, { server, app, altServer, altApp }, size, isCached);
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

  if (o.only.has("throughput")) {
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
          execArgvFor(o, `${tag}fleet-${i}`),
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
          o,
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
        o,
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
        o,
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
  return results;
}
