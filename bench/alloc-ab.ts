/**
 * A/B of the JS heap bytes the server allocates per sequential scrape: what a loaded, shared machine does not
 * blur (CPU figures there move by tens of percent from one round to the next; allocation does not). Our tree
 * and another checkout (`--alt=DIR`), each a server (bench/server-proc.ts, with bench/heap-probe.ts preloaded)
 * and a forwarder in front of one static exporter. Batches of `--per` sequential scrapes alternate between A and
 * B; a batch's bytes are the growth of the used heap across it, counted only when no garbage collection ran
 * meanwhile. Prints the medians, and each server's CPU time per scrape over all its batches (/proc/PID/stat,
 * 10 ms ticks; unlike the bytes, it moves with the machine's load, but A and B share it). `--prof=DIR` also writes DIR/A.heapprofile and DIR/B.heapprofile: sampling
 * allocation profiles of `--prof-scrapes` scrapes each (collected objects included), for
 * `node bench/alloc-summary.ts FILE SCRAPES`.
 *
 *   node bench/alloc-ab.ts --alt=DIR [--batches=60] [--per=20] [--size=10k] [--prof=DIR] [--prof-scrapes=2000] [--server-node-args="FLAGS"] [--out=DIR]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { openSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { startChild, type Child } from "./ipc.ts";
import { unlimitedRate } from "./rate-flags.ts";
import { agent, scrape } from "./scrape.ts";
import { median } from "./stats.ts";
import { procCpuMs } from "./proc.ts";
import { serverExecArgv, shippedNodeFlags } from "./server-flags.ts";
import { benchFlags, altDirOrExit } from "./flags.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const opt = benchFlags();
const altDir = altDirOrExit(opt, "usage: node bench/alloc-ab.ts --alt=DIR [--batches=60] [--per=20] [--size=10k] [--prof=DIR] [--prof-scrapes=2000] [--server-node-args=FLAGS] [--out=DIR]");
const batches = Number(opt.get("batches") || 60);
const per = Number(opt.get("per") || 20);
const size = opt.get("size") || "10k";
const profDir = opt.get("prof");
const profScrapes = Number(opt.get("prof-scrapes") || 2000);
/** Extra Node flags for both servers (e.g. `--trace-deopt`), and where each server's standard output goes (DIR/A.out, B.out). */
const serverNodeArgs = (opt.get("server-node-args") || "").split(" ").filter(Boolean);
const outDir = opt.get("out");

const procs: ChildProcess[] = [];
const children: Child[] = [];
process.once("exit", () => {
  for (const p of procs) p.kill("SIGKILL");
  for (const c of children) c.proc.kill("SIGKILL");
});

async function side(k: "A" | "B", root: string, targetPort: number) {
  const preload = ["--import", path.join(here, "heap-probe.ts")];
  const stdout = outDir ? openSync(path.resolve(outDir, `${k}.out`), "w") : "inherit";
  const server = await startChild<{ port: number }>(path.join(root, "bench", "server-proc.ts"), ["{}"], serverExecArgv(["--expose-gc", ...serverNodeArgs, ...preload]), undefined, stdout);
  children.push(server);
  const fwd = spawn(process.execPath, [...shippedNodeFlags, path.join(root, "src", "cli", "main.ts"), "client", "--server", `http://127.0.0.1:${server.info.port}`, "--name", "fwd", "--target", `http://127.0.0.1:${targetPort}/`, ...unlimitedRate(root), "--log-level", "warn"], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  procs.push(fwd);
  const deadline = Date.now() + 30_000;
  while ((await server.call<number>("clients")) < 1) {
    if (Date.now() > deadline) throw new Error(`the forwarder of ${root} did not connect`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { server, port: server.info.port };
}

/** Asks the child's heap probe (bench/heap-probe.ts). */
function probe<T>(c: Child, name: string, arg?: unknown): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { probed?: string; result?: T }) => {
      if (m.probed !== name) return;
      c.proc.off("message", on);
      resolve(m.result as T);
    };
    c.proc.on("message", on);
    c.proc.send({ probe: name, arg });
  });
}

const target = await startChild<{ port: number }>(path.join(here, "static-target.ts"), [], ["--expose-gc"]);
children.push(target);
const sides = { A: await side("A", path.join(here, ".."), target.info.port), B: await side("B", path.resolve(altDir), target.info.port) };
const url = `http://fwd:80/${size}`;
const ag = { A: agent(), B: agent() };
const run = async (k: "A" | "B", n: number) => {
  for (let i = 0; i < n; i++) await scrape(ag[k], sides[k].port, url, "fwd:80");
};
// Warm-up: both JITs see the load (and optimise) before anything is counted.
for (let i = 0; i < 10; i++) for (const k of ["A", "B"] as const) await run(k, 100);
const got: Record<"A" | "B", number[]> = { A: [], B: [] };
/** Each server's CPU time (user + system, all threads) across its batches, ms, and its scrapes counted. */
const cpu = { A: 0, B: 0 };
interface Heap { used: number; gcs: number }
for (let i = 0; i < batches; i++) {
  for (const k of (i % 2 === 0 ? ["A", "B"] : ["B", "A"]) as ("A" | "B")[]) {
    const h0 = await probe<Heap>(sides[k].server, "heapNow");
    const c0 = procCpuMs(sides[k].server.proc.pid!);
    await run(k, per);
    cpu[k] += procCpuMs(sides[k].server.proc.pid!) - c0;
    const h1 = await probe<Heap>(sides[k].server, "heapNow");
    if (h1.gcs === h0.gcs && h1.used >= h0.used) got[k].push((h1.used - h0.used) / per);
  }
}
console.log(`alloc-ab: A = ${path.join(here, "..")}, B = ${altDir}; ${size}, ${batches} batches of ${per} sequential scrapes each, alternating`);
for (const k of ["A", "B"] as const) {
  console.log(`${k}: server JS heap bytes allocated per scrape, median ${median(got[k]).toFixed(0)} (${got[k].length} batches without a GC); server CPU per scrape ${(cpu[k] / (batches * per)).toFixed(3)} ms (all batches, 10 ms ticks)`);
}
if (profDir) {
  for (const k of ["A", "B"] as const) {
    await probe(sides[k].server, "allocStart");
    await run(k, profScrapes);
    await probe(sides[k].server, "allocStop", path.resolve(profDir, `${k}.heapprofile`));
  }
  console.log(`allocation profiles: ${path.resolve(profDir)}/A.heapprofile, B.heapprofile (${profScrapes} scrapes each)`);
}
for (const c of children) await c.call("stop").catch(() => {});
process.exit(0);
