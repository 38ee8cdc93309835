/**
 * The status bench: what the server's own pages cost while it holds many
 * clients. `npx node bench/status.ts [--clients=4000] [--pollers=4]
 * [--seconds=6] [--before=DIR]`.
 *
 * A server (bench/server-proc.ts) holds `--clients` lean Scrape streams from a
 * load child (status-clients.ts: raw HTTP/2, two targets each, every tenth
 * client's second target failing); every target is scraped once so that the
 * page has a last scrape for each. Then, for each of quiet, `/`,
 * `/status.json`, `/clients` and `/metrics`: `--pollers` loops in a poller
 * child (status-poller.ts) request that path back to back for `--seconds`
 * while the driver scrapes random clients one after another; the table shows
 * polls per second, the scrapes' p50/p90/p99 and the server's CPU.
 *
 * `--cpu-prof=DIR`: CPU profiles of the servers in DIR/before and DIR/after.
 *
 * `--before=DIR`: the same run first against a server started from DIR (a
 * checkout of the unchanged code with node_modules: `git archive BASE | tar
 * -x -C DIR`), so that before and after come from one run on one machine.
 */
import * as http from "node:http";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { startChild } from "./ipc.ts";
import { procCpuMs } from "./proc.ts";
import { fmtMs, quantile, table } from "./stats.ts";
import { serverExecArgv } from "./server-flags.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const flag = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const clients = Number(flag("clients", "4000"));
const pollers = Number(flag("pollers", "4"));
const seconds = Number(flag("seconds", "6"));
const before = flag("before", "");
const paths = flag("paths", "quiet,/,/status.json,/clients,/metrics").split(",");
/** `--cpu-prof=DIR`: the server writes a CPU profile there (summarise with bench/prof-summary.ts). */
const cpuProf = flag("cpu-prof", "");

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
function scrape(port: number, target: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: `http://${target}/metrics`, agent }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
  });
}

/** One GET of a local path on a fresh connection: ms to the last byte. */
function timedGet(port: number, path: string): Promise<number> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    http.get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(performance.now() - t));
    }).on("error", reject);
  });
}

/** What one build costs: requests of a path spaced more than a second apart (each builds anew), median ms. */
const cold: string[][] = [];

async function run(system: string, root: string): Promise<string[][]> {
  const server = await startChild<{ port: number }>(path.join(root, "bench/server-proc.ts"), [JSON.stringify({ replicaCount: 1 }), "{}"], serverExecArgv(cpuProf ? ["--cpu-prof", `--cpu-prof-dir=${cpuProf}/${system}`] : []));
  const port = server.info.port;
  const pid = server.proc.pid as number;
  const load = await startChild(path.join(here, "status-clients.ts"), [JSON.stringify({ serverPort: port, count: clients, prefix: "c" })], []);
  const poller = await startChild(path.join(here, "status-poller.ts"), [JSON.stringify({ serverPort: port })], []);
  const rows: string[][] = [];
  try {
    await load.call("connect");
    const deadline = Date.now() + 180_000;
    while ((await load.call<number>("welcomed")) < clients) {
      if (Date.now() > deadline) throw new Error(`only ${await load.call("welcomed")} of ${clients} clients welcomed`);
      await new Promise((r) => setTimeout(r, 250));
    }
    // Every target scraped once: a last scrape per client (and per target, where the server keeps that).
    const targets = Array.from({ length: clients }, (_, i) => [`c-${i}:9100`, ...(i % 10 === 0 ? [`c-${i}:9200`] : [])]).flat();
    for (let i = 0; i < targets.length; i += 16) await Promise.all(targets.slice(i, i + 16).map((t) => scrape(port, t)));

    for (const p of ["/", "/status.json", "/metrics"]) {
      const samples: number[] = [];
      for (let i = 0; i < 5; i++) {
        await new Promise((r) => setTimeout(r, 1_100));
        samples.push(await timedGet(port, p));
      }
      cold.push([system, p, fmtMs(quantile(samples, 0.5)), fmtMs(Math.max(...samples))]);
    }

    for (const p of paths) {
      const cpu0 = procCpuMs(pid);
      const t0 = performance.now();
      const polled = p === "quiet" ? Promise.resolve({ requests: 0, bytes: 0 }) : poller.call<{ requests: number; bytes: number }>("poll", { path: p, pollers, seconds });
      const lat: number[] = [];
      let failed = 0;
      while (performance.now() - t0 < seconds * 1000) {
        const s = performance.now();
        const status = await scrape(port, `c-${Math.floor(Math.random() * clients)}:9100`);
        lat.push(performance.now() - s);
        if (status !== 200) failed++;
      }
      const { requests, bytes } = await polled;
      const wall = (performance.now() - t0) / 1000;
      const cpu = procCpuMs(pid) - cpu0;
      rows.push([
        system,
        p === "quiet" ? "quiet" : `${pollers} x ${p}`,
        (requests / wall).toFixed(0),
        requests ? `${(bytes / requests / 1024).toFixed(0)} KiB` : "-",
        String(lat.length),
        fmtMs(quantile(lat, 0.5)),
        fmtMs(quantile(lat, 0.9)),
        fmtMs(quantile(lat, 0.99)),
        String(failed),
        `${((cpu / (wall * 1000)) * 100).toFixed(0)}%`,
      ]);
      const [welcomed, ended] = [await load.call<number>("welcomed"), await load.call<number>("ended")];
      process.stderr.write(`${rows.at(-1)?.join(" ")} (streams welcomed ${welcomed}, ended ${ended})\n`);
    }
  } finally {
    await poller.stop();
    await load.stop();
    await server.stop(5_000);
  }
  return rows;
}

const rows: string[][] = [];
if (before) rows.push(...(await run("before", before)));
rows.push(...(await run("after", path.resolve(here, ".."))));
agent.destroy();
console.log(`\n${clients} clients (two targets each), ${pollers} pollers back to back, ${seconds} s per row, scrapes one after another\n`);
console.log(table(["system", "path", "one cold request, p50 ms", "max ms"], cold));
console.log("");
console.log(table(["system", "polled", "polls/s", "body", "scrapes", "p50 ms", "p90 ms", "p99 ms", "failed", "server CPU"], rows));
