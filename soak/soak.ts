/**
 * Soak test (issue 5): many clients, continuous scrapes, periodic client churn
 * and server restarts, for a configurable time. Not part of `npm test`.
 *
 *   npm run soak -- --minutes 10
 *
 * Processes: this one (orchestrator and scrapers), the server (`promproxy
 * server` CLI, restarted every --restart-every seconds, alternately with
 * SIGTERM, which must exit 0, and SIGKILL), and --client-procs processes
 * holding --clients embedded clients between them, each of which stops and
 * restarts a random client every --churn-every seconds.
 *
 * Every failed scrape must be explained: it overlapped a server restart
 * window (from the signal until every client is back), or a churn window of
 * its client (from its stop until it is welcomed again). Anything else is an
 * unexplained failure. At the end, RSS and handle counts must be flat: the
 * client processes over the whole run (they live through every restart and
 * churn), the server at the end of each of its lifetimes. Prints a table as
 * it goes and a summary; exits 1 when an assertion fails.
 */
import { fork, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Counter, Gauge, Registry } from "prom-client";
import { createClient, silentLogger, type PromproxyClient } from "../src/client/index.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const self = fileURLToPath(import.meta.url);

const { values: args } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    clients: { type: "string", default: "50" },
    "client-procs": { type: "string", default: "2" },
    "restart-every": { type: "string", default: "120" },
    "churn-every": { type: "string", default: "3" },
    concurrency: { type: "string", default: "8" },
    "sample-every": { type: "string", default: "15" },
    // Internal: a client process.
    role: { type: "string" },
    server: { type: "string" },
    names: { type: "string" },
  },
  strict: true,
});

const num = (v: string | undefined, what: string) => {
  const n = Number(v);
  if (!(n > 0)) throw new Error(`--${what}: want a positive number, got ${v}`);
  return n;
};

/** Memory and handles of a process, from /proc (works for any child, whatever it runs). */
function procStats(pid: number | undefined): { rss: number; fds: number } {
  if (!pid) return { rss: 0, fds: 0 };
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    const fds = fs.readdirSync(`/proc/${pid}/fd`).length;
    return { rss, fds };
  } catch {
    return { rss: 0, fds: 0 };
  }
}

// ---------------------------------------------------------------------------------------------------------
// Client process: holds some embedded clients, churns them, reports to the orchestrator over IPC.

type ToParent =
  | { ev: "ready" }
  | { ev: "stop" | "welcomed"; name: string; at: number }
  | { ev: "stats"; id: number; heap: number; heapTotal: number; external: number; resources: number; connected: number; disconnects: number };
type ToChild = { cmd: "stats"; id: number } | { cmd: "exit" };

async function clientProcess(serverUrl: string, names: string[], churnEveryS: number): Promise<void> {
  const send = (m: ToParent) => process.send?.(m);
  const registries = new Map<string, { registry: Registry; scrapes: Counter }>();
  for (const [i, name] of names.entries()) {
    const registry = new Registry();
    new Gauge({ name: "soak_client_info", help: "The client's name.", labelNames: ["name"], registers: [registry] }).set({ name }, 1);
    const scrapes = new Counter({ name: "soak_collections_total", help: "Collections.", registers: [registry] });
    // Every tenth client serves a larger exposition (~200 KB: several chunks and a credit grant per scrape).
    if (i % 10 === 0) {
      const g = new Gauge({ name: "soak_big", help: "Bulk.", labelNames: ["series"], registers: [registry] });
      for (let k = 0; k < 4_000; k++) g.set({ series: `series-${String(k).padStart(6, "0")}-padding-padding` }, k);
    }
    registries.set(name, { registry, scrapes });
  }
  const clients = new Map<string, PromproxyClient>();
  let disconnects = 0;
  const start = (name: string) => {
    const r = registries.get(name);
    if (!r) return;
    const registry = {
      contentType: r.registry.contentType,
      metrics: async () => {
        r.scrapes.inc();
        return r.registry.metrics();
      },
    };
    const c = createClient({
      name,
      serverUrl,
      registry,
      logger: silentLogger,
      backoff: { initialMs: 100, maxMs: 1_000 },
      // The scrapers pick clients at random back to back, far faster than any Prometheus: a few clients may get more
      // than the 10 scrapes a second a registry serves by default.
      maxRegistryScrapesPerSecond: 1_000_000,
      onDisconnected: () => disconnects++,
    });
    clients.set(name, c);
    void c.start();
    c.ready().then(
      () => send({ ev: "welcomed", name, at: Date.now() }),
      () => {},
    );
  };
  for (const name of names) start(name);
  send({ ev: "ready" });

  const churn = setInterval(() => {
    const running = [...clients.keys()];
    const name = running[Math.floor(Math.random() * running.length)];
    if (!name) return;
    const c = clients.get(name);
    clients.delete(name);
    send({ ev: "stop", name, at: Date.now() });
    void c?.stop().then(() => setTimeout(() => start(name), 200 + Math.random() * 1_300));
  }, churnEveryS * 1000);

  process.on("message", (m: ToChild) => {
    if (m.cmd === "stats") {
      (globalThis as { gc?: () => void }).gc?.();
      send({
        ev: "stats",
        id: m.id,
        heap: process.memoryUsage().heapUsed,
        heapTotal: process.memoryUsage().heapTotal,
        external: process.memoryUsage().external,
        resources: process.getActiveResourcesInfo().length,
        connected: [...clients.values()].filter((c) => c.state === "connected").length,
        disconnects,
      });
    } else if (m.cmd === "exit") {
      clearInterval(churn);
      void Promise.all([...clients.values()].map((c) => c.stop())).then(() => process.exit(0));
    }
  });
}

// ---------------------------------------------------------------------------------------------------------
// Orchestrator.

interface Window {
  from: number;
  to: number;
}

interface Failure {
  name: string;
  t0: number;
  t1: number;
  what: string;
}

interface Sample {
  at: number;
  server: { rss: number; fds: number; life: number };
  clients: { rss: number; fds: number; heap: number; heapTotal: number; external: number; resources: number }[];
  connected: number;
  scrapes: number;
  ok: number;
  explained: number;
  unexplained: number;
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", () => resolve()));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

function scrape(port: number, name: string): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: "127.0.0.1", port, path: `http://${name}/metrics`, headers: { "x-prometheus-scrape-timeout-seconds": "5" }, agent: false, timeout: 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve(res.complete ? { status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() } : { error: "incomplete response" }));
        res.on("error", (e) => resolve({ error: e.message }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("no answer within 10 s")));
    req.on("error", (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    req.end();
  });
}

async function orchestrate(): Promise<number> {
  const minutes = num(args.minutes, "minutes");
  const nClients = Math.floor(num(args.clients, "clients"));
  const nProcs = Math.floor(num(args["client-procs"], "client-procs"));
  const restartEveryS = num(args["restart-every"], "restart-every");
  const churnEveryS = num(args["churn-every"], "churn-every");
  const concurrency = Math.floor(num(args.concurrency, "concurrency"));
  const sampleEveryS = num(args["sample-every"], "sample-every");
  const started = Date.now();
  const endAt = started + minutes * 60_000;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const names = Array.from({ length: nClients }, (_, i) => `soak-${String(i).padStart(3, "0")}`);
  const log = (line: string) => process.stdout.write(`${((Date.now() - started) / 1000).toFixed(0).padStart(5)}s  ${line}\n`);

  // --- server lifetimes
  const node = process.execPath;
  const cli = path.join(repoRoot, "src/cli/main.ts");
  let server: ChildProcess | undefined;
  let serverLife = 0;
  let serverOut = "";
  const problems: string[] = [];
  const startServer = async () => {
    const c = spawn(node, [cli, "server", "--listen", `127.0.0.1:${port}`, "--log-level", "error", "--shutdown-grace", "3s", "--heartbeat-interval", "2s"], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    serverOut = "";
    c.stdout.on("data", (b: Buffer) => (serverOut = (serverOut + b.toString()).slice(-4_000)));
    c.stderr.on("data", (b: Buffer) => (serverOut = (serverOut + b.toString()).slice(-4_000)));
    const t0 = Date.now();
    while (!/listening on/.test(serverOut)) {
      if (c.exitCode !== null) throw new Error(`the server exited at start:\n${serverOut}`);
      if (Date.now() - t0 > 20_000) throw new Error(`the server did not start:\n${serverOut}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    server = c;
    serverLife++;
  };
  await startServer();

  // --- client processes
  const procs: ChildProcess[] = [];
  const stoppedNow = new Map<string, number>(); // name -> stop time, while churned out
  const churnWindows = new Map<string, Window[]>();
  let churnEvents = 0;
  const statsWaiters = new Map<number, (m: Extract<ToParent, { ev: "stats" }>) => void>();
  for (let p = 0; p < nProcs; p++) {
    const mine = names.filter((_, i) => i % nProcs === p);
    const child = fork(self, ["--role", "clients", "--server", url, "--names", mine.join(","), "--churn-every", String(churnEveryS * nProcs)], {
      execArgv: ["--expose-gc"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    child.on("message", (m: ToParent) => {
      if (m.ev === "stop") {
        stoppedNow.set(m.name, m.at);
        churnEvents++;
      } else if (m.ev === "welcomed") {
        const from = stoppedNow.get(m.name);
        if (from !== undefined) {
          stoppedNow.delete(m.name);
          const list = churnWindows.get(m.name) ?? [];
          list.push({ from: from - 50, to: m.at + 500 });
          churnWindows.set(m.name, list);
        }
      } else if (m.ev === "stats") {
        statsWaiters.get(m.id)?.(m);
      }
    });
    procs.push(child);
  }
  let statsId = 0;
  const childStats = (child: ChildProcess) =>
    new Promise<Extract<ToParent, { ev: "stats" }>>((resolve) => {
      const id = ++statsId;
      const timer = setTimeout(() => resolve({ ev: "stats", id, heap: 0, heapTotal: 0, external: 0, resources: 0, connected: 0, disconnects: 0 }), 5_000);
      statsWaiters.set(id, (m) => {
        clearTimeout(timer);
        statsWaiters.delete(id);
        resolve(m);
      });
      child.send({ cmd: "stats", id } satisfies ToChild);
    });

  const listed = async (): Promise<number> => {
    try {
      const r = await fetch(`${url}/clients`, { signal: AbortSignal.timeout(2_000) });
      return ((await r.json()) as unknown[]).length;
    } catch {
      return -1;
    }
  };
  const allBack = async (from: number, budgetMs: number): Promise<number> => {
    for (;;) {
      const n = await listed();
      if (n >= nClients - stoppedNow.size) return Date.now() - from;
      if (Date.now() - from > budgetMs) return -1;
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const first = await allBack(Date.now(), 30_000);
  if (first < 0) throw new Error("the clients did not all connect within 30 s");
  log(`server on ${url}, ${nClients} clients in ${nProcs} processes connected in ${first} ms; running ${minutes} min`);

  // --- scrapers
  let scrapes = 0;
  let ok = 0;
  const failures: Failure[] = [];
  const restartWindows: Window[] = [];
  let stopping = false;
  const scraper = async () => {
    while (!stopping) {
      const name = names[Math.floor(Math.random() * names.length)] as string;
      const t0 = Date.now();
      const r = await scrape(port, name);
      const t1 = Date.now();
      scrapes++;
      if ("status" in r && r.status === 200 && r.body.includes(`soak_client_info{name="${name}"} 1`)) ok++;
      else {
        failures.push({ name, t0, t1, what: "status" in r ? `${r.status} ${r.body.slice(0, 80).trim()}` : r.error });
        // Do not spin on a port nobody listens on while the server restarts.
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  };
  const scrapers = Array.from({ length: concurrency }, scraper);

  const overlaps = (f: Failure, w: Window) => f.t0 <= w.to && f.t1 >= w.from;
  const classify = () => {
    let explained = 0;
    const unexplained: Failure[] = [];
    const now = Date.now();
    for (const f of failures) {
      const open: Window[] = [...restartWindows, ...(churnWindows.get(f.name) ?? [])];
      const stoppedAt = stoppedNow.get(f.name);
      if (stoppedAt !== undefined) open.push({ from: stoppedAt - 50, to: now });
      if (open.some((w) => overlaps(f, w))) explained++;
      else unexplained.push(f);
    }
    return { explained, unexplained };
  };

  // --- samples, restarts
  const samples: Sample[] = [];
  const lifeEnds: { life: number; rss: number; fds: number }[] = [];
  const sample = async () => {
    const [cs, ...rest] = await Promise.all(procs.map((p) => childStats(p)));
    const all = [cs, ...rest].filter((x) => x !== undefined);
    const { explained, unexplained } = classify();
    const s: Sample = {
      at: Date.now() - started,
      server: { ...procStats(server?.pid), life: serverLife },
      clients: procs.map((p, i) => ({
        ...procStats(p.pid),
        heap: all[i]?.heap ?? 0,
        heapTotal: all[i]?.heapTotal ?? 0,
        external: all[i]?.external ?? 0,
        resources: all[i]?.resources ?? 0,
      })),
      connected: await listed(),
      scrapes,
      ok,
      explained,
      unexplained: unexplained.length,
    };
    samples.push(s);
    const mb = (b: number) => (b / 2 ** 20).toFixed(1).padStart(6);
    log(
      `server#${s.server.life} rss ${mb(s.server.rss)} MiB fds ${String(s.server.fds).padStart(4)} | ` +
        s.clients.map((c, i) => `c${i} rss ${mb(c.rss)} heap ${mb(c.heap)}/${mb(c.heapTotal)} ext ${mb(c.external)} fds ${String(c.fds).padStart(3)} res ${String(c.resources).padStart(3)}`).join(" | ") +
        ` | listed ${String(s.connected).padStart(3)} | scrapes ${s.scrapes} ok ${s.ok} explained ${s.explained} unexplained ${s.unexplained}`,
    );
    return s;
  };

  let nextRestart = Date.now() + restartEveryS * 1000;
  let nextSample = Date.now();
  let restarts = 0;
  const backTimes: number[] = [];
  while (Date.now() < endAt) {
    if (Date.now() >= nextSample) {
      await sample();
      nextSample += sampleEveryS * 1000;
    }
    if (Date.now() >= nextRestart && Date.now() < endAt - 30_000 && server) {
      const graceful = restarts % 2 === 0;
      const end = procStats(server.pid);
      lifeEnds.push({ life: serverLife, ...end });
      const w: Window = { from: Date.now(), to: Infinity };
      restartWindows.push(w);
      const old = server;
      const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => old.once("exit", (c, s) => resolve([c, s])));
      old.kill(graceful ? "SIGTERM" : "SIGKILL");
      const [code, signal] = await exited;
      if (graceful && code !== 0) problems.push(`server #${serverLife} exited with ${code ?? signal} on SIGTERM:\n${serverOut}`);
      await startServer();
      const back = await allBack(w.from, 60_000);
      w.to = Date.now() + 1_000;
      restarts++;
      backTimes.push(back);
      log(`restart ${restarts} (${graceful ? "SIGTERM, exit " + String(code) : "SIGKILL"}): every client back after ${back < 0 ? "NEVER" : back + " ms"}`);
      if (back < 0) problems.push(`after restart ${restarts} the clients did not all come back within 60 s`);
      nextRestart = Date.now() + restartEveryS * 1000;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  stopping = true;
  await Promise.all(scrapers);
  const last = await sample();
  lifeEnds.push({ life: serverLife, rss: last.server.rss, fds: last.server.fds });

  // --- shut down
  for (const p of procs) p.send({ cmd: "exit" } satisfies ToChild);
  await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once("exit", r)))));
  if (server) {
    const s = server;
    const exited = new Promise<number | null>((resolve) => s.once("exit", (c) => resolve(c)));
    s.kill("SIGTERM");
    const code = await exited;
    if (code !== 0) problems.push(`the last server exited with ${code} on SIGTERM`);
  }

  // --- verdict
  const { explained, unexplained } = classify();
  const kinds = new Map<string, number>();
  for (const f of failures) {
    const k = f.what.replace(/"[^"]*"/g, '"…"').slice(0, 60);
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length === 0 ? 0 : (s[Math.floor((s.length - 1) / 2)] as number);
  };
  const runMs = last.at;
  const inRange = (lo: number, hi: number) => samples.filter((s) => s.at >= runMs * lo && s.at <= runMs * hi);
  const early = inRange(0.2, 0.45);
  const late = inRange(0.75, 1);
  const flat: string[] = [];
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const checkFlat = (what: string, a: number, b: number, relative: number, absolute: number, fmt: (n: number) => string) => {
    const okay = b - a <= Math.max(a * relative, absolute);
    flat.push(`${okay ? "ok  " : "FAIL"} ${what}: ${fmt(a)} -> ${fmt(b)}`);
    if (!okay) problems.push(`${what} grew from ${fmt(a)} to ${fmt(b)}`);
  };
  for (let i = 0; i < procs.length; i++) {
    const pick = (xs: Sample[], f: (c: Sample["clients"][number]) => number) => median(xs.map((s) => f(s.clients[i] as Sample["clients"][number])));
    checkFlat(`client process ${i} RSS (median of 20-45% vs 75-100% of the run)`, pick(early, (c) => c.rss), pick(late, (c) => c.rss), 0.2, 16 * 2 ** 20, mb);
    checkFlat(`client process ${i} heap after GC`, pick(early, (c) => c.heap), pick(late, (c) => c.heap), 0.2, 8 * 2 ** 20, mb);
    checkFlat(`client process ${i} open fds`, pick(early, (c) => c.fds), pick(late, (c) => c.fds), 0, 8, String);
    checkFlat(`client process ${i} active handles`, pick(early, (c) => c.resources), pick(late, (c) => c.resources), 0, 8, String);
  }
  if (lifeEnds.length >= 2) {
    const firstEnd = lifeEnds[0] as { rss: number; fds: number };
    const lastEnd = lifeEnds[lifeEnds.length - 1] as { rss: number; fds: number };
    checkFlat("server RSS at the end of its first vs its last lifetime", firstEnd.rss, lastEnd.rss, 0.25, 16 * 2 ** 20, mb);
    checkFlat("server open fds at the end of its first vs its last lifetime", firstEnd.fds, lastEnd.fds, 0, 8, String);
  }
  if (unexplained.length > 0) problems.push(`${unexplained.length} unexplained failed scrapes`);
  if (ok === 0) problems.push("no scrape succeeded");

  const row = (k: string, v: string | number) => `  ${k.padEnd(44)} ${v}\n`;
  process.stdout.write(
    "\nsoak summary\n" +
      row("duration", `${(runMs / 60_000).toFixed(1)} min`) +
      row("clients / client processes", `${nClients} / ${nProcs}`) +
      row("scrapers (concurrent)", concurrency) +
      row("scrapes", scrapes) +
      row("  succeeded", ok) +
      row("  failed, explained (restart or churn window)", explained) +
      row("  failed, unexplained", unexplained.length) +
      row("scrapes per second", (scrapes / (runMs / 1000)).toFixed(0)) +
      row("server restarts (SIGTERM / SIGKILL alternately)", restarts) +
      row("time until every client was back (ms)", backTimes.join(", ") || "-") +
      row("client churn events (stop + restart)", churnEvents) +
      "\nfailures by kind\n" +
      ([...kinds].map(([k, v]) => row(k, v)).join("") || "  none\n") +
      "\nserver at the end of each lifetime\n" +
      lifeEnds.map((l) => row(`lifetime ${l.life}`, `rss ${mb(l.rss)}, fds ${l.fds}`)).join("") +
      "\nflatness\n" +
      flat.map((l) => `  ${l}\n`).join("") +
      (unexplained.length > 0 ? "\nunexplained failures (first 20)\n" + unexplained.slice(0, 20).map((f) => `  ${new Date(f.t0).toISOString()} ${f.name} ${f.t1 - f.t0} ms: ${f.what}\n`).join("") : "") +
      (problems.length > 0 ? `\nFAILED\n${problems.map((p) => `  - ${p}\n`).join("")}` : "\nPASSED\n"),
  );
  return problems.length > 0 ? 1 : 0;
}

if (args.role === "clients") {
  await clientProcess(args.server ?? "", (args.names ?? "").split(",").filter(Boolean), num(args["churn-every"], "churn-every"));
} else {
  process.exitCode = await orchestrate();
}
