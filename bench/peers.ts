/**
 * The peers bench: what replicas that know each other (`peers`) cost while
 * idle. `npx node bench/peers.ts [--clients=1000] [--seconds=20]`.
 *
 * Three servers (bench/server-proc.ts) on loopback ports, each holding the
 * same `--clients` lean streams (status-clients.ts: every client on every
 * replica, as clients hold them today), first without peers, then with each
 * other as peers (polled every second). Per run: each replica's CPU over
 * `--seconds` of quiet and its RSS. With peers also: the state polls received
 * per second, the size of one replica's full state, the bytes of one 304 poll
 * on the wire (request and answer), and what parsing a full state costs the
 * poller (the work each changed state means).
 */
import * as net from "node:net";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { silentLogger } from "../src/shared/logger.ts";
import { createPeerAuth } from "../src/server/peers/peer-auth.ts";
import { parsePeerState, peerStatePath } from "../src/server/peers/peer-state.ts";
import { startChild, type Child } from "./ipc.ts";
import { procCpuMs, procRss } from "./proc.ts";
import { freePort } from "../test/e2e/prometheus.ts";
import { serverExecArgv } from "./server-flags.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const flag = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const clients = Number(flag("clients", "1000"));
const seconds = Number(flag("seconds", "20"));
const secret = "bench-peer-secret-0123456789abcdef";
const auth = createPeerAuth({ secret, replicaId: "bench", clockSkewMs: 10_000, maxNonces: 1000, logger: silentLogger });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One raw HTTP/1.1 exchange: bytes sent, bytes received, the answer's text. */
function raw(port: number, headers: Record<string, string>): Promise<{ sent: number; received: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = `GET ${peerStatePath} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("")}Connection: close\r\n\r\n`;
    const chunks: Buffer[] = [];
    const s = net.connect(port, "127.0.0.1", () => s.write(req));
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("error", reject);
    s.on("close", () => {
      const all = Buffer.concat(chunks);
      resolve({ sent: Buffer.byteLength(req), received: all.length, text: all.toString() });
    });
  });
}

async function metric(port: number, series: string): Promise<number> {
  await sleep(1_100); // /metrics is rebuilt at most once a second
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

async function run(withPeers: boolean) {
  const ports = [await freePort(), await freePort(), await freePort()];
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const servers: Child[] = [];
  const loads: Child[] = [];
  try {
    for (const [i, port] of ports.entries()) {
      const options = { replicaId: `r${i + 1}`, ...(withPeers ? { peers: urls, peerSecret: secret } : {}) };
      servers.push(await startChild(path.join(here, "server-proc.ts"), [JSON.stringify(options), JSON.stringify({ port })], serverExecArgv(["--expose-gc"])));
    }
    for (const port of ports) {
      const load = await startChild(path.join(here, "status-clients.ts"), [JSON.stringify({ serverPort: port, count: clients, prefix: "c" })], []);
      loads.push(load);
      await load.call("connect");
    }
    for (const l of loads) while ((await l.call<number>("welcomed")) < clients) await sleep(100);
    await sleep(3_000);
    const polls0 = withPeers ? await metric(ports[0]!, 'promproxy_peer_requests_total{kind="state",result="accepted"}') : 0;
    const cpu0 = servers.map((s) => procCpuMs(s.proc.pid!));
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const wall = (performance.now() - t0) / 1000;
    const cpu = servers.map((s, i) => (procCpuMs(s.proc.pid!) - cpu0[i]!) / wall);
    const rss = servers.map((s) => procRss(s.proc.pid!) / 1024 / 1024);
    const heap = await Promise.all(servers.map((s) => s.call<{ heapUsed: number }>("memNow")));
    const out: Record<string, string> = {
      mode: withPeers ? "3 peers" : "no peers",
      "CPU ms/s per replica": cpu.map((c) => c.toFixed(1)).join(" / "),
      "RSS MiB": rss.map((r) => r.toFixed(0)).join(" / "),
      "heap used after GC, MiB": heap.map((h) => (h.heapUsed / 1024 / 1024).toFixed(1)).join(" / "),
    };
    if (withPeers) {
      const polls1 = await metric(ports[0]!, 'promproxy_peer_requests_total{kind="state",result="accepted"}');
      out["state polls/s received by r1"] = ((polls1 - polls0) / (wall + 1.1)).toFixed(1);
      const full = await raw(ports[0]!, { "x-promproxy-peer": auth.sign("GET", peerStatePath, undefined, "") });
      const etag = /^etag: (.*)$/im.exec(full.text)?.[1]?.trim() ?? "";
      const body = full.text.slice(full.text.indexOf("\r\n\r\n") + 4);
      const unchanged = await raw(ports[0]!, { "x-promproxy-peer": auth.sign("GET", peerStatePath, undefined, ""), "if-none-match": etag });
      out["full state bytes"] = String(body.length);
      out["304 poll bytes (sent+received)"] = `${unchanged.sent}+${unchanged.received} (${unchanged.text.split("\r\n")[0]})`;
      const t = performance.now();
      for (let i = 0; i < 20; i++) parsePeerState(body);
      out["parse of a full state, ms"] = ((performance.now() - t) / 20).toFixed(2);
    }
    return out;
  } finally {
    await Promise.all(loads.map((l) => l.stop()));
    await Promise.all(servers.map((s) => s.stop()));
  }
}

const results = [await run(false), await run(true)];
for (const r of results) console.log(Object.entries(r).map(([k, v]) => `${k}: ${v}`).join("\n") + "\n");
