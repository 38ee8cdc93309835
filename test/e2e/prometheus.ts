/**
 * End-to-end helpers: a real Prometheus (Debian's `prometheus` package) that
 * scrapes through a promproxy server with `proxy_url` + `http_sd_configs`,
 * child processes of our own CLI, and free loopback ports.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { waitFor } from "../helpers.ts";

/** The repository root. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** Node 22 from the `node` devDependency (the machine's own node is too old). */
export const node22 = path.join(repoRoot, "node_modules/.bin/node");
/** The CLI entry point, run from source by type stripping. */
export const cliMain = path.join(repoRoot, "src/cli/main.ts");

const installHint = "install it with `apt-get install -y prometheus` (Debian/Ubuntu; .ci/run does this)";

/** Finds an executable on the PATH (or the explicit path in $PROMETHEUS_BIN); throws how to install it when missing. */
export function prometheusBinary(): string {
  const explicit = process.env["PROMETHEUS_BIN"];
  if (explicit) {
    if (!isExecutable(explicit)) throw new Error(`PROMETHEUS_BIN=${explicit} is not an executable file; ${installHint}`);
    return explicit;
  }
  for (const dir of (process.env["PATH"] ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, "prometheus");
    if (isExecutable(p)) return p;
  }
  throw new Error(`the end-to-end tests need a real Prometheus, and no "prometheus" binary is on the PATH: ${installHint}`);
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Keeps the last `max` characters a child wrote, for error messages. */
function tail(child: ChildProcess, max = 8_000): () => string {
  let text = "";
  const add = (b: Buffer) => {
    text = (text + b.toString()).slice(-max);
  };
  child.stdout?.on("data", add);
  child.stderr?.on("data", add);
  return () => text;
}

/**
 * Ends a child: `signal` (SIGTERM by default), SIGKILL after `killAfterMs`,
 * then waits for it to exit. Resolves with the exit code and signal.
 */
export async function stopChild(
  child: ChildProcess,
  signal: NodeJS.Signals = "SIGTERM",
  killAfterMs = 5_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode };
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
  try {
    const [code, sig] = await exited;
    return { code, signal: sig };
  } finally {
    clearTimeout(timer);
  }
}

/** Result of an instant query: one sample per series. */
export interface Sample {
  metric: Record<string, string>;
  value: number;
}

/** One entry of `/api/v1/targets`' activeTargets. */
export interface ActiveTarget {
  labels: Record<string, string>;
  discoveredLabels: Record<string, string>;
  scrapePool: string;
  scrapeUrl: string;
  health: "up" | "down" | "unknown";
  lastError: string;
}

export interface PrometheusOptions {
  /** The promproxy server, e.g. "http://127.0.0.1:1234": proxy_url, and `/clients` for http_sd. */
  serverUrl: string;
  /** Scrape interval in seconds. Default 1. */
  scrapeIntervalS?: number;
  /** Scrape timeout in seconds (at most the interval). Default 1. */
  scrapeTimeoutS?: number;
  /** http_sd refresh interval in seconds. Default 1. */
  refreshIntervalS?: number;
  /** The job name. Default "promproxy". */
  jobName?: string;
  /**
   * A `scrape_configs:` block to use verbatim instead of the generated one (e.g. the block the CLI
   * prints); the global section with the intervals above is still written before it. Default: generated.
   */
  scrapeConfigs?: string;
}

export interface RunningPrometheus {
  /** e.g. "http://127.0.0.1:9090" */
  url: string;
  jobName: string;
  /** An instant query through `/api/v1/query`. Throws on any error from Prometheus. */
  query(promql: string): Promise<Sample[]>;
  /** Active targets through `/api/v1/targets`. */
  targets(): Promise<ActiveTarget[]>;
  /** The last lines Prometheus logged. */
  log(): string;
  /** SIGTERM, SIGKILL after a few seconds, wait for the exit, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
}

/** The prometheus.yml that scrapes every client of a promproxy server through it. */
export function prometheusConfig(o: Required<Omit<PrometheusOptions, "scrapeConfigs">> & Pick<PrometheusOptions, "scrapeConfigs">): string {
  const global = `global:
  scrape_interval: ${o.scrapeIntervalS}s
  scrape_timeout: ${o.scrapeTimeoutS}s
  evaluation_interval: 60s
`;
  if (o.scrapeConfigs !== undefined) return `${global}${o.scrapeConfigs.trimEnd()}\n`;
  return `${global}scrape_configs:
  - job_name: ${o.jobName}
    proxy_url: ${o.serverUrl}
    http_sd_configs:
      - url: ${o.serverUrl}/clients
        refresh_interval: ${o.refreshIntervalS}s
`;
}

/**
 * Starts a real Prometheus on 127.0.0.1 and a free port, with its own config
 * and storage in a temp dir, and waits until it is ready. Fails (never skips)
 * when the binary is missing, saying how to install it.
 */
export async function startPrometheus(options: PrometheusOptions): Promise<RunningPrometheus> {
  const bin = prometheusBinary();
  const o: Parameters<typeof prometheusConfig>[0] = {
    scrapeIntervalS: 1,
    scrapeTimeoutS: 1,
    refreshIntervalS: 1,
    jobName: "promproxy",
    ...options,
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-prometheus-"));
  const configFile = path.join(dir, "prometheus.yml");
  fs.writeFileSync(configFile, prometheusConfig(o));
  const removeDir = () => fs.rmSync(dir, { recursive: true, force: true });

  let child: ChildProcess | undefined;
  let stopped: Promise<void> | undefined;
  let log = () => "";
  const stop = () =>
    (stopped ??= (async () => {
      try {
        if (child) await stopChild(child, "SIGTERM", 5_000);
      } finally {
        removeDir();
      }
    })());

  try {
    // A port can be taken between freePort() and Prometheus binding it: try a few.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const env: NodeJS.ProcessEnv = { ...process.env };
      for (const k of ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"]) delete env[k];
      const c = spawn(
        bin,
        [
          `--config.file=${configFile}`,
          `--storage.tsdb.path=${path.join(dir, "data")}`,
          `--web.listen-address=127.0.0.1:${port}`,
          "--log.level=info",
        ],
        { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] },
      );
      child = c;
      log = tail(c);
      const spawnError = new Promise<never>((_, reject) => c.once("error", reject));
      spawnError.catch(() => {});
      const ready = await Promise.race([
        waitFor(
          "Prometheus to be ready",
          async () => {
            if (c.exitCode !== null || c.signalCode !== null) return "exited";
            const r = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2_000) });
            await r.arrayBuffer();
            return r.status === 200 ? "ready" : false;
          },
          30_000,
          100,
        ),
        spawnError,
      ]);
      if (ready === "ready") {
        return {
          url,
          jobName: o.jobName,
          log: () => log(),
          stop,
          async query(promql) {
            const r = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: promql })}`, { signal: AbortSignal.timeout(10_000) });
            const body = (await r.json()) as { status: string; error?: string; data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } };
            if (body.status !== "success" || !body.data) throw new Error(`query ${promql} failed: ${r.status} ${body.error ?? ""}`);
            if (body.data.resultType !== "vector") throw new Error(`query ${promql}: want a vector, got ${body.data.resultType}`);
            return body.data.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
          },
          async targets() {
            const r = await fetch(`${url}/api/v1/targets?state=active`, { signal: AbortSignal.timeout(10_000) });
            const body = (await r.json()) as { status: string; data?: { activeTargets: ActiveTarget[] } };
            if (body.status !== "success" || !body.data) throw new Error(`targets failed: ${r.status}`);
            return body.data.activeTargets;
          },
        };
      }
      // It exited: a port race is worth another try, anything else is not.
      const out = log();
      await stopChild(c, "SIGKILL");
      if (attempt >= 3 || !/address already in use/i.test(out)) {
        throw new Error(`prometheus exited before it was ready (code ${c.exitCode}, signal ${c.signalCode}):\n${out}`);
      }
    }
  } catch (e) {
    await stop();
    throw e;
  }
}

/** A `promproxy` CLI command running as a child process, with its output collected. */
export interface CliProcess {
  child: ChildProcess;
  /** Everything written to stdout so far. */
  stdout(): string;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resolves with the exit code and signal once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits until stdout holds `pattern` (fails early if the process exits). */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Kills it (SIGKILL) if it still runs, and waits for the exit. */
  kill(): Promise<void>;
}

/** Runs `node src/cli/main.ts ...args` on Node 22. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const child = spawn(node22, [cliMain, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr.on("data", (b: Buffer) => (err += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    child.once("error", (e) => {
      err += String(e);
      resolve({ code: null, signal: null });
    });
  });
  let done = false;
  void exited.then(() => (done = true));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    async waitForOutput(pattern, timeoutMs = 20_000) {
      const seen = await waitFor(`output matching ${pattern}`, () => (pattern.test(out) ? "seen" : done ? "exited" : false), timeoutMs).catch(
        (e: Error) => {
          throw new Error(`${e.message}\nstdout:\n${out}\nstderr:\n${err}`);
        },
      );
      if (seen === "exited") throw new Error(`the process exited before printing ${pattern}\nstdout:\n${out}\nstderr:\n${err}`);
    },
    async kill() {
      if (done) return;
      child.kill("SIGKILL");
      await exited;
    },
  };
}
