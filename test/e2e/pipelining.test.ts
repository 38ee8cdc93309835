/**
 * What one HTTP/1.1 connection can make the server hold. A peer pipelines
 * hundreds of scrapes of a large body on one connection and never reads: the
 * server serves one request per connection at a time (the next one starts
 * when the previous response has gone out), so the connection pins one
 * response, not hundreds. A single request whose response is never read is
 * bounded by the scrape's credit. Other scrapes go on meanwhile.
 *
 * The server runs in a child process (test/e2e/fixtures/rss-server.ts) so that
 * its RSS is its own; the clients run here.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as net from "node:net";
import * as readline from "node:readline";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { MetricsRegistry, PromproxyClient } from "../../src/client/index.ts";
import type { ServerOptions } from "../../src/server/index.ts";
import { maxPipelinedRequests } from "../../src/server/listen/h1-server.ts";
import { proxyGet, startClient, waitFor } from "../helpers.ts";

const MiB = 1024 * 1024;
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

interface Answer {
  rss: number;
  baseline?: number;
  peak?: number;
  liveBaseline?: number;
  livePeak?: number;
  error?: string;
}

interface ChildServer {
  port: number;
  url: string;
  command(cmd: "mark" | "peak" | "gc" | "live" | "nolive"): Promise<Answer>;
  close(): Promise<void>;
}

async function spawnServer(options: ServerOptions = {}): Promise<ChildServer> {
  const script = fileURLToPath(new URL("./fixtures/rss-server.ts", import.meta.url));
  const child: ChildProcess = spawn(process.execPath, ["--expose-gc", script, JSON.stringify(options)], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const lines = readline.createInterface({ input: child.stdout! });
  const waiting: ((v: Record<string, number>) => void)[] = [];
  lines.on("line", (line) => waiting.shift()?.(JSON.parse(line) as Record<string, number>));
  const nextLine = () =>
    new Promise<Record<string, number>>((resolve, reject) => {
      waiting.push(resolve);
      void exited.then(() => reject(new Error("the server process exited")));
    });
  const port = (await nextLine())["port"] as number;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    async command(cmd) {
      const answer = nextLine();
      child.stdin!.write(cmd + "\n");
      const a = (await answer) as unknown as Answer;
      if (a.error) throw new Error(a.error);
      return a;
    },
    async close() {
      child.stdin!.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A registry that serves the same exposition of `bytes` bytes every time (rendered once, so the test process stays light). */
function staticRegistry(bytes: number): MetricsRegistry & { body: string } {
  const lines: string[] = ["# TYPE big_payload gauge"];
  let n = lines[0]!.length + 1;
  for (let i = 0; n < bytes; i++) {
    const line = `big_payload{id="${i}",blob="${"x".repeat(200)}"} ${i}`;
    lines.push(line);
    n += line.length + 1;
  }
  const body = lines.join("\n") + "\n";
  return { body, contentType: "text/plain; version=0.0.4; charset=utf-8", metrics: async () => body };
}

async function relayedBytes(port: number): Promise<number> {
  const r = await proxyGet(port, "/metrics");
  const m = /^promproxy_relayed_bytes_total (\d+(?:\.\d+)?(?:e\+?\d+)?)$/m.exec(r.body.toString());
  return m ? Number(m[1]) : 0;
}

/** Waits until the server's relayed byte count has not moved for a second. */
async function relayStalls(port: number): Promise<number> {
  let last = -1;
  let stable = 0;
  await waitFor(
    "the relay to stall",
    async () => {
      const now = await relayedBytes(port);
      stable = now === last ? stable + 1 : 0;
      last = now;
      return stable >= 25; // 2.5 s: the server's /metrics is rebuilt at most once a second
    },
    60_000,
    100,
  );
  return last;
}

/** A connection that never reads: the kernel's buffers fill, then the server's. */
async function deafSocket(port: number): Promise<net.Socket> {
  const socket = net.connect({ port, host: "127.0.0.1" });
  socket.on("error", () => {});
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  socket.pause();
  return socket;
}

/** Reads complete HTTP/1.1 responses with a Content-Length from a socket (bodies gathered in pieces, joined once). */
function responseReader(socket: net.Socket) {
  const responses: { status: number; body: Buffer }[] = [];
  let head: Buffer = Buffer.alloc(0);
  let body: { status: number; left: number; parts: Buffer[] } | undefined;
  socket.on("data", (d: Buffer) => {
    while (d.length > 0) {
      if (body) {
        const n = Math.min(body.left, d.length);
        body.parts.push(d.subarray(0, n));
        body.left -= n;
        d = d.subarray(n);
        if (body.left === 0) {
          responses.push({ status: body.status, body: Buffer.concat(body.parts) });
          body = undefined;
        }
        continue;
      }
      head = head.length ? Buffer.concat([head, d]) : d;
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      const text = head.subarray(0, end).toString("latin1");
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(text)?.[1] ?? NaN);
      assert.ok(Number.isInteger(length), `a response without Content-Length: ${text}`);
      d = head.subarray(end + 4);
      head = Buffer.alloc(0);
      body = { status: Number(text.split(" ")[1]), left: length, parts: [] };
      if (length === 0) {
        responses.push({ status: body.status, body: Buffer.alloc(0) });
        body = undefined;
      }
    }
  });
  socket.resume();
  return responses;
}

describe("what one HTTP/1.1 connection can make the server hold", { timeout: 240_000 }, () => {
  let server: ChildServer;
  let clients: PromproxyClient[] = [];
  const big = staticRegistry(512 * 1024);
  const huge = staticRegistry(32 * MiB);
  const small = staticRegistry(2 * 1024);

  before(async () => {
    // Scrapes in flight per client raised (an operator's choice; the default 16 still lets one connection pin 16 scrapes' credit).
    server = await spawnServer({ defaultScrapeTimeoutMs: 60_000, maxScrapesInFlight: 1000 });
    clients = [
      await startClient(server.url, "big", { registry: big, maxScrapesInFlight: 1000 }),
      await startClient(server.url, "huge", { registry: huge }),
      await startClient(server.url, "other", { registry: small }),
    ];
    // Warm up with one scrape of each, so that the baseline is a running server's.
    for (const name of ["big", "huge", "other"]) assert.equal((await proxyGet(server.port, `http://${name}/metrics`)).status, 200);
  });
  after(async () => {
    for (const c of clients) await c.stop();
    await server?.close();
  });

  const scrapeOthers = async () => {
    for (let i = 0; i < 5; i++) {
      const r = await proxyGet(server.port, "http://other/metrics", { "x-prometheus-scrape-timeout-seconds": "10" });
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), small.body);
    }
    const r = await proxyGet(server.port, "http://big/metrics", { "x-prometheus-scrape-timeout-seconds": "10" });
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), big.body, "a scrape of the same client beside the pinned connection");
  };

  test("640 pipelined scrapes of 512 KiB on a connection that is never read pin one response, not 640", async (t) => {
    const requests = 640;
    await server.command("live"); // garbage collected every 20 ms: what the server holds on to
    t.after(() => server.command("nolive").then(() => {}));
    await server.command("mark");
    await new Promise((r) => setTimeout(r, 1_100)); // /metrics is rebuilt at most once a second: a fresh one
    const before = await relayedBytes(server.port);
    const socket = await deafSocket(server.port);
    t.after(() => void socket.destroy());
    const request = "GET http://big/metrics HTTP/1.1\r\nHost: big\r\nX-Prometheus-Scrape-Timeout-Seconds: 60\r\n\r\n";
    // All in one write: one read of the server parses them all at once.
    socket.write(request.repeat(requests));
    const relayed = (await relayStalls(server.port)) - before;
    await scrapeOthers();
    const { baseline = 0, peak = 0, liveBaseline = 0, livePeak = 0 } = await server.command("peak");
    const held = livePeak - liveBaseline;
    t.diagnostic(`${requests} pipelined scrapes of ${mib(big.body.length)}, never read: relayed ${mib(relayed)}; server RSS ${mib(baseline)} -> peak +${mib(peak - baseline)}, live memory +${mib(held)}`);
    // Whether the server parsed more than maxPipelinedRequests of them (then it closed the connection) depends on
    // how far Node's parser ran before the first answer's bytes backed up: either way, what it holds is bounded.
    // (In-order answers to a peer that reads: the test at maxPipelinedRequests below.)
    assert.ok(relayed < 8 * MiB, `relayed ${mib(relayed)} into a connection that reads nothing`);
    assert.ok(peak - baseline < 24 * MiB, `server RSS grew by ${mib(peak - baseline)}`);
    assert.ok(held < 8 * MiB, `the server held ${mib(held)} for the connection`);
  });

  test("thousands of small pipelined requests behind an unread response: the connection is closed, holding one read's worth at most", async (t) => {
    await server.command("live");
    t.after(() => server.command("nolive").then(() => {}));
    await server.command("mark");
    const socket = await deafSocket(server.port);
    t.after(() => void socket.destroy());
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    const tiny = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    const count = 4000; // 140 KB: more than one read of the server's
    socket.write("GET http://huge/metrics HTTP/1.1\r\nHost: huge\r\n\r\n" + tiny.repeat(count));
    socket.resume(); // read now: the server closes the connection (more than maxPipelinedRequests wait), it does not wait for us
    await closed;
    await scrapeOthers();
    assert.equal((await proxyGet(server.port, "/healthz")).status, 200);
    const { baseline = 0, peak = 0, liveBaseline = 0, livePeak = 0 } = await server.command("peak");
    t.diagnostic(`an unread scrape and ${count} pipelined requests behind it: server RSS +${mib(peak - baseline)}, live memory +${mib(livePeak - liveBaseline)}`);
    assert.ok(peak - baseline < 24 * MiB, `server RSS grew by ${mib(peak - baseline)}`);
    assert.ok(livePeak - liveBaseline < 16 * MiB, `the server held ${mib(livePeak - liveBaseline)}`);
  });

  test(`at most ${maxPipelinedRequests} pipelined requests wait behind an unread response: at the limit all are answered in order once read`, async (t) => {
    const socket = await deafSocket(server.port);
    t.after(() => void socket.destroy());
    const tiny = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    socket.write("GET http://huge/metrics HTTP/1.1\r\nHost: huge\r\n\r\n" + tiny.repeat(maxPipelinedRequests));
    await relayStalls(server.port);
    const responses = responseReader(socket);
    await waitFor("every pipelined response", () => responses.length === maxPipelinedRequests + 1, 60_000);
    assert.equal(responses[0]!.body.toString(), huge.body);
    assert.ok(responses.slice(1).every((r) => r.status === 200 && r.body.toString() === "ok\n"), "each /healthz answered in turn");
  });

  test("a single request whose response is never read is bounded by the scrape's credit", async (t) => {
    await server.command("live");
    t.after(() => server.command("nolive").then(() => {}));
    await server.command("mark");
    const before = await relayStalls(server.port); // what earlier tests left relaying has settled
    const sockets: net.Socket[] = [];
    t.after(() => sockets.forEach((s) => s.destroy()));
    for (let i = 0; i < 4; i++) {
      const socket = await deafSocket(server.port);
      sockets.push(socket);
      socket.write("GET http://huge/metrics HTTP/1.1\r\nHost: huge\r\nX-Prometheus-Scrape-Timeout-Seconds: 60\r\n\r\n");
    }
    const relayed = (await relayStalls(server.port)) - before;
    await scrapeOthers();
    const { baseline = 0, peak = 0, liveBaseline = 0, livePeak = 0 } = await server.command("peak");
    const held = livePeak - liveBaseline;
    t.diagnostic(`4 connections each asking for ${mib(huge.body.length)}, never read: relayed ${mib(relayed)}; server RSS ${mib(baseline)} -> peak +${mib(peak - baseline)}, live memory +${mib(held)}`);
    // Per connection: the scrape's credit (2 MiB) in the server, the rest of what was relayed in the kernel's socket buffers.
    assert.ok(relayed < 4 * 8 * MiB, `relayed ${mib(relayed)} into 4 connections that read nothing`);
    assert.ok(peak - baseline < 40 * MiB, `server RSS grew by ${mib(peak - baseline)} for 4 x ${mib(huge.body.length)} unread`);
    assert.ok(held < 4 * 4 * MiB, `the server held ${mib(held)} for 4 unread responses`);
  });
});
