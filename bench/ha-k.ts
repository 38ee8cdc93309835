/**
 * K of N: what each replica costs when each client holds K of 3 replicas
 * (`replicasPerClient`). `npx node bench/ha-k.ts [--clients=10000] [--seconds=20] [--k=1,2,3]`.
 *
 * Per K: three servers (bench/server-proc.ts) that know each other (`peers`,
 * `replicasPerClient` K), then `--clients` lean idle streams
 * (bench/status-clients.ts), each client connected straight to the K replicas
 * rendezvous hashing assigns it (the steady state clients reach through a
 * balancer). Printed per replica: clients held, CPU over `--seconds` of quiet
 * (heartbeats, peer polls), RSS, and heap used after GC. K 3 is every replica
 * holding every client (as `replicasPerClient` 0).
 */
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { startChild, type Child } from "./ipc.ts";
import { procCpuMs, procRss } from "./proc.ts";
import { freePort } from "../test/e2e/prometheus.ts";
import { serverExecArgv } from "./server-flags.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const flag = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const clients = Number(flag("clients", "10000"));
const seconds = Number(flag("seconds", "20"));
const ks = flag("k", "1,2,3").split(",").map(Number);
const secret = "bench-peer-secret-0123456789abcdef";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ids = ["r1", "r2", "r3"];

async function run(k: number) {
  const ports = [await freePort(), await freePort(), await freePort()];
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const servers: Child[] = [];
  const loads: Child[] = [];
  try {
    for (const [i, port] of ports.entries()) {
      const options = { replicaId: ids[i], peers: urls, peerSecret: secret, replicasPerClient: k, maxClients: clients + 1000 };
      servers.push(await startChild(path.join(here, "server-proc.ts"), [JSON.stringify(options), JSON.stringify({ port, maxConnections: clients, maxConnectionsPerAddress: clients })], serverExecArgv(["--expose-gc"])));
    }
    // The set is known once every replica heard from the others: before that every hello is taken.
    for (const u of urls) while ((await fetch(`${u}/readyz`).then((r) => r.status, () => 0)) !== 200) await sleep(100);
    await sleep(2_000);
    const want: number[] = [];
    for (const [i, port] of ports.entries()) {
      const load = await startChild(path.join(here, "status-clients.ts"), [JSON.stringify({ serverPort: port, count: clients, prefix: "c", only: { ids, self: ids[i], k } })], []);
      loads.push(load);
      want.push(await load.call<number>("connect"));
    }
    for (const [i, l] of loads.entries()) while ((await l.call<number>("welcomed")) < want[i]!) await sleep(200);
    await sleep(5_000);
    const cpu0 = servers.map((s) => procCpuMs(s.proc.pid!));
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const wall = (performance.now() - t0) / 1000;
    const cpu = servers.map((s, i) => (procCpuMs(s.proc.pid!) - cpu0[i]!) / wall);
    const rss = servers.map((s) => procRss(s.proc.pid!) / 1024 / 1024);
    const heap = await Promise.all(servers.map((s) => s.call<{ heapUsed: number }>("memNow")));
    const held = await Promise.all(servers.map((s) => s.call<number>("connected")));
    return {
      k,
      "clients held per replica": held.join(" / "),
      "CPU ms/s per replica": cpu.map((c) => c.toFixed(1)).join(" / "),
      "RSS MiB per replica": rss.map((r) => r.toFixed(0)).join(" / "),
      "heap used after GC, MiB": heap.map((h) => (h.heapUsed / 1024 / 1024).toFixed(1)).join(" / "),
    };
  } finally {
    await Promise.all(loads.map((l) => l.stop()));
    await Promise.all(servers.map((s) => s.stop()));
  }
}

console.log(`${clients} clients over 3 replicas that know each other; idle; ${seconds} s of CPU per run`);
for (const k of ks) {
  const r = await run(k);
  console.log(Object.entries(r).map(([name, v]) => `${name}: ${v}`).join("\n") + "\n");
}
