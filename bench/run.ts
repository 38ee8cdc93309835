/**
 * `npm run bench`: promproxy's relay cost against a direct scrape, on loopback. `npm run bench -- --help`
 * lists the flags (options.ts).
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
 * Sections, one file each: embedded (embedded.ts: the rows above), forwarder (forwarder.ts: a static exporter
 * scraped direct, through the floor and through the server + a `promproxy client` process), idle and storm
 * (idle.ts, storm.ts; opt-in: they take minutes). The end prints the goals, one verdict line each (verdicts.ts).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { embeddedSection, type EmbeddedResults } from "./embedded.ts";
import { forwarderSection, type ForwarderResults } from "./forwarder.ts";
import { fdLimits, idleSection, type IdleConfig, type IdleResult } from "./idle.ts";
import { stormSection, type StormResult } from "./storm.ts";
import type { Child } from "./ipc.ts";
import { execArgvFor, parseOptions } from "./options.ts";
import { printEmbedded } from "./print-embedded.ts";
import { printForwarder } from "./print-forwarder.ts";
import { printIdle } from "./print-idle.ts";
import type { StaticSize } from "./static-target.ts";
import { printVerdicts } from "./verdicts.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const o = parseOptions(process.argv.slice(2));

function gitHead(): string {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: here, encoding: "utf8" }).trim();
  } catch {
    return "?";
  }
}

/** Stops the children a section left (in reverse order of start). */
async function stopAll(children: Child[], timeoutMs?: number): Promise<void> {
  await Promise.all(children.splice(0).reverse().map((c) => c.stop(timeoutMs).catch(() => {})));
}

async function main() {
  const started = performance.now();
  if (o.cpuProfDir) fs.mkdirSync(o.cpuProfDir, { recursive: true });
  if (o.heapDir) fs.mkdirSync(o.heapDir, { recursive: true });
  const children: Child[] = [];
  let results: EmbeddedResults & { forwarder?: ForwarderResults; idleClients?: IdleResult[]; storm?: StormResult } = { latency: [], throughput: [] };
  console.log(
    `promproxy bench @ ${gitHead()}, node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}), ` +
      `Accept-Encoding: ${o.encoding}${o.quick ? ", --quick" : ""}`,
  );
  if (["10k", "1m", "20m", "100m", "throughput"].some((s) => o.only.has(s))) {
    try {
      results = { ...results, ...(await embeddedSection(o, children)) };
    } finally {
      await stopAll(children);
    }
  }

  const log = (line: string) => console.log(line);
  if (o.only.has("forwarder")) {
    console.log(`forwarder section: static target, floor (2 TCP relays), server + promproxy client process${o.pushproxDir ? ", PushProx" : ""}`);
    const plan: Record<StaticSize, [number, number]> = o.quick
      ? { "10k": [20, 100], "1m": [3, 15], "20m": [1, 5] }
      : { "10k": [50, 500], "1m": [5, 60], "20m": [2, 20] };
    if (o.samplesOverride) for (const k of Object.keys(plan) as StaticSize[]) plan[k] = [plan[k][0], o.samplesOverride];
    try {
      results.forwarder = await forwarderSection({
        sizes: o.fwdSizes,
        blocks: o.blocks,
        plan,
        encoding: o.encoding,
        tpSeconds: o.fwdSeconds,
        tpConcurrency: o.fwdConcurrency,
        serverOptions: o.serverOptions,
        execArgvFor: (name) => execArgvFor(o, name),
        forwarderNodeArgs: [...o.forwarderNodeArgs, ...(o.cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${o.cpuProfDir}`, "--cpu-prof-name=forwarder.cpuprofile"] : [])],
        paths: new Set([...o.paths, ...(o.pushproxDir ? ["pushprox"] : [])]),
        pushprox: o.pushproxDir ? { proxy: path.join(o.pushproxDir, "pushprox-proxy"), client: path.join(o.pushproxDir, "pushprox-client") } : undefined,
        altDir: o.altDir,
        children,
        log,
      });
    } finally {
      await stopAll(children);
    }
  }
  if (o.only.has("idle") || o.only.has("storm")) console.log(`idle/storm: open files ${fdLimits()} (each client holds one socket in the server and one in its load process)`);
  const idleCfg: IdleConfig = {
    counts: o.idleCounts,
    cpuSeconds: o.idleSeconds,
    perProcess: o.perProcess,
    serverOptions: JSON.parse(o.serverOptions) as Record<string, unknown>,
    listenOptions: JSON.parse(o.listenOptions) as Record<string, unknown>,
    execArgvFor: (name) => execArgvFor(o, name),
    heapSnapshotDir: o.heapDir,
    children,
    log,
  };
  if (o.only.has("idle")) {
    try {
      results.idleClients = await idleSection(idleCfg);
    } finally {
      await stopAll(children, 30_000);
    }
  }
  if (o.only.has("storm")) {
    try {
      results.storm = await stormSection(idleCfg, o.stormClients, o.stormDownSeconds, o.stormSqueeze);
    } finally {
      await stopAll(children, 30_000);
    }
  }

  console.log("");
  printEmbedded(o, results);
  printForwarder(results.forwarder, o.encoding);
  printIdle(results.idleClients, results.storm, o.perProcess);
  printVerdicts(results);
  console.log(`bench took ${((performance.now() - started) / 1000).toFixed(0)} s${o.cpuProfDir ? `; CPU profiles in ${o.cpuProfDir}` : ""}`);
  if (o.json) fs.writeFileSync(o.json, JSON.stringify({ head: gitHead(), encoding: o.encoding, quick: o.quick, alt: o.altDir, ...results }, null, 2));
}

await main();
