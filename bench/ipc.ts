/**
 * A minimal request/response protocol over Node's IPC channel between the
 * bench driver and its child processes, and the guards that make every child
 * stop by itself (parent gone, or a maximum lifetime).
 */
import { fork, type ChildProcess } from "node:child_process";

type Handler = (arg: unknown) => unknown;

interface Request { id: number; cmd: string; arg?: unknown }
interface Response { id: number; ok: boolean; result?: unknown; error?: string }

/** Child side: answer the driver's commands; exit when the driver goes away or after `maxLifetimeMs`. */
export function serveCommands(handlers: Record<string, Handler>, maxLifetimeMs = 15 * 60_000): void {
  if (!process.send) throw new Error("bench child processes are started by bench/run.ts");
  process.on("disconnect", () => process.exit(0));
  setTimeout(() => {
    process.stderr.write(`bench child ${process.pid}: maximum lifetime reached, exiting\n`);
    process.exit(3);
  }, maxLifetimeMs).unref();
  process.on("message", (m: Request) => {
    const h = handlers[m.cmd];
    Promise.resolve()
      .then(() => {
        if (!h) throw new Error(`unknown command ${m.cmd}`);
        return h(m.arg);
      })
      .then(
        (result) => process.send?.({ id: m.id, ok: true, result } satisfies Response),
        (e: unknown) => process.send?.({ id: m.id, ok: false, error: e instanceof Error ? e.stack ?? e.message : String(e) } satisfies Response),
      );
  });
}

/** Child side: tells the driver the child is up, with whatever it wants to share (ports). */
export function ready(info: Record<string, unknown>): void {
  process.send?.({ ready: true, ...info });
}

export interface Child<R = Record<string, unknown>> {
  proc: ChildProcess;
  /** What the child sent with `ready()`. */
  info: R;
  call<T = unknown>(cmd: string, arg?: unknown): Promise<T>;
  /** Sends "stop" and waits for the exit (kills it after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Driver side: forks `file` on this Node with `execArgv`, waits for its `ready()`. `stdout`: a file
 * descriptor for the child's standard output (V8's `--trace-*` output), the driver's by default.
 */
export function startChild<R = Record<string, unknown>>(file: string, args: string[], execArgv: string[], readyTimeoutMs = 120_000, stdout: "inherit" | number = "inherit"): Promise<Child<R>> {
  const proc = fork(file, args, { execArgv, stdio: ["ignore", stdout, "inherit", "ipc"] });
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill();
      reject(new Error(`${file} did not become ready within ${readyTimeoutMs / 1000}s`));
    }, readyTimeoutMs);
    proc.once("exit", (code, signal) => {
      clearTimeout(timer);
      for (const p of pending.values()) p.reject(new Error(`${file} exited (${code ?? signal})`));
      pending.clear();
      reject(new Error(`${file} exited before it was ready (${code ?? signal})`));
    });
    proc.on("message", (m: Response & { ready?: boolean }) => {
      if (m.ready) {
        clearTimeout(timer);
        const { ready: _r, ...info } = m;
        resolve({
          proc,
          info: info as R,
          call<T>(cmd: string, arg?: unknown) {
            return new Promise<T>((res, rej) => {
              const id = nextId++;
              pending.set(id, { resolve: res as (v: unknown) => void, reject: rej });
              proc.send({ id, cmd, arg } satisfies Request);
            });
          },
          async stop(graceMs = 10_000) {
            if (proc.exitCode !== null || proc.signalCode !== null) return;
            const t = setTimeout(() => proc.kill("SIGKILL"), graceMs);
            try {
              const id = nextId++;
              proc.send({ id, cmd: "stop" } satisfies Request);
            } catch {
              proc.kill();
            }
            await exited;
            clearTimeout(t);
          },
        });
        return;
      }
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(m.error));
    });
  });
}
