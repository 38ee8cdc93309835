/**
 * The processes of the forwarder section that are not bench children with IPC: the `promproxy client`
 * forwarder (the CLI, as the image runs it: node with the ENTRYPOINT's flags, `shippedNodeFlags`) and a
 * locally built PushProx proxy + client pair. All are killed when the driver exits.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as http from "node:http";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { Child } from "./ipc.ts";
import { unlimitedRate } from "./rate-flags.ts";
import { shippedNodeFlags } from "./server-flags.ts";

const here = path.dirname(fileURLToPath(import.meta.url));

/** The name the forwarder registers under. */
export const name = "fwd";

/** Children without an IPC channel (they would outlive a driver that dies): killed when the driver exits. */
const spawned = new Set<ChildProcess>();
process.once("exit", () => {
  for (const p of spawned) p.kill("SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    for (const p of spawned) p.kill("SIGKILL");
    process.exit(130);
  });
}
function track(p: ChildProcess): ChildProcess {
  spawned.add(p);
  p.once("exit", () => spawned.delete(p));
  return p;
}

/**
 * Starts `promproxy client` as the image would (its node flags, then `nodeArgs`), and waits until the server lists
 * it. `root`: the checkout whose CLI runs; `stdout`: a file descriptor for its standard output (discarded by default).
 */
export async function startForwarder(serverPort: number, targetPort: number, server: Child, nodeArgs: string[], root = path.join(here, ".."), stdout: "ignore" | number = "ignore"): Promise<ChildProcess> {
  const cli = path.join(root, "src", "cli", "main.ts");
  const proc = track(spawn(
    process.execPath,
    [...shippedNodeFlags, ...nodeArgs, cli, "client", "--server", `http://127.0.0.1:${serverPort}`, "--name", name, "--target", `http://127.0.0.1:${targetPort}/`, ...unlimitedRate(root), "--log-level", "warn"],
    { stdio: ["ignore", stdout, "inherit"] },
  ));
  const deadline = Date.now() + 30_000;
  while ((await server.call<number>("clients")) < 1) {
    if (proc.exitCode !== null) throw new Error(`promproxy client exited (${proc.exitCode})`);
    if (Date.now() > deadline) throw new Error("promproxy client did not connect within 30 s");
    await new Promise((r) => setTimeout(r, 100));
  }
  return proc;
}

export function stopProc(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => p.kill("SIGKILL"), 5000);
    p.once("exit", () => {
      clearTimeout(t);
      resolve();
    });
    p.kill("SIGTERM");
  });
}

/** A locally built PushProx proxy + client pair (never committed; see bench/README.md). */
export async function startPushProx(pp: { proxy: string; client: string }, targetPort: number): Promise<{ port: number; procs: ChildProcess[] }> {
  const port = await freePort();
  const proxy = track(spawn(pp.proxy, [`--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"], { stdio: ["ignore", "ignore", "inherit"] }));
  await waitHttp(port, "/clients");
  // The client polls the proxy and scrapes the URL Prometheus asked for: it must resolve `name` itself,
  // so the driver asks for http://127.0.0.1:TARGET/... with the client's --fqdn set to that host:port.
  const client = track(spawn(pp.client, [`--proxy-url=http://127.0.0.1:${port}/`, `--fqdn=127.0.0.1`, "--metrics-addr=127.0.0.1:0", "--log.level=warn"], { stdio: ["ignore", "ignore", "inherit"] }));
  // Ready once a scrape through it answers (its /clients may lag behind the first poll).
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      http
        .get({ host: "127.0.0.1", port, path: `http://127.0.0.1:${targetPort}/10k`, headers: { host: `127.0.0.1:${targetPort}`, "x-prometheus-scrape-timeout-seconds": "30" } }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode === 200));
        })
        .on("error", () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) throw new Error("PushProx client did not answer a scrape within 30 s");
    await new Promise((r) => setTimeout(r, 200));
  }
  void targetPort;
  return { port, procs: [proxy, client] };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = http.createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
    s.on("error", reject);
  });
}

function getText(port: number, p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: "127.0.0.1", port, path: p }, (res) => {
      let b = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (b += c));
      res.on("end", () => resolve(b));
    }).on("error", reject);
  });
}

async function waitHttp(port: number, p: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await getText(port, p);
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`nothing answers on 127.0.0.1:${port}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
