/**
 * The embedding example never holds or crashes the application's startup:
 * `await client.start()` returns at once whatever the server does, failures
 * go to the log and `onError`, and `ready()` is there for those who want to
 * wait.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as path from "node:path";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { bearerToken, createClient } from "../../src/client/index.ts";
import { bearerAuth, silentLogger, type Logger } from "../../src/server/index.ts";
import { curl, startServer, testRegistry, waitFor } from "../helpers.ts";
import { freePort, node22, repoRoot } from "./prometheus.ts";

const appFile = path.join(repoRoot, "test/e2e/fixtures/startup/app.ts");

/** Runs the example app; its output collected. */
function runApp(env: Record<string, string>) {
  const child = spawn(node22, [appFile], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr.on("data", (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    stdout: () => out,
    stderr: () => err,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

/** A logger that keeps what the client says. */
function recording(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (m: string, f?: Record<string, unknown>) => lines.push(`${level} ${m} ${JSON.stringify(f ?? {})}`);
  return { lines, debug() {}, info: at("info"), warn: at("warn"), error: at("error") };
}

test("server down at start: the example app still starts listening, and says why it is not connected", { timeout: 60_000 }, async () => {
  const port = await freePort(); // nothing listens there
  const app = runApp({ SERVER: `http://127.0.0.1:${port}` });
  try {
    await waitFor("the app listening", () => /listening on \d+/.test(app.stdout()), 15_000).catch((e: Error) => {
      throw new Error(`${e.message}\nstdout: ${app.stdout()}\nstderr: ${app.stderr()}`);
    });
    const appPort = Number(/listening on (\d+)/.exec(app.stdout())?.[1]);
    const r = await curl([`http://127.0.0.1:${appPort}/`]);
    assert.equal(r.stdout, "state connecting\n");
    await waitFor("the reason logged", () => app.stderr().includes(`nothing listens on 127.0.0.1:${port} (connection refused)`), 15_000);
    // Retries are not an error of the application's: one line per attempt at most, no stack.
    assert.doesNotMatch(app.stderr(), /\n\s+at /);
  } finally {
    await app.stop();
  }
});

test("a wrong token: the example app starts, logs the refusal once, and stops retrying; no crash", { timeout: 60_000 }, async () => {
  const s = await startServer({ interceptors: [bearerAuth({ tokens: { "right-token-0123456789abcdef": "app-*" } })] });
  const app = runApp({ SERVER: s.url, TOKEN: "wrong-token-0123456789abcdef" });
  try {
    await waitFor("the app listening", () => /listening on \d+/.test(app.stdout()), 15_000).catch((e: Error) => {
      throw new Error(`${e.message}\nstdout: ${app.stdout()}\nstderr: ${app.stderr()}`);
    });
    await waitFor("the refusal logged", () => /refused by the server: the client stops/.test(app.stderr()), 15_000);
    assert.match(app.stderr(), /code="Unauthenticated"/);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(app.stderr().match(/refused by the server/g)?.length, 1, app.stderr());
    const appPort = Number(/listening on (\d+)/.exec(app.stdout())?.[1]);
    assert.equal((await curl([`http://127.0.0.1:${appPort}/`])).stdout, "state stopped\n", "the app still serves");
  } finally {
    await app.stop();
    await s.close();
  }
});

test("ready(): resolves on the welcome, at once when connected; start() itself never waits", { timeout: 30_000 }, async () => {
  const s = await startServer();
  const c = createClient({ name: "app-1", serverUrl: s.url, registry: testRegistry(), logger: silentLogger });
  try {
    const pending = c.ready(); // before start(): waits for it
    await c.start();
    assert.equal(c.state, "connecting", "start() returned before any welcome");
    await pending;
    assert.equal(c.state, "connected");
    await c.ready(); // connected: at once
    await c.start(); // again: nothing more
  } finally {
    await c.stop();
    await s.close();
  }
  await assert.rejects(c.ready(), (e: unknown) => e instanceof ConnectError && e.code === Code.Canceled);
  await c.start(); // after stop(): no rejection, the client stays stopped
  assert.equal(c.state, "stopped");
});

test("ready() on a client never started: said once, a second later; not when start() follows", { timeout: 30_000 }, async () => {
  const log = recording();
  const never = createClient({ name: "app-1", serverUrl: "http://127.0.0.1:9", logger: log });
  const waiting = never.ready();
  never.ready().catch(() => {}); // a second wait: still one line
  await new Promise((r) => setTimeout(r, 1_300));
  const said = log.lines.filter((l) => /never started/.test(l));
  assert.equal(said.length, 1, said.join("\n"));
  assert.match(said[0]!, /^warn ready\(\) is waiting for a client that was never started: call start\(\) first/);
  await never.stop();
  await assert.rejects(waiting, (e: unknown) => e instanceof ConnectError && e.code === Code.Canceled);

  const s = await startServer();
  const later = recording();
  const c = createClient({ name: "app-2", serverUrl: s.url, registry: testRegistry(), logger: later });
  try {
    const pending = c.ready();
    await new Promise((r) => setTimeout(r, 200));
    await c.start();
    await pending;
    await new Promise((r) => setTimeout(r, 1_000));
    assert.deepEqual(later.lines.filter((l) => /never started/.test(l)), []);
  } finally {
    await c.stop();
    await s.close();
  }
});

test("ready(): a timeout or signal ends the wait, not the client; a fatal refusal rejects it and stops the client", { timeout: 30_000 }, async () => {
  const port = await freePort();
  const log = recording();
  const errors: ConnectError[] = [];
  const c = createClient({ name: "app-1", serverUrl: `http://127.0.0.1:${port}`, logger: log, backoff: { initialMs: 50, maxMs: 100 }, onError: (e) => errors.push(e) });
  try {
    await c.start();
    await assert.rejects(c.ready({ timeoutMs: 300 }), (e: unknown) => e instanceof ConnectError && e.code === Code.DeadlineExceeded);
    const abort = new AbortController();
    const waiting = c.ready({ signal: abort.signal });
    abort.abort(new Error("gave up"));
    await assert.rejects(waiting, /gave up/);
    assert.equal(c.state, "connecting");
    await waitFor("failures reported", () => errors.length >= 2);
    assert.ok(errors.every((e) => e.code === Code.Unavailable && /nothing listens on/.test(e.rawMessage)), errors.map((e) => e.message).join("\n"));
    assert.ok(log.lines.some((l) => l.startsWith("warn connection attempt failed") && l.includes('"client":"app-1"')), log.lines.join("\n"));
  } finally {
    await c.stop();
  }

  const s = await startServer({ interceptors: [bearerAuth({ tokens: { "right-token-0123456789abcdef": "app-*" } })] });
  const refusals: ConnectError[] = [];
  const wrong = createClient({
    name: "app-1",
    serverUrl: s.url,
    registry: testRegistry(),
    logger: silentLogger,
    interceptors: [bearerToken("wrong-token-0123456789abcdef")],
    onError: (e) => refusals.push(e),
  });
  try {
    await wrong.start();
    await assert.rejects(wrong.ready({ timeoutMs: 10_000 }), (e: unknown) => e instanceof ConnectError && e.code === Code.Unauthenticated);
    assert.equal(wrong.state, "stopped");
    assert.equal(refusals.length, 1);
    await assert.rejects(wrong.ready(), (e: unknown) => e instanceof ConnectError && e.code === Code.Unauthenticated, "later calls say why too");
  } finally {
    await wrong.stop();
    await s.close();
  }
});
