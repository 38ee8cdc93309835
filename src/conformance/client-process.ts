/**
 * The client implementation under test, as a child process: a command
 * template with `{server}`, `{name}` and `{size}` substituted, run by the shell in its
 * own process group so that stopping it stops everything it started (npx,
 * a Python interpreter, a Go binary). The kit assumes nothing else about it.
 *
 * @internal
 */
import { spawn } from "node:child_process";

/** A running client under test. */
export interface ClientProcess {
  /** The command line as run. */
  readonly command: string;
  /** Settles when the process has exited: its exit code, or the signal that ended it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Whether it has exited. */
  readonly done: boolean;
  /** The last lines of its standard output and error, interleaved. */
  output(maxLines?: number): string;
  /** Stops the process group: SIGTERM, then SIGKILL after `graceMs`. Resolves once it exited. */
  stop(graceMs?: number): Promise<void>;
  /** Sends SIGTERM to the process group once, as an init system does to ask it to leave. */
  terminate(): void;
}

/** Options of {@link launchClient}. */
export interface LaunchOptions {
  /** The command template, e.g. `python3 client.py {server} {name}`. Required. */
  template: string;
  /** Substituted for `{server}` and passed as PROMPROXY_SERVER. Required. */
  serverUrl: string;
  /** Substituted for `{name}` and passed as PROMPROXY_NAME. Required. */
  name: string;
  /** Substituted for `{size}` and passed as PROMPROXY_BODY_BYTES: the least body to serve. Default 300 000. */
  bodyBytes?: number;
  /** Working directory. Default: the current one. */
  cwd?: string;
  /** Most bytes of output kept. Default 64 KiB. */
  keepBytes?: number;
}

/** The least body a client is asked to serve unless the kit is told otherwise: over 256 KiB, the largest default chunk. */
export const defaultBodyBytes = 300_000;

/** Substitutes `{server}`, `{name}` and `{size}` in a command template. */
export function clientCommand(template: string, serverUrl: string, name: string, bodyBytes = defaultBodyBytes): string {
  return template.replaceAll("{server}", serverUrl).replaceAll("{name}", name).replaceAll("{size}", String(bodyBytes));
}

/** Starts the client under test. */
export function launchClient({ template, serverUrl, name, bodyBytes = defaultBodyBytes, cwd, keepBytes = 64 * 1024 }: LaunchOptions): ClientProcess {
  const command = clientCommand(template, serverUrl, name, bodyBytes);
  const child = spawn("/bin/sh", ["-c", command], {
    cwd,
    detached: true, // its own process group: stop() reaches the grandchildren too
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PROMPROXY_SERVER: serverUrl, PROMPROXY_NAME: name, PROMPROXY_BODY_BYTES: String(bodyBytes) },
  });
  let kept = "";
  const keep = (b: Buffer) => {
    kept += b.toString("utf8");
    if (kept.length > keepBytes) kept = kept.slice(kept.length - keepBytes);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // Its last words first: "close" comes once its output is read, unless a grandchild still holds the pipes.
    child.once("exit", (code, signal) => {
      const t = setTimeout(() => resolve({ code, signal }), 200);
      child.once("close", () => {
        clearTimeout(t);
        resolve({ code, signal });
      });
    });
    child.once("error", (e) => {
      keep(Buffer.from(`${e.message}\n`));
      resolve({ code: null, signal: null });
    });
  });
  void exited.then(() => (done = true));

  const signalGroup = (signal: NodeJS.Signals) => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // the group is gone already
    }
  };

  return {
    command,
    exited,
    get done() {
      return done;
    },
    output(maxLines = 20) {
      return kept.split("\n").filter((l) => l.trim() !== "").slice(-maxLines).join("\n");
    },
    terminate() {
      signalGroup("SIGTERM");
    },
    async stop(graceMs = 2_000) {
      signalGroup("SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
      // Whatever is left of the group (a grandchild that ignored SIGTERM, or outlived its shell).
      signalGroup("SIGKILL");
      await exited;
    },
  };
}
