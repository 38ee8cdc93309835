/**
 * Where one small scrape's time goes between the processes: a server, a
 * `promproxy client` forwarder and a static exporter (as in frame-ab.ts),
 * sequential scrapes spaced apart, with `strace -ttt` attached to the main
 * thread of the server and the forwarder (the I/O syscalls and epoll waits).
 * Prints, per process, each syscall of a median scrape relative to the
 * driver's request (strace slows every syscall: read the order and the
 * number of loop turns, not the absolute times), then the syscall counts
 * per scrape. Without strace on the machine it prints only the untraced p50.
 *
 * `--prof=DIR` (no strace then) writes CPU profiles of the server and the
 * forwarder (`server.cpuprofile`, `forwarder.cpuprofile`) over the
 * sequential scrapes alone, warm-up included.
 *
 *   node bench/hop-trace.ts [--size=10k] [--scrapes=40] [--sequential=400] [--root=DIR] [--no-strace] [--prof=DIR]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { startChild, type Child } from "./ipc.ts";
import { unlimitedRate } from "./rate-flags.ts";
import { agent, scrape } from "./scrape.ts";
import { median } from "./stats.ts";
import { serverExecArgv, shippedNodeFlags } from "./server-flags.ts";
import { benchFlags } from "./flags.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const opt = benchFlags();
const size = opt.get("size") || "10k";
const scrapes = Number(opt.get("scrapes") || 40);
const root = path.resolve(opt.get("root") || path.join(here, ".."));
const profDir = opt.get("prof");
const traced = !opt.has("no-strace") && !profDir;
const sequential = Number(opt.get("sequential") || 400);

const procs: ChildProcess[] = [];
const children: Child[] = [];
process.once("exit", () => {
  for (const p of procs) p.kill("SIGKILL");
  for (const c of children) c.proc.kill("SIGKILL");
});

function profArgs(name: string): string[] {
  return profDir ? ["--cpu-prof", `--cpu-prof-dir=${path.resolve(profDir)}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
}

const target = await startChild<{ port: number }>(path.join(here, "static-target.ts"), [], []);
children.push(target);
const server = await startChild<{ port: number }>(path.join(root, "bench", "server-proc.ts"), ["{}"], serverExecArgv(profArgs("server")));
children.push(server);
const fwd = spawn(process.execPath, [...shippedNodeFlags, ...profArgs("forwarder"), path.join(root, "src", "cli", "main.ts"), "client", "--server", `http://127.0.0.1:${server.info.port}`, "--name", "fwd", "--target", `http://127.0.0.1:${target.info.port}/`, ...unlimitedRate(root), "--log-level", "warn"], {
  stdio: ["ignore", "ignore", "inherit"],
});
procs.push(fwd);
while ((await server.call<number>("clients")) < 1) await new Promise((r) => setTimeout(r, 100));

const url = `http://fwd:80/${size}`;
const ag = agent();
const now = () => (performance.timeOrigin + performance.now()) / 1000;
for (let i = 0; i < 2000; i++) await scrape(ag, server.info.port, url, "fwd:80");
const plain: number[] = [];
for (let i = 0; i < sequential; i++) plain.push((await scrape(ag, server.info.port, url, "fwd:80")).ms);
console.log(`hop-trace: ${root}, ${size}; untraced p50 ${median(plain).toFixed(3)} ms over ${plain.length} sequential scrapes`);

if (traced) {
  const dir = mkdtempSync(path.join(tmpdir(), "hop-trace-"));
  const calls = "trace=read,readv,write,writev,recvfrom,sendto,sendmsg,recvmsg,epoll_wait,epoll_pwait";
  const who = { server: server.proc.pid as number, forwarder: fwd.pid as number, target: target.proc.pid as number };
  const tracers = Object.entries(who).map(([name, pid]) => spawn("strace", ["-ttt", "-e", calls, "-o", path.join(dir, name), "-p", String(pid)], { stdio: "ignore" }));
  procs.push(...tracers);
  await new Promise((r) => setTimeout(r, 1500));
  const marks: { t0: number; t1: number }[] = [];
  for (let i = 0; i < scrapes; i++) {
    await new Promise((r) => setTimeout(r, 30));
    const t0 = now();
    await scrape(ag, server.info.port, url, "fwd:80");
    marks.push({ t0, t1: now() });
  }
  await new Promise((r) => setTimeout(r, 300));
  for (const t of tracers) t.kill("SIGINT");
  await new Promise((r) => setTimeout(r, 500));
  const byScrape = marks.map((m) => m.t1 - m.t0);
  const mid = [...byScrape].sort((x, y) => x - y)[Math.floor(byScrape.length / 2)] as number;
  const pick = marks[byScrape.indexOf(mid)]!;
  console.log(`traced: p50 ${(mid * 1000).toFixed(3)} ms; the median scrape, syscalls by process (ms from the request; epoll waits that blocked shown with their return time):`);
  const counts: string[] = [];
  for (const name of Object.keys(who)) {
    const lines = readFileSync(path.join(dir, name), "utf8").split("\n");
    const events = lines.map((l) => /^(\d+\.\d+) (\w+)\((.*)$/.exec(l)).filter((m): m is RegExpExecArray => !!m).map((m) => ({ t: Number(m[1]), call: m[2]!, rest: m[3]! }));
    const inside = (e: { t: number }, m: { t0: number; t1: number }) => e.t >= m.t0 - 0.0002 && e.t <= m.t1 + 0.0005;
    console.log(`  ${name}:`);
    for (const e of events.filter((e) => inside(e, pick))) {
      const ret = /= (-?\d+)/.exec(e.rest)?.[1] ?? "?";
      console.log(`    ${((e.t - pick.t0) * 1000).toFixed(3).padStart(7)} ${e.call.padEnd(11)} fd ${e.rest.split(",")[0]!.padEnd(4)} = ${ret}`);
    }
    const per = new Map<string, number>();
    for (const m of marks) for (const e of events.filter((e) => inside(e, m))) per.set(e.call, (per.get(e.call) ?? 0) + 1);
    counts.push(`  ${name}: ${[...per].map(([c, n]) => `${c} ${(n / marks.length).toFixed(1)}`).join(", ")}`);
  }
  console.log("syscalls per scrape (mean):");
  console.log(counts.join("\n"));
  rmSync(dir, { recursive: true, force: true });
}
ag.destroy();
for (const c of children) await c.call("stop").catch(() => {});
fwd.kill("SIGTERM");
await new Promise((r) => (fwd.exitCode === null ? fwd.once("exit", r) : r(undefined)));
process.exit(0);
