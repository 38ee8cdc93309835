/**
 * Large expositions: a ~50 MB registry streams through the server
 * byte-for-byte while the server's memory grows by far less than the payload,
 * and a Prometheus that reads slowly neither grows it without bound nor stalls
 * other clients. The server runs in a child process so that its RSS is its own.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as net from "node:net";
import * as readline from "node:readline";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Gauge, Registry } from "prom-client";
import type { PromproxyClient } from "../../src/client/index.ts";
import type { ServerOptions } from "../../src/server/index.ts";
import { proxyGet, startClient, testRegistry, waitFor } from "../helpers.ts";

const MiB = 1024 * 1024;
/** Most the server's RSS may grow while relaying a 50 MB scrape, garbage collected as it goes. */
const maxGrowth = 25 * MiB;
/** Most the server may hold (live memory after a GC) while relaying a 50 MB scrape. */
const maxLive = 20 * MiB;

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
  /** Sends a command to the child and resolves with its JSON answer. */
  command(cmd: "mark" | "peak" | "gc" | "live" | "nolive"): Promise<Answer>;
  close(): Promise<void>;
}

async function spawnServer(options: ServerOptions = {}): Promise<ChildServer> {
  const script = fileURLToPath(new URL("./fixtures/rss-server.ts", import.meta.url));
  const child: ChildProcess = spawn(process.execPath, ["--expose-gc", script, JSON.stringify(options)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const lines = readline.createInterface({ input: child.stdout! });
  const waiting: ((v: Record<string, number>) => void)[] = [];
  lines.on("line", (line) => waiting.shift()?.(JSON.parse(line) as Record<string, number>));
  const nextLine = () =>
    new Promise<Record<string, number>>((resolve, reject) => {
      waiting.push(resolve);
      void exited.then(() => reject(new Error("the server process exited")));
    });
  const first = await nextLine();
  const port = first["port"] as number;
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

/** A registry whose text exposition is about `bytes` long: one gauge, many series with long label values. */
function bigRegistry(bytes: number): Registry {
  const registry = new Registry();
  const gauge = new Gauge({ name: "big_payload", help: "Series with long label values.", labelNames: ["id", "blob"], registers: [registry] });
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const base = alphabet.repeat(Math.ceil(2000 / alphabet.length));
  const perSeries = 1000;
  for (let i = 0; i * (perSeries + 40) < bytes; i++) {
    const blob = base.slice(i % alphabet.length, (i % alphabet.length) + perSeries - 8) + String(i).padStart(8, "0");
    gauge.set({ id: String(i), blob }, i);
  }
  return registry;
}

async function relayedBytes(port: number): Promise<number> {
  const r = await proxyGet(port, "/metrics");
  const m = /^promproxy_relayed_bytes_total (\d+(?:\.\d+)?(?:e\+?\d+)?)$/m.exec(r.body.toString());
  return m ? Number(m[1]) : 0;
}

/** Splits a raw HTTP/1.1 response into status, headers and (de-chunked) body. */
function parseResponse(raw: Buffer): { status: number; headers: Record<string, string>; body: Buffer } {
  const end = raw.indexOf("\r\n\r\n");
  assert.ok(end > 0, "no end of headers");
  const [statusLine = "", ...headerLines] = raw.subarray(0, end).toString("latin1").split("\r\n");
  const headers: Record<string, string> = {};
  for (const l of headerLines) {
    const i = l.indexOf(":");
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = raw.subarray(end + 4);
  if (headers["transfer-encoding"] === "chunked") {
    const parts: Buffer[] = [];
    let at = 0;
    for (;;) {
      const eol = body.indexOf("\r\n", at);
      const size = parseInt(body.subarray(at, eol).toString("latin1"), 16);
      if (!(size > 0)) break;
      parts.push(body.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  }
  return { status: Number(statusLine.split(" ")[1]), headers, body };
}

describe("large expositions", { timeout: 240_000 }, () => {
  let server: ChildServer;
  let big: PromproxyClient;
  let other: PromproxyClient;
  let expected: Buffer;
  const otherExpected = testRegistry("other").metrics();

  before(async () => {
    server = await spawnServer({ defaultScrapeTimeoutMs: 60_000 });
    const registry = bigRegistry(51e6);
    expected = Buffer.from(await registry.metrics());
    big = await startClient(server.url, "big", { registry });
    other = await startClient(server.url, "other");
    // Warm the server up with a small scrape so that the baseline is a running server's.
    assert.equal((await proxyGet(server.port, "http://other/metrics")).status, 200);
  });
  after(async () => {
    await big?.stop();
    await other?.stop();
    await server?.close();
  });

  test("a ~50 MB scrape succeeds byte-for-byte and the server's memory grows far less than the payload", async (t) => {
    assert.ok(expected.length >= 50e6 && expected.length < 56e6, `exposition of ${expected.length} bytes`);
    const scrapeBig = async () => {
      const r = await proxyGet(server.port, "http://big/metrics", { "x-prometheus-scrape-timeout-seconds": "120" });
      assert.equal(r.status, 200);
      assert.equal(r.headers["content-length"], String(expected.length));
      assert.equal(r.body.length, expected.length);
      assert.ok(r.body.equals(expected), "the body differs from the registry's exposition");
    };
    const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

    // A cold server, with V8 collecting garbage on its own schedule. Its first large
    // relay grows the process by a one-time working set (V8 grows its young
    // generation to its maximum under the allocation rate, and dead Buffers wait for
    // the next collection): about 40 MiB here, the same for 100 MB as for 50 MB, and
    // further scrapes add almost nothing. A server that buffered the body would hold
    // the whole payload on top of that; the bound here only catches that, the tight
    // bounds are the warm and the live ones below.
    await server.command("mark");
    await scrapeBig();
    const cold = await server.command("peak");
    const coldGrowth = (cold.peak ?? 0) - (cold.baseline ?? 0);
    t.diagnostic(`cold server, V8's own GC schedule: RSS ${mib(cold.baseline ?? 0)} -> peak +${mib(coldGrowth)} for ${mib(expected.length)} relayed`);
    assert.ok(coldGrowth < 1.5 * expected.length, `server RSS grew by ${mib(coldGrowth)} relaying ${mib(expected.length)}`);
    await server.command("mark");
    await scrapeBig();
    const warm = await server.command("peak");
    const warmGrowth = (warm.peak ?? 0) - (warm.baseline ?? 0);
    t.diagnostic(`the same scrape again: +${mib(warmGrowth)}`);
    // Mostly 0-7 MiB, but on V8's own schedule a collection may fall just after the mark: a CI run saw +28.8 MiB
    // once (live memory +0.0 in every run). Less than the payload, then: a server buffering it fails this; the
    // tight bounds are the ones garbage collected as they go, below.
    assert.ok(warmGrowth < expected.length, `a second 50 MB scrape grew the server's RSS by ${mib(warmGrowth)}`);

    // What the server holds while relaying, garbage collected as it goes.
    await server.command("live");
    try {
      await server.command("mark");
      await scrapeBig();
      const m = await server.command("peak");
      const growth = (m.peak ?? 0) - (m.baseline ?? 0);
      const held = (m.livePeak ?? 0) - (m.liveBaseline ?? 0);
      t.diagnostic(`garbage collected every 20 ms: RSS +${mib(growth)}, live memory +${mib(held)}`);
      assert.ok(growth < maxGrowth, `server RSS grew by ${mib(growth)} relaying ${mib(expected.length)}`);
      assert.ok(held < maxLive, `the server held ${mib(held)} while relaying ${mib(expected.length)}`);
    } finally {
      await server.command("nolive");
    }
  });

  test("a slow reader: server memory stays bounded, other clients are served meanwhile, the body arrives whole", async (t) => {
    await server.command("live");
    t.after(() => server.command("nolive").then(() => {}));
    await server.command("mark");
    await new Promise((r) => setTimeout(r, 1_100)); // /metrics is rebuilt at most once a second: a fresh one
    const before = await relayedBytes(server.port);

    // A Prometheus that sends its request and then does not read.
    const socket = net.connect(server.port, "127.0.0.1");
    socket.on("error", () => {});
    const received: Buffer[] = [];
    let receivedBytes = 0;
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write("GET http://big/metrics HTTP/1.1\r\nHost: big\r\nX-Prometheus-Scrape-Timeout-Seconds: 120\r\nConnection: close\r\n\r\n");
    socket.pause();

    // The relay stalls once the socket buffers and the scrape's credit are full.
    let last = -1;
    let stable = 0;
    await waitFor(
      "the relay to stall",
      async () => {
        const now = (await relayedBytes(server.port)) - before;
        stable = now === last && now > 0 ? stable + 1 : 0;
        last = now;
        return stable >= 25; // 2.5 s: the server's /metrics is rebuilt at most once a second
      },
      60_000,
      100,
    );
    t.diagnostic(`relay stalled after ${(last / MiB).toFixed(1)} MiB`);
    assert.ok(last < expected.length / 2, `relayed ${last} bytes to a reader that reads nothing`);

    // Meanwhile other clients (and the same client, for another reader) are served as usual.
    for (let i = 0; i < 10; i++) {
      const r = await proxyGet(server.port, "http://other/metrics", { "x-prometheus-scrape-timeout-seconds": "10" });
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), await otherExpected);
    }
    const full = await proxyGet(server.port, "http://big/metrics", { "x-prometheus-scrape-timeout-seconds": "120" });
    assert.equal(full.status, 200);
    assert.ok(full.body.equals(expected), "a full-speed scrape beside the slow one differs");
    for (let i = 0; i < 3; i++) {
      const r = await proxyGet(server.port, "http://other/metrics", { "x-prometheus-scrape-timeout-seconds": "10" });
      assert.equal(r.status, 200);
    }
    // Besides the full scrape, only the small scrapes of "other" were relayed meanwhile.
    await new Promise((r) => setTimeout(r, 1_100)); // /metrics is rebuilt at most once a second: read a fresh one
    const stalled = (await relayedBytes(server.port)) - before - expected.length;
    assert.ok(stalled >= last && stalled - last < 64 * 1024, `the slow scrape moved on from ${last} to ${stalled} bytes while its reader read nothing`);

    const { baseline = 0, peak = 0, liveBaseline = 0, livePeak = 0 } = await server.command("peak");
    const growth = peak - baseline;
    const held = livePeak - liveBaseline;
    t.diagnostic(`a stalled reader and a full 50 MB scrape beside it: RSS +${(growth / MiB).toFixed(1)} MiB, live +${(held / MiB).toFixed(1)} MiB`);
    assert.ok(growth < maxGrowth, `server RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
    assert.ok(held < maxLive, `the server held ${(held / MiB).toFixed(1)} MiB`);

    // Now read slowly for a while, then at full speed: the whole body arrives.
    socket.on("data", (c: Buffer) => {
      received.push(c);
      receivedBytes += c.length;
    });
    for (let i = 0; i < 20; i++) {
      socket.resume();
      await new Promise((r) => setImmediate(r));
      socket.pause();
      await new Promise((r) => setTimeout(r, 25));
    }
    t.diagnostic(`read ${(receivedBytes / MiB).toFixed(1)} MiB slowly`);
    socket.resume();
    await closed;
    const res = parseResponse(Buffer.concat(received));
    assert.equal(res.status, 200);
    assert.equal(res.body.length, expected.length);
    assert.ok(res.body.equals(expected), "the slow reader's body differs");

    const after = await server.command("peak");
    t.diagnostic(`over the whole slow scrape: RSS +${(((after.peak ?? 0) - (after.baseline ?? 0)) / MiB).toFixed(1)} MiB, live +${(((after.livePeak ?? 0) - (after.liveBaseline ?? 0)) / MiB).toFixed(1)} MiB`);
    assert.ok((after.peak ?? 0) - (after.baseline ?? 0) < maxGrowth);
    assert.ok((after.livePeak ?? 0) - (after.liveBaseline ?? 0) < maxLive);
    await waitFor("no scrapes in flight", async () => {
      const m = (await proxyGet(server.port, "/metrics")).body.toString();
      return /^promproxy_scrapes_in_flight 0$/m.test(m);
    });
  });
});
