/**
 * The storm section of `npm run bench` (opt-in: --only=storm): N clients connected, the server is killed
 * (SIGKILL) and a new one started on the same port after `downSeconds` (0: at once; a restart that takes
 * longer lets the clients' backoff grow towards its cap); seconds from the kill and from the new server
 * listening until every client is welcomed again, the new server's peak RSS (VmHWM, i.e. since its start:
 * the storm) and its RSS once settled, the streams it refused (by code) and the clients' failed attempts
 * (by code: Unavailable while nothing listens, ResourceExhausted when the server sheds load). Server and
 * load: idle-fleet.ts.
 */
import { freePort, sleep, startLoad, startServer, waitConnected, type IdleConfig, type Mem } from "./idle-fleet.ts";
import * as fs from "node:fs";
import { procCpuMs, procHwm } from "./proc.ts";
import { squeeze, type Squeeze } from "./storm-squeeze.ts";

/** The machine's TcpExt ListenOverflows (connections dropped at a full accept queue, every process), or NaN. */
function listenOverflows(): number {
  try {
    const lines = fs.readFileSync("/proc/net/netstat", "utf8").split("\n").filter((l) => l.startsWith("TcpExt:"));
    const [names, values] = lines.map((l) => l.split(/\s+/));
    const i = names?.indexOf("ListenOverflows") ?? -1;
    return i > 0 ? Number(values?.[i]) : NaN;
  } catch {
    return NaN;
  }
}

export interface StormResult {
  clients: number;
  /** Seconds between the kill and the new server's start. */
  downSeconds: number;
  /** SYNs dropped at a full accept queue from the kill until all were back (the whole machine's count). */
  listenOverflows: number;
  /** Streams the new server refused, by Connect code. */
  refused: Record<string, number>;
  /** The clients' failed attempts from the kill until all were back, by Connect code. */
  attemptErrors: Record<string, number>;
  /** Seconds from the SIGKILL to every client welcomed by the new server. */
  allBackSeconds: number;
  /** Seconds from the new server listening to every client welcomed. */
  fromListenSeconds: number;
  /** The new server's peak RSS (VmHWM) during the storm, and its RSS after settling, bytes. */
  peakRss: number;
  settledRss: number;
  /** Clients back at the end (of `clients`). */
  back: number;
  /** Seconds to 50%, 90%, 99% of the clients back (from the kill). */
  quantiles: { q50: number; q90: number; q99: number };
  serverCpuMs: number;
}

const sum = (rs: Record<string, number>[]) => {
  const out: Record<string, number> = {};
  for (const r of rs) for (const [k, v] of Object.entries(r)) out[k] = (out[k] ?? 0) + v;
  return out;
};

/** "Code n, Code n" (or "none"). */
export const byCode = (r: Record<string, number>) => Object.entries(r).map(([k, v]) => `${k} ${v}`).join(", ") || "none";

export async function stormSection(cfg: IdleConfig, n: number, downSeconds = 0, squeezed?: Squeeze): Promise<StormResult> {
  const port = await freePort();
  const first = await startServer(n, port, cfg, "storm-server-1");
  const loads = await startLoad(n, port, cfg, 100);
  const c0 = await waitConnected(first, n, 120_000);
  if (c0 < n) cfg.log(`  storm: only ${c0} of ${n} connected before the kill`);
  await sleep(3000);
  const errors = async () => sum(await Promise.all(loads.map((l) => l.call<Record<string, number>>("errors"))));
  const errors0 = await errors();
  const overflows0 = listenOverflows();
  const tKill = performance.now();
  first.proc.kill("SIGKILL");
  await new Promise<void>((r) => (first.proc.exitCode !== null || first.proc.signalCode !== null ? r() : first.proc.once("exit", () => r())));
  await sleep(downSeconds * 1000);
  const second = await startServer(n, port, cfg, "storm-server-2");
  const tListen = performance.now();
  const pid = second.proc.pid as number;
  // The overload on demand: the new server on a share of the given CPUs until every client is back.
  const unsqueeze = squeezed ? squeeze(pid, squeezed) : () => {};
  if (squeezed) cfg.log(`  storm: new server pinned to CPUs ${squeezed.cpus} beside ${squeezed.burners} busy-loop process(es)`);
  const cpu0 = procCpuMs(pid);
  const marks: { q50?: number; q90?: number; q99?: number } = {};
  const back = await waitConnected(second, n, 180_000, (c, _ms) => {
    const s = (performance.now() - tKill) / 1000;
    if (marks.q50 === undefined && c >= n * 0.5) marks.q50 = s;
    if (marks.q90 === undefined && c >= n * 0.9) marks.q90 = s;
    if (marks.q99 === undefined && c >= n * 0.99) marks.q99 = s;
  });
  const allBack = (performance.now() - tKill) / 1000;
  unsqueeze();
  const fromListen = (performance.now() - tListen) / 1000;
  const serverCpuMs = procCpuMs(pid) - cpu0;
  const peakRss = procHwm(pid);
  const errors1 = await errors();
  const attemptErrors = Object.fromEntries(Object.entries(errors1).map(([k, v]) => [k, v - (errors0[k] ?? 0)]).filter(([, v]) => (v as number) > 0));
  const refused = await second.call<Record<string, number>>("refused");
  const overflows = listenOverflows() - overflows0;
  await sleep(3000);
  const settled = await second.call<Mem>("memNow");
  const r: StormResult = {
    clients: n,
    downSeconds,
    listenOverflows: overflows,
    refused,
    attemptErrors,
    allBackSeconds: back >= n ? allBack : NaN,
    fromListenSeconds: back >= n ? fromListen : NaN,
    peakRss,
    settledRss: settled.rss,
    back,
    quantiles: { q50: marks.q50 ?? NaN, q90: marks.q90 ?? NaN, q99: marks.q99 ?? NaN },
    serverCpuMs,
  };
  cfg.log(
    `  storm ${n} (down ${downSeconds} s): ${back} of ${n} back ${Number.isFinite(r.allBackSeconds) ? `in ${allBack.toFixed(1)} s after the kill, ${fromListen.toFixed(1)} s after the new listen` : "(NOT all back)"} ` +
      `(50% ${r.quantiles.q50.toFixed(1)} s, 90% ${r.quantiles.q90.toFixed(1)} s, 99% ${r.quantiles.q99.toFixed(1)} s); new server peak RSS ${(peakRss / 1048576).toFixed(0)} MiB, settled ${(settled.rss / 1048576).toFixed(0)} MiB; ` +
      `refused ${byCode(refused)}; failed attempts ${byCode(attemptErrors)}; listen overflows ${overflows}`,
  );
  await Promise.all(loads.map((l) => l.stop(30_000).catch(() => {})));
  await second.stop().catch(() => {});
  return r;
}
