/**
 * Where a sequential small scrape's CPU goes, per process: user and system
 * time and context switches (all threads, /proc/PID/task/*) per scrape, for
 * promproxy's server and forwarder and (with --pushprox=DIR) PushProx's proxy
 * and client, the same static exporter, scrapes interleaved one at a time.
 *
 *   node bench/seq-cpu.ts [--scrapes=2000] [--warm=300] [--size=10k] [--pushprox=DIR] [--min-relay] [--cpu-prof=DIR]
 *                         [--forwarder-node-args="FLAGS"]
 *
 * --min-relay adds bench/min-relay-proc.ts: the least a stream relay can be on Node. --cpu-prof=DIR writes
 * server, forwarder (and min-relay-server, min-relay-client) .cpuprofile files of the run, and DIR/window.json:
 * the measured scrapes' time span, for `prof-summary.ts --window=DIR/window.json` (start-up and warm-up left out).
 * Read and write calls: syscr/syscw of /proc/PID/io; minor page faults: /proc/PID/stat.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { startForwarder, startPushProx, stopProc } from "./forwarder-procs.ts";
import { startChild, type Child } from "./ipc.ts";
import { statMinorFaults, statTimesMs } from "./proc.ts";
import { agent, scrape } from "./scrape.ts";
import { median } from "./stats.ts";
import { serverExecArgv } from "./server-flags.ts";
import { benchFlags } from "./flags.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const opt = benchFlags();
const scrapes = Number(opt.get("scrapes") || 2000);
const warm = Number(opt.get("warm") || 300);
const size = opt.get("size") || "10k";
const ppDir = opt.get("pushprox");
const profDir = opt.get("cpu-prof");
/** Node flags of a profiled child: its CPU profile is DIR/NAME.cpuprofile. */
const prof = (name: string) => (profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${name}.cpuprofile`] : []);

interface Reading { user: number; sys: number; vol: number; invol: number; threads: number; main: number; syscr: number; syscw: number; minflt: number }
/** utime, stime (ms) and context switches summed over the process's threads. */
function read(pid: number): Reading {
  const io = readFileSync(`/proc/${pid}/io`, "utf8");
  const count = (name: string) => Number(new RegExp(`^${name}: (\\d+)`, "m").exec(io)?.[1] ?? NaN);
  const minflt = statMinorFaults(readFileSync(`/proc/${pid}/stat`, "utf8"));
  const r: Reading = { user: 0, sys: 0, vol: 0, invol: 0, threads: 0, main: 0, syscr: count("syscr"), syscw: count("syscw"), minflt };
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      const { user, sys } = statTimesMs(readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8"));
      r.user += user;
      r.sys += sys;
      if (t === String(pid)) r.main = user + sys;
      const st = readFileSync(`/proc/${pid}/task/${t}/status`, "utf8");
      r.vol += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0);
      r.invol += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0);
      r.threads++;
    } catch {
      // a thread that ended between the listing and the read
    }
  }
  return r;
}

const children: Child[] = [];
const target = await startChild<{ port: number }>(path.join(here, "static-target.ts"), [], ["--expose-gc"]);
children.push(target);
const server = await startChild<{ port: number }>(path.join(here, "server-proc.ts"), ["{}"], serverExecArgv(["--expose-gc", ...prof("server")]));
children.push(server);
const fwdArgs = (opt.get("forwarder-node-args") ?? "").split(" ").filter(Boolean);
const fwd = await startForwarder(server.info.port, target.info.port, server, [...fwdArgs, ...prof("forwarder")]);
const paths: { name: string; port: number; url: string; host: string; pids: [string, number][] }[] = [
  { name: "promproxy", port: server.info.port, url: `http://fwd:80/${size}`, host: "fwd:80", pids: [["server", server.proc.pid!], ["forwarder", fwd.pid!]] },
];
const pp = ppDir ? await startPushProx({ proxy: path.join(ppDir, "pushprox-proxy"), client: path.join(ppDir, "pushprox-client") }, target.info.port) : undefined;
if (pp) {
  const t = `127.0.0.1:${target.info.port}`;
  paths.push({ name: "pushprox", port: pp.port, url: `http://${t}/${size}`, host: t, pids: [["proxy", pp.procs[0]!.pid!], ["client", pp.procs[1]!.pid!]] });
}
if (opt.has("min-relay")) {
  const ms = await startChild<{ port: number; h2Port: number }>(path.join(here, "min-relay-proc.ts"), ["server"], ["--expose-gc", ...prof("min-relay-server")]);
  const mc = await startChild(path.join(here, "min-relay-proc.ts"), ["client", String(ms.info.h2Port), String(target.info.port)], ["--expose-gc", ...prof("min-relay-client")]);
  children.push(ms, mc);
  while (!(await ms.call<boolean>("connected"))) await new Promise((r) => setTimeout(r, 50));
  paths.push({ name: "min-relay", port: ms.info.port, url: `http://fwd:80/${size}`, host: "fwd:80", pids: [["server", ms.proc.pid!], ["client", mc.proc.pid!]] });
}
const ags = paths.map(() => agent());
for (let i = 0; i < warm; i++) for (const [k, p] of paths.entries()) await scrape(ags[k]!, p.port, p.url, p.host);
const before = paths.map((p) => p.pids.map(([, pid]) => read(pid)));
const times: number[][] = paths.map(() => []);
/** CLOCK_MONOTONIC in microseconds: the clock of a .cpuprofile's startTime and timeDeltas. */
const monoUs = () => Number(process.hrtime.bigint() / 1000n);
const window = { from: monoUs(), to: 0 };
for (let i = 0; i < scrapes; i++) {
  for (const [k, p] of paths.entries()) {
    const r = await scrape(ags[k]!, p.port, p.url, p.host);
    if (r.status !== 200) throw new Error(`${p.name}: ${r.status}`);
    times[k]!.push(r.ms);
  }
}
window.to = monoUs();
if (profDir) writeFileSync(path.join(profDir, "window.json"), JSON.stringify(window));
console.log(`seq-cpu: ${scrapes} sequential ${size} scrapes per path, interleaved; per scrape: CPU ms (user/sys), context switches (voluntary/involuntary, all threads)`);
console.log("| path | p50 ms | process | user ms | sys ms | total ms | main thread ms | vol cs | invol cs | read calls | write calls | minor faults | threads |");
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const [k, p] of paths.entries()) {
  for (const [j, [pname, pid]] of p.pids.entries()) {
    const a = before[k]![j]!;
    const b = read(pid);
    const per = (x: number) => (x / scrapes).toFixed(3);
    console.log(`| ${p.name} | ${median(times[k]!).toFixed(2)} | ${pname} | ${per(b.user - a.user)} | ${per(b.sys - a.sys)} | ${per(b.user - a.user + b.sys - a.sys)} | ${per(b.main - a.main)} | ${per(b.vol - a.vol)} | ${per(b.invol - a.invol)} | ${per(b.syscr - a.syscr)} | ${per(b.syscw - a.syscw)} | ${per(b.minflt - a.minflt)} | ${b.threads} |`);
  }
}
for (const a of ags) a.destroy();
await stopProc(fwd);
for (const p of pp?.procs ?? []) await stopProc(p);
for (const c of children) await c.call("stop").catch(() => {});
process.exit(0);
