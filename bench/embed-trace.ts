/**
 * Where an embedded 10 KB scrape's time goes, per process: a server (`server-proc.ts`, the shipped flags) and an
 * app with embedded clients (`app-proc.ts`, as the embedded section runs them), 1,500 warm-up scrapes of one path
 * (through the server, or `--direct` from the app's own HTTP endpoint), then one of:
 *
 * - (default) `strace -ttt` on the main thread of the server and the app while `--scrapes` spaced scrapes run:
 *   every read, write and epoll wait of the median scrape in ms from the driver's request, with each wait's
 *   timeout (a 0 is a turn of the loop that waits for nothing), and the syscalls per scrape. strace slows every
 *   syscall: read the order and the turns, not the times.
 * - `--cpu`: `--sequential` scrapes untraced, their p50 and the CPU ms per scrape of the server and the app
 *   (/proc, all threads); with `--perf=DIR`, `perf record -g` of both meanwhile (DIR/server.data, DIR/app.data;
 *   both processes run with `--perf-basic-prof`, so JIT frames have names).
 * - `--prof=DIR`: as `--cpu`, with V8 CPU profiles (DIR/server.cpuprofile, DIR/app.cpuprofile; prof-summary.ts).
 *
 * `--server-args` / `--app-args`: extra Node flags, space-separated (e.g. "--trace-deopt").
 *
 *   node bench/embed-trace.ts [--direct] [--scrapes=40] [--cpu [--perf=DIR] | --prof=DIR] [--sequential=3000]
 *     [--root=DIR] [--server-args=FLAGS] [--app-args=FLAGS]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { startChild, type Child } from "./ipc.ts";
import { agent, PROM_ACCEPT, scrape } from "./scrape.ts";
import { serverExecArgv } from "./server-flags.ts";
import { procCpuMs } from "./proc.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const opt = new Map(process.argv.slice(2).map((a) => { const [k, v] = a.replace(/^--/, "").split("="); return [k!, v ?? ""]; }));
const root = path.resolve(opt.get("root") || path.join(here, ".."));
const scrapes = Number(opt.get("scrapes") || 40);
const direct = opt.has("direct");
const profDir = opt.get("prof") ? path.resolve(opt.get("prof")!) : undefined;
const cpuOnly = opt.has("cpu");
const perfDir = opt.get("perf") ? path.resolve(opt.get("perf")!) : undefined;
const extra = (name: string) => (opt.get(name) ? opt.get(name)!.split(" ") : []);
const profArgs = (name: string) => (profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${name}.cpuprofile`] : []);
/** JIT frames named for perf; V8's own log (which the flag turns on) goes to DIR, not the working directory. */
const perfArgs = (name: string) => (perfDir ? ["--perf-basic-prof", "--no-logfile-per-isolate", `--logfile=${path.join(perfDir, `${name}-v8.log`)}`] : []);
const procs: ChildProcess[] = [];
const children: Child[] = [];
process.once("exit", () => {
  for (const p of procs) p.kill("SIGKILL");
  for (const c of children) c.proc.kill("SIGKILL");
});
const server = await startChild<{ port: number }>(path.join(root, "bench", "server-proc.ts"), ["{}"], serverExecArgv([...perfArgs("server"), ...profArgs("server"), ...extra("server-args")]));
children.push(server);
const app = await startChild<{ directPort: number }>(path.join(root, "bench", "app-proc.ts"), [JSON.stringify({ serverPort: server.info.port, accept: PROM_ACCEPT, role: "latency", sizes: ["10k"] })], ["--expose-gc", ...perfArgs("app"), ...profArgs("app"), ...extra("app-args")]);
children.push(app);
const ag = agent();
const one = () => direct ? scrape(ag, app.info.directPort, "/metrics", "app-10k") : scrape(ag, server.info.port, "http://app-10k:80/metrics", "app-10k:80");
for (let i = 0; i < 1500; i++) await one();
if (profDir || cpuOnly) {
  const ms: number[] = [];
  const pids = { server: server.proc.pid as number, app: app.proc.pid as number };
  const before = { server: procCpuMs(pids.server), app: procCpuMs(pids.app) };
  const n = Number(opt.get("sequential") || 3000);
  const perfs = perfDir ? Object.entries(pids).map(([name, pid]) => spawn("perf", ["record", "-F", "4999", "-g", "-o", path.join(perfDir, `${name}.data`), "-p", String(pid)], { stdio: "ignore" })) : [];
  if (perfs.length) await new Promise((r) => setTimeout(r, 1000));
  for (let i = 0; i < n; i++) ms.push((await one()).ms);
  for (const p of perfs) p.kill("SIGINT");
  await Promise.all(perfs.map((p) => new Promise((r) => p.once("exit", r))));
  const cpu = `CPU ms per scrape: server ${((procCpuMs(pids.server) - before.server) / n).toFixed(3)}, app ${((procCpuMs(pids.app) - before.app) / n).toFixed(3)}`;
  ms.sort((a, b) => a - b);
  console.log(`${direct ? "direct" : "proxy"}: p50 ${ms[ms.length >> 1]!.toFixed(3)} ms over ${ms.length}; ${cpu}${profDir ? `; profiles in ${profDir} (server.cpuprofile, app.cpuprofile)` : ""}`);
  ag.destroy();
  for (const c of children.reverse()) await c.stop();
  process.exit(0);
}
const now = () => (performance.timeOrigin + performance.now()) / 1000;
const dir = mkdtempSync(path.join(tmpdir(), "embed-trace-"));
const calls = "trace=read,readv,write,writev,recvfrom,sendto,sendmsg,recvmsg,epoll_wait,epoll_pwait";
const who = direct ? { app: app.proc.pid as number } : { server: server.proc.pid as number, app: app.proc.pid as number };
const tracers = Object.entries(who).map(([name, pid]) => spawn("strace", ["-ttt", "-e", calls, "-o", path.join(dir, name), "-p", String(pid)], { stdio: "ignore" }));
procs.push(...tracers);
await new Promise((r) => setTimeout(r, 1500));
const marks: { t0: number; t1: number }[] = [];
for (let i = 0; i < scrapes; i++) {
  await new Promise((r) => setTimeout(r, 30));
  const t0 = now();
  await one();
  marks.push({ t0, t1: now() });
}
await new Promise((r) => setTimeout(r, 300));
for (const t of tracers) t.kill("SIGINT");
await new Promise((r) => setTimeout(r, 500));
const byScrape = marks.map((m) => m.t1 - m.t0);
const mid = [...byScrape].sort((x, y) => x - y)[Math.floor(byScrape.length / 2)] as number;
const pick = marks[byScrape.indexOf(mid)]!;
console.log(`traced ${direct ? "direct" : "proxy"}: p50 ${(mid * 1000).toFixed(3)} ms; the median scrape's syscalls by process (ms from the request):`);
for (const name of Object.keys(who)) {
  console.log(`  ${name}:`);
  const lines = readFileSync(path.join(dir, name), "utf8").split("\n");
  const events = lines.map((l) => /^(\d+\.\d+) (\w+)\((.*)$/.exec(l)).filter((m): m is RegExpExecArray => !!m).map((m) => ({ t: Number(m[1]), call: m[2]!, rest: m[3]! }));
  const inside = (e: { t: number }, m: { t0: number; t1: number }) => e.t >= m.t0 - 0.0002 && e.t <= m.t1 + 0.0005;
  for (const e of events.filter((e) => inside(e, pick))) {
    const ret = /= (-?\d+)/.exec(e.rest)?.[1] ?? "?";
    // An epoll wait's timeout (ms, its 4th argument): 0 is a poll that does not wait (an immediate pending).
    const timeout = e.call.startsWith("epoll") ? ` (timeout ${/\], (\d+), (-?\d+)/.exec(e.rest)?.[2] ?? "?"})` : "";
    console.log(`    ${((e.t - pick.t0) * 1000).toFixed(3).padStart(7)} ${e.call.padEnd(11)} fd ${e.rest.split(",")[0]!.padEnd(4)} = ${ret}${timeout}`);
  }
  const per = new Map<string, number>();
  let zero = 0;
  for (const m of marks) for (const e of events.filter((e) => inside(e, m))) {
    per.set(e.call, (per.get(e.call) ?? 0) + 1);
    if (e.call.startsWith("epoll") && /= 0$/.test(e.rest.trim())) zero++;
  }
  console.log(`  syscalls per scrape (mean): ${[...per].map(([c, n]) => `${c} ${(n / marks.length).toFixed(1)}`).join(", ")}; epoll waits returning 0: ${(zero / marks.length).toFixed(1)}`);
}
rmSync(dir, { recursive: true, force: true });
ag.destroy();
for (const c of children.reverse()) await c.stop();
