/**
 * A/B of a fresh server and forwarder's first sequential scrapes (their warm-up, where a target scraped every
 * 15 s spends hours): our tree and another checkout (`--alt=DIR`). Each round starts a new server
 * (bench/server-proc.ts of that checkout) and a new `promproxy client` forwarder for A and for B (in alternating
 * order) in front of one static exporter, scrapes both sequentially, interleaved (A, B, B, A...), from the first
 * scrape on, and stops them. Per round and side: p50 over all scrapes and per block, and CPU ms per scrape of each
 * process over the scrapes, all threads and the main thread alone (the rest: V8's compiler and GC threads).
 * Prints each round and the medians over rounds.
 *
 *   node bench/warmup-ab.ts --alt=DIR [--rounds=6] [--scrapes=500] [--blocks=100] [--size=10k]
 *                           [--node-args="FLAGS"] [--a-node-args="FLAGS"] [--b-node-args="FLAGS"] [--log-dir=DIR] [--cpu-prof=DIR]
 *                           [--perf=DIR] [--b-head-start-ms=N]
 *
 * --node-args: extra node flags for all four processes (`--trace-opt --trace-deopt`), --a-node-args and
 * --b-node-args for one side's two (an A/B of flags: `--alt` the same tree); --cpu-prof=DIR: V8 CPU profiles
 * DIR/{A,B}-{server,forwarder}-ROUND.cpuprofile and the measured span DIR/window-ROUND.json (for `prof-summary.ts
 * --window=FILE`); --perf=DIR: `perf record` of A's processes over the measured span, DIR/{server,forwarder}-ROUND.data
 * (`perf report -i FILE --sort comm,dso`: main thread against V8's helper threads, interpreter against JIT code; the
 * processes run with `--perf-basic-prof`); --log-dir=DIR: their
 * standard output to DIR/{A,B}-{server,forwarder}-ROUND.log, where lines `=== scrapes begin` and `=== scrapes end`
 * mark the measured span (the files are opened for appending by the processes and the driver alike).
 */
import { spawn } from "node:child_process";
import { appendFileSync, closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { startForwarder, stopProc } from "./forwarder-procs.ts";
import { startChild, type Child } from "./ipc.ts";
import { statTimesMs } from "./proc.ts";
import { agent, scrape } from "./scrape.ts";
import { median } from "./stats.ts";
import { serverExecArgv } from "./server-flags.ts";
import { benchFlags, altDirOrExit } from "./flags.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const opt = benchFlags();
const altDir = altDirOrExit(opt, "usage: node bench/warmup-ab.ts --alt=DIR [--rounds=6] [--scrapes=500] [--blocks=100] [--size=10k] [--node-args=FLAGS] [--log-dir=DIR]");
const rounds = Number(opt.get("rounds") || 6);
const scrapes = Number(opt.get("scrapes") || 500);
const block = Number(opt.get("blocks") || 100);
const size = opt.get("size") || "10k";
const flags = (name: string) => (opt.get(name) ?? "").split(" ").filter(Boolean);
const profDir = opt.get("cpu-prof");
const perfDir = opt.get("perf") ? path.resolve(opt.get("perf") as string) : undefined;
const logDir = opt.get("log-dir");
/** --b-head-start-ms=N: B's processes start N ms before A's (both then scraped interleaved): does age alone warm them? */
const headStartMs = Number(opt.get("b-head-start-ms") || 0);
const roots = { A: path.join(here, ".."), B: path.resolve(altDir) };
type Key = keyof typeof roots;

/** CPU ms of a process so far: all its threads (/proc/PID/stat) and its main thread. */
function cpu(pid: number): { all: number; main: number } {
  const t = (f: string) => {
    const { user, sys } = statTimesMs(readFileSync(f, "utf8"));
    return user + sys;
  };
  return { all: t(`/proc/${pid}/stat`), main: t(`/proc/${pid}/task/${pid}/stat`) };
}

const target = await startChild<{ port: number }>(path.join(here, "static-target.ts"), [], ["--expose-gc"]);

/** CLOCK_MONOTONIC in microseconds: the clock of a .cpuprofile's startTime and timeDeltas. */
const monoUs = () => Number(process.hrtime.bigint() / 1000n);
const logFile = (k: Key, name: string, round: number) => path.join(logDir as string, `${k}-${name}-${round}.log`);
/** Marks the measured span in the processes' logs. */
function mark(what: string, round: number): void {
  if (!logDir) return;
  for (const k of ["A", "B"] as const) for (const name of ["server", "forwarder"]) appendFileSync(logFile(k, name, round), `=== scrapes ${what}\n`);
}

async function side(k: Key, round: number) {
  const perfArgs = perfDir ? ["--perf-basic-prof", "--no-logfile-per-isolate", `--logfile=${path.join(perfDir, `${k}-v8.log`)}`] : [];
  const nodeArgs = [...flags("node-args"), ...flags(k === "A" ? "a-node-args" : "b-node-args"), ...perfArgs];
  const prof = (name: string) => (profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${k}-${name}-${round}.cpuprofile`] : []);
  const log = (name: string) => (logDir ? openSync(logFile(k, name, round), "a") : undefined);
  const serverLog = log("server");
  const server: Child<{ port: number }> = await startChild(path.join(roots[k], "bench", "server-proc.ts"), ["{}"], serverExecArgv(["--expose-gc", ...nodeArgs, ...prof("server")]), 120_000, serverLog ?? "inherit");
  const fwdLog = log("forwarder");
  const fwd = await startForwarder(server.info.port, target.info.port, server, [...nodeArgs, ...prof("forwarder")], roots[k], fwdLog ?? "ignore");
  for (const fd of [serverLog, fwdLog]) if (fd !== undefined) closeSync(fd);
  return { server, fwd, port: server.info.port, pids: { server: server.proc.pid as number, forwarder: fwd.pid as number } };
}

interface Row { first: number; p50: number; blocks: number[]; server: number; serverMain: number; forwarder: number; forwarderMain: number }
const rows: Record<Key, Row[]> = { A: [], B: [] };
const url = `http://fwd:80/${size}`;
const f = (v: number, d = 3) => v.toFixed(d);
console.log(`warmup-ab: A = ${roots.A}, B = ${roots.B}; ${rounds} rounds, each a fresh server and forwarder per side, ${scrapes} sequential ${size} scrapes interleaved, p50 per ${block}`);
console.log("round | side | first scrape ms | p50 ms | p50 per block | server CPU ms (main) | forwarder CPU ms (main), per scrape");
for (let r = 0; r < rounds; r++) {
  const order: Key[] = r % 2 === 0 ? ["A", "B"] : ["B", "A"];
  const sides = {} as Record<Key, Awaited<ReturnType<typeof side>>>;
  for (const k of headStartMs ? (["B", "A"] as Key[]) : order) {
    sides[k] = await side(k, r + 1);
    if (k === "B" && headStartMs) await new Promise((res) => setTimeout(res, headStartMs));
  }
  const ag = { A: agent(), B: agent() };
  const times: Record<Key, number[]> = { A: [], B: [] };
  const before = { A: { s: cpu(sides.A.pids.server), f: cpu(sides.A.pids.forwarder) }, B: { s: cpu(sides.B.pids.server), f: cpu(sides.B.pids.forwarder) } };
  const perfs = perfDir ? Object.entries(sides.A.pids).map(([name, pid]) => spawn("perf", ["record", "-F", "2999", "-o", path.join(perfDir, `${name}-${r + 1}.data`), "-p", String(pid)], { stdio: "ignore" })) : [];
  if (perfs.length) await new Promise((res) => setTimeout(res, 1000));
  mark("begin", r + 1);
  const window = { from: monoUs(), to: 0 };
  for (let i = 0; i < scrapes; i++) {
    for (const k of (i % 2 === 0 ? order : [...order].reverse())) {
      const res = await scrape(ag[k], sides[k].port, url, "fwd:80");
      if (res.status !== 200) throw new Error(`${k}: status ${res.status}`);
      times[k].push(res.ms);
    }
  }
  mark("end", r + 1);
  for (const p of perfs) {
    const exited = new Promise((res) => p.once("exit", res));
    p.kill("SIGINT");
    await exited;
  }
  window.to = monoUs();
  if (profDir) writeFileSync(path.join(profDir, `window-${r + 1}.json`), JSON.stringify(window));
  for (const k of ["A", "B"] as const) {
    const s = cpu(sides[k].pids.server);
    const fw = cpu(sides[k].pids.forwarder);
    const b = before[k];
    const blocks: number[] = [];
    for (let i = 0; i < scrapes; i += block) blocks.push(median(times[k].slice(i, i + block)));
    const row: Row = {
      first: times[k][0] as number,
      p50: median(times[k]),
      blocks,
      server: (s.all - b.s.all) / scrapes,
      serverMain: (s.main - b.s.main) / scrapes,
      forwarder: (fw.all - b.f.all) / scrapes,
      forwarderMain: (fw.main - b.f.main) / scrapes,
    };
    rows[k].push(row);
    console.log(`${r + 1} | ${k} | ${f(row.first, 1)} | ${f(row.p50, 2)} | ${blocks.map((x) => f(x, 2)).join(" ")} | ${f(row.server)} (${f(row.serverMain)}) | ${f(row.forwarder)} (${f(row.forwarderMain)})`);
  }
  ag.A.destroy();
  ag.B.destroy();
  for (const k of order) {
    await stopProc(sides[k].fwd);
    await sides[k].server.stop();
  }
}
console.log("median over rounds:");
for (const k of ["A", "B"] as const) {
  const m = (g: (x: Row) => number) => median(rows[k].map(g));
  const blocks = rows[k][0]!.blocks.map((_, i) => f(m((x) => x.blocks[i] as number), 2)).join(" ");
  console.log(`${k} | first ${f(m((x) => x.first), 1)} | p50 ${f(m((x) => x.p50), 2)} | ${blocks} | server ${f(m((x) => x.server))} (${f(m((x) => x.serverMain))}) | forwarder ${f(m((x) => x.forwarder))} (${f(m((x) => x.forwarderMain))})`);
}
const wins = rows.A.filter((a, i) => a.p50 < (rows.B[i] as Row).p50).length;
console.log(`A's p50 below B's in ${wins} of ${rounds} rounds`);
await target.stop();
process.exit(0);
