/**
 * A real L7 proxy between clients and the server: Debian's nginx
 * with `grpc_pass` and short `grpc_read_timeout` / `grpc_send_timeout` /
 * `client_body_timeout`. The stream must outlive idle periods longer than
 * those timeouts (app-level heartbeats are frames nginx sees; it answers
 * HTTP/2 PINGs itself, so those would not do), and scrapes must stream through it.
 *
 * nginx runs as a child process in the foreground with its own prefix and
 * config in a temp dir, on an unprivileged port. A missing nginx fails the
 * test with an install hint; it never skips.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import type { ConnectError } from "@connectrpc/connect";
import type { PromproxyClient } from "../../src/client/index.ts";
import { proxyGet, startClient, startServer, waitFor, type TestServer } from "../helpers.ts";
import { fixturesDir } from "./fixtures/faults/util.ts";
import { freePort, stopChild } from "./prometheus.ts";

const installHint = "install it with `apt-get install -y nginx` (Debian/Ubuntu; .ci/run does this)";

/** nginx on the PATH (or $NGINX_BIN, or /usr/sbin/nginx, where Debian puts it); throws how to install it when missing. */
function nginxBinary(): string {
  const candidates = [process.env["NGINX_BIN"], ...(process.env["PATH"] ?? "").split(path.delimiter).map((d) => d && path.join(d, "nginx")), "/usr/sbin/nginx"];
  for (const c of candidates) {
    if (!c) continue;
    try {
      fs.accessSync(c, fs.constants.X_OK);
      if (fs.statSync(c).isFile()) return c;
    } catch {
      /* next */
    }
  }
  throw new Error(`the nginx tests need nginx (with the grpc module, as Debian builds it), and none was found: ${installHint}`);
}

interface Nginx {
  port: number;
  log(): string;
  stop(): Promise<void>;
}

/** Starts nginx in the foreground, proxying gRPC on a free port to `upstreamPort` with `timeout` for its timeouts. */
async function startNginx(upstreamPort: number, timeout: string): Promise<Nginx> {
  const bin = nginxBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-nginx-"));
  let child: ChildProcess | undefined;
  let output = "";
  const log = () => {
    let file = "";
    try {
      file = fs.readFileSync(path.join(dir, "error.log"), "utf8");
    } catch {
      /* not written yet */
    }
    return `${output}\n${file}`.slice(-6_000);
  };
  const stop = async () => {
    try {
      if (child) await stopChild(child, "SIGTERM", 5_000);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  try {
    const port = await freePort();
    const conf = fs
      .readFileSync(path.join(fixturesDir, "nginx.conf.template"), "utf8")
      .replaceAll("{{dir}}", dir)
      .replaceAll("{{port}}", String(port))
      .replaceAll("{{upstreamPort}}", String(upstreamPort))
      .replaceAll("{{timeout}}", timeout);
    fs.writeFileSync(path.join(dir, "nginx.conf"), conf);
    const c = spawn(bin, ["-p", dir, "-c", path.join(dir, "nginx.conf"), "-e", "stderr"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    child = c;
    c.stdout?.on("data", (b: Buffer) => (output = (output + b.toString()).slice(-4_000)));
    c.stderr?.on("data", (b: Buffer) => (output = (output + b.toString()).slice(-4_000)));
    const spawnError = new Promise<never>((_, reject) => c.once("error", reject));
    spawnError.catch(() => {});
    await Promise.race([
      spawnError,
      waitFor(
        "nginx to accept connections",
        async () => {
          if (c.exitCode !== null || c.signalCode !== null) throw new Error(`nginx exited (${c.exitCode ?? c.signalCode}):\n${log()}`);
          return await new Promise<boolean>((resolve) => {
            const s = net.connect(port, "127.0.0.1");
            s.once("connect", () => (s.destroy(), resolve(true)));
            s.once("error", () => resolve(false));
          });
        },
        10_000,
        50,
      ),
    ]);
    return { port, log, stop };
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}\n${log()}`);
  }
}

/** About `bytes` of valid text exposition. */
function bigExposition(bytes: number): string {
  const line = (i: number) => `big_metric_total{series="${String(i).padStart(8, "0")}"} ${i}\n`;
  const n = Math.ceil(bytes / line(0).length);
  return "# TYPE big_metric_total counter\n" + Array.from({ length: n }, (_, i) => line(i)).join("");
}

test("through nginx grpc_pass with 1 s timeouts: the stream outlives idle periods of several seconds, and scrapes (large ones too) work", { timeout: 60_000 }, async () => {
  let s: TestServer | undefined;
  let nginx: Nginx | undefined;
  let c: PromproxyClient | undefined;
  const disconnects: (ConnectError | undefined)[] = [];
  let connects = 0;
  try {
    // Heartbeats well inside nginx's timeouts keep both directions busy: pings down, pongs up.
    s = await startServer({ heartbeatIntervalMs: 300, heartbeatTimeoutMs: 1_500 });
    nginx = await startNginx(s.port, "1s");
    const body = bigExposition(8 * 1024 * 1024);
    c = await startClient(`http://127.0.0.1:${nginx.port}`, "behind-nginx", {
      registry: { contentType: "text/plain; version=0.0.4; charset=utf-8", metrics: async () => body },
      gzipLevel: 0,
      onConnected: () => connects++,
      onDisconnected: (e) => disconnects.push(e),
    });
    const server = s;
    const sessionId = server.server.clients()[0]?.sessionId;
    assert.ok(sessionId);

    const first = await proxyGet(server.port, "http://behind-nginx/metrics");
    assert.equal(first.status, 200);
    assert.equal(first.body.length, Buffer.byteLength(body), "8 MiB through nginx, byte for byte");
    assert.ok(first.body.equals(Buffer.from(body)));

    // Idle for four times nginx's timeouts.
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    assert.deepEqual(disconnects, [], `the stream was cut: ${disconnects.map((e) => e?.message).join("; ")}\n${nginx.log()}`);
    assert.equal(connects, 1);
    assert.equal(server.server.clients()[0]?.sessionId, sessionId, "the same stream, not a reconnected one");

    // Several at once (an HA pair, and then some), through the one stream.
    const many = await Promise.all([1, 2, 3, 4].map(() => proxyGet(server.port, "http://behind-nginx/metrics")));
    for (const r of many) {
      assert.equal(r.status, 200);
      assert.equal(r.body.length, Buffer.byteLength(body));
    }
    assert.equal(server.server.clients()[0]?.sessionId, sessionId);
  } finally {
    await c?.stop();
    await nginx?.stop();
    await s?.close();
  }
});

test("control: with heartbeats slower than nginx's timeouts, nginx cuts the idle stream, and the client reconnects on its own", { timeout: 60_000 }, async () => {
  let s: TestServer | undefined;
  let nginx: Nginx | undefined;
  let c: PromproxyClient | undefined;
  const disconnects: (ConnectError | undefined)[] = [];
  let connects = 0;
  try {
    s = await startServer({ heartbeatIntervalMs: 5_000, heartbeatTimeoutMs: 15_000 });
    nginx = await startNginx(s.port, "1s");
    c = await startClient(`http://127.0.0.1:${nginx.port}`, "behind-nginx", {
      backoff: { initialMs: 50, maxMs: 200 },
      onConnected: () => connects++,
      onDisconnected: (e) => disconnects.push(e),
    });
    // nginx's 1 s timeouts fire long before the first ping at 5 s: that is what the heartbeat interval is for.
    await waitFor("nginx to cut the idle stream", () => disconnects.length >= 1, 10_000, 20);
    await waitFor("the client to reconnect", () => connects >= 2, 10_000, 20);
    const server = s;
    await waitFor("the server to list it again", () => server.server.clients().length === 1, 10_000, 20);
    const r = await proxyGet(server.port, "http://behind-nginx/metrics");
    assert.equal(r.status, 200);
  } finally {
    await c?.stop();
    await nginx?.stop();
    await s?.close();
  }
});
