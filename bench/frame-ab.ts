/**
 * A/B of the Scrape stream's per-scrape cost, in many short interleaved rounds
 * (for a loaded machine, where one long run per tree says little): our tree
 * and another checkout (`--alt=DIR`), each a server (bench/server-proc.ts) and
 * a `promproxy client` forwarder in front of one static exporter. Each round
 * runs the concurrent load on A, then B, then B, then A (ABBA), and a
 * sequential interleaved series (A, B, A, B...). Prints per-round figures
 * and the medians: CPU ms per scrape of server and forwarder
 * (/proc/PID/stat), scrapes/s, sequential p50.
 *
 *   node bench/frame-ab.ts --alt=DIR [--rounds=6] [--seconds=2] [--concurrency=8] [--size=10k] [--sequential=200]
 *                          [--a-node-args="FLAGS"] [--b-node-args="FLAGS"]
 *
 * --a-node-args / --b-node-args: Node flags for one side's server and forwarder, after the shipped ones (an A/B of
 * flags: `--alt=.`).
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { startChild, type Child } from "./ipc.ts";
import { procCpuMs } from "./proc.ts";
import { unlimitedRate } from "./rate-flags.ts";
import { agent, scrape } from "./scrape.ts";
import { median } from "./stats.ts";
import type { StaticSize } from "./static-target.ts";
import { serverExecArgv, shippedNodeFlags } from "./server-flags.ts";
import { benchFlags, altDirOrExit } from "./flags.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const opt = benchFlags();
const altDir = altDirOrExit(opt, "usage: node bench/frame-ab.ts --alt=DIR [--rounds=6] [--seconds=2] [--concurrency=8] [--size=10k] [--sequential=200]");
const rounds = Number(opt.get("rounds") || 6);
const seconds = Number(opt.get("seconds") || 2);
const concurrency = Number(opt.get("concurrency") || 8);
const size = (opt.get("size") || "10k") as StaticSize;
const sequential = Number(opt.get("sequential") || 200);

const procs: ChildProcess[] = [];
const children: Child[] = [];
process.once("exit", () => {
  for (const p of procs) p.kill("SIGKILL");
  for (const c of children) c.proc.kill("SIGKILL");
});

const flags = (name: string) => (opt.get(name) ?? "").split(" ").filter(Boolean);

async function side(root: string, targetPort: number, nodeArgs: string[]) {
  const server = await startChild<{ port: number }>(path.join(root, "bench", "server-proc.ts"), ["{}"], serverExecArgv(["--expose-gc", ...nodeArgs]));
  children.push(server);
  const fwd = spawn(process.execPath, [...shippedNodeFlags, ...nodeArgs, path.join(root, "src", "cli", "main.ts"), "client", "--server", `http://127.0.0.1:${server.info.port}`, "--name", "fwd", "--target", `http://127.0.0.1:${targetPort}/`, ...unlimitedRate(root), "--log-level", "warn"], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  procs.push(fwd);
  const deadline = Date.now() + 30_000;
  while ((await server.call<number>("clients")) < 1) {
    if (Date.now() > deadline) throw new Error(`the forwarder of ${root} did not connect`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port: server.info.port, pids: [server.proc.pid as number, fwd.pid as number] as const };
}

type Side = Awaited<ReturnType<typeof side>>;
const url = `http://fwd:80/${size}`;

async function load(s: Side): Promise<{ rate: number; server: number; forwarder: number }> {
  const agents = Array.from({ length: concurrency }, () => agent());
  const cpu0 = s.pids.map(procCpuMs);
  const t0 = performance.now();
  let n = 0;
  await Promise.all(agents.map(async (a) => {
    while (performance.now() - t0 < seconds * 1000) {
      const r = await scrape(a, s.port, url, "fwd:80");
      if (r.status === 200) n++;
    }
  }));
  const elapsed = (performance.now() - t0) / 1000;
  const cpu1 = s.pids.map(procCpuMs);
  for (const a of agents) a.destroy();
  return { rate: n / elapsed, server: ((cpu1[0] as number) - (cpu0[0] as number)) / n, forwarder: ((cpu1[1] as number) - (cpu0[1] as number)) / n };
}

const target = await startChild<{ port: number }>(path.join(here, "static-target.ts"), [], ["--expose-gc"]);
children.push(target);
const a = await side(path.join(here, ".."), target.info.port, flags("a-node-args"));
const b = await side(path.resolve(altDir), target.info.port, flags("b-node-args"));
const rows: Record<"A" | "B", { rate: number[]; server: number[]; forwarder: number[]; p50: number[] }> = {
  A: { rate: [], server: [], forwarder: [], p50: [] },
  B: { rate: [], server: [], forwarder: [], p50: [] },
};
// Warm-up: both JITs see the load once.
await load(a);
await load(b);
console.log(`frame-ab: A = ${path.join(here, "..")}, B = ${altDir}; ${size}, ${rounds} rounds of ${seconds} s x${concurrency} (ABBA) and ${sequential} sequential scrapes each`);
console.log("round | A scrapes/s | B scrapes/s | A server ms | B server ms | A fwd ms | B fwd ms | A p50 ms | B p50 ms");
for (let i = 0; i < rounds; i++) {
  const got: Record<"A" | "B", Awaited<ReturnType<typeof load>>[]> = { A: [], B: [] };
  for (const k of ["A", "B", "B", "A"] as const) got[k].push(await load(k === "A" ? a : b));
  const seq: Record<"A" | "B", number[]> = { A: [], B: [] };
  const ag = { A: agent(), B: agent() };
  for (let j = 0; j < sequential; j++) {
    for (const k of (j % 2 === 0 ? ["A", "B"] : ["B", "A"]) as ("A" | "B")[]) {
      const r = await scrape(ag[k], (k === "A" ? a : b).port, url, "fwd:80");
      if (r.status === 200) seq[k].push(r.ms);
    }
  }
  ag.A.destroy();
  ag.B.destroy();
  for (const k of ["A", "B"] as const) {
    const avg = (f: (x: Awaited<ReturnType<typeof load>>) => number) => got[k].reduce((s, x) => s + f(x), 0) / got[k].length;
    rows[k].rate.push(avg((x) => x.rate));
    rows[k].server.push(avg((x) => x.server));
    rows[k].forwarder.push(avg((x) => x.forwarder));
    rows[k].p50.push(median(seq[k]));
  }
  const f = (v: number | undefined, d = 3) => (v ?? NaN).toFixed(d);
  console.log(`${i + 1} | ${f(rows.A.rate[i], 0)} | ${f(rows.B.rate[i], 0)} | ${f(rows.A.server[i])} | ${f(rows.B.server[i])} | ${f(rows.A.forwarder[i])} | ${f(rows.B.forwarder[i])} | ${f(rows.A.p50[i], 2)} | ${f(rows.B.p50[i], 2)}`);
}
const m = (k: "A" | "B", f: "rate" | "server" | "forwarder" | "p50", d = 3) => median(rows[k][f]).toFixed(d);
console.log(`median | ${m("A", "rate", 0)} | ${m("B", "rate", 0)} | ${m("A", "server")} | ${m("B", "server")} | ${m("A", "forwarder")} | ${m("B", "forwarder")} | ${m("A", "p50", 2)} | ${m("B", "p50", 2)}`);
for (const c of children) await c.call("stop").catch(() => {});
for (const p of procs) p.kill("SIGTERM");
process.exit(0);
