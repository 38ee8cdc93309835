/**
 * Hostile or broken input: every bad request, byte stream and
 * protocol frame gets its documented HTTP status or Connect code, the server
 * stays up and truthful, and nothing grows per stranger.
 *
 * HTTP/1.1 cases go over raw sockets (exactly the bytes in the table); stream
 * cases over a hand-driven Scrape stream (test/e2e/raw-client.ts) or, for
 * frames before the hello, Connect's client directly.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import * as net from "node:net";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient as createRpcClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { ClientFrameSchema, ScrapeService, type ClientFrame } from "../../gen/promproxy/v1/scrape_pb.ts";
import type { PromproxyClient } from "../../src/client/index.ts";
import { createServer, silentLogger } from "../../src/server/index.ts";
import { listenOnePort } from "../../src/server/listen/listen.ts";
import { maxPipelinedRequests } from "../../src/server/listen/h1-server.ts";
import { proxyGet, startClient, startServer, waitFor, type TestServer } from "../helpers.ts";
import { bodyOf, rawExchange, runScript, slowRegistry, statusOf } from "./fixtures/faults/util.ts";
import { connectRaw, openGet, type RawClient } from "./raw-client.ts";

const ok = "GET http://app-1/metrics HTTP/1.1\r\nHost: app-1\r\n";

describe("HTTP/1.1 requests and bytes that are not a proxied scrape", () => {
  let s: TestServer;
  let c: PromproxyClient;
  before(async () => {
    s = await startServer({ maxScrapeTimeoutMs: 60_000 });
    c = await startClient(s.url, "app-1");
  });
  after(async () => {
    await c.stop();
    await s.close();
  });

  const timeoutHeader = (v: string) => `${ok}X-Prometheus-Scrape-Timeout-Seconds: ${v}\r\nConnection: close\r\n\r\n`;
  const cases: { what: string; send: (string | Buffer)[]; status: number[]; body?: RegExp }[] = [
    { what: "an origin-form request for an unknown path", send: ["GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"], status: [404], body: /^promproxy: no route "\/nope"/ },
    { what: "an unknown local path", send: ["GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"], status: [404], body: /^promproxy: no route/ },
    { what: "a path that climbs", send: ["GET /clients/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"], status: [404], body: /^promproxy: / },
    { what: "CONNECT to an unknown host", send: ["CONNECT nobody:443 HTTP/1.1\r\nHost: nobody:443\r\n\r\n"], status: [405], body: /^promproxy: CONNECT is not supported/ },
    { what: "CONNECT to a connected client", send: ["CONNECT app-1:80 HTTP/1.1\r\nHost: app-1:80\r\n\r\n"], status: [405], body: /^promproxy: CONNECT is not supported/ },
    ...["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"].map((m) => ({
      what: `${m} to a connected client`,
      send: [`${m} http://app-1/metrics HTTP/1.1\r\nHost: app-1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`],
      status: [405],
      body: new RegExp(`^promproxy: method ${m} not allowed`),
    })),
    { what: "POST to /clients", send: ["POST /clients HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"], status: [405], body: /^promproxy: method POST not allowed/ },
    { what: "a 20 KB request line", send: [`GET http://app-1/metrics?${"q=1&".repeat(5_000)} HTTP/1.1\r\nHost: app-1\r\n\r\n`], status: [414, 431] },
    { what: "a 20 KB header", send: [`${ok}X-Big: ${"a".repeat(20_000)}\r\n\r\n`], status: [431] },
    { what: "2 000 small headers", send: [`${ok}${Array.from({ length: 2_000 }, (_, i) => `X-H${i}: v\r\n`).join("")}\r\n`], status: [431] },
    ...["abc", "-1", "0", "NaN", "", "Infinity", "1e", "0x10", "1s", "10, 20"].map((v) => ({
      what: `timeout header ${JSON.stringify(v)} for a connected client`,
      send: [timeoutHeader(v)],
      status: [400],
      body: /^promproxy: bad X-Prometheus-Scrape-Timeout-Seconds/,
    })),
    { what: "timeout header 1e300 (clamped, the scrape proceeds)", send: [timeoutHeader("1e300")], status: [200], body: /^test_up_total\{name="app-1"\} 1$/m },
    { what: "two timeout headers", send: [`${ok}X-Prometheus-Scrape-Timeout-Seconds: 10\r\nX-Prometheus-Scrape-Timeout-Seconds: 20\r\nConnection: close\r\n\r\n`], status: [400], body: /^promproxy: bad X-Prometheus-Scrape-Timeout-Seconds "10, 20"/ },
    { what: "a bad port in the URI", send: ["GET http://app-1:99999/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"], status: [400], body: /^promproxy: not a valid absolute URI/ },
    { what: "a non-http scheme", send: ["GET ftp://app-1/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"], status: [400], body: /^promproxy: unsupported scheme/ },
    { what: "an asterisk target", send: ["GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"], status: [400], body: /^promproxy: / },
    { what: "binary garbage", send: [Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe, 0x0d, 0x0a, 0x0d, 0x0a])], status: [400] },
    { what: "a TLS ClientHello on the cleartext port", send: [Buffer.concat([Buffer.from("16030100c8010000c40303", "hex"), Buffer.alloc(200, 7)])], status: [400] },
    { what: "an SSH banner", send: ["SSH-2.0-OpenSSH_9.2\r\n"], status: [400] },
    { what: "a bare LF request with a NUL in the target", send: ["GET http://app-1/me\u0000trics HTTP/1.1\nHost: x\n\n"], status: [400] },
    // The first bytes decide between HTTP/1.1 and HTTP/2; a request whose "P" arrives alone is still HTTP/1.1.
    { what: 'a POST whose "P" arrives in a segment of its own', send: ["P", `OST http://app-1/metrics HTTP/1.1\r\nHost: app-1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`], status: [405] },
    { what: "a GET whose first 12 bytes arrive one at a time", send: [...`${ok}Connection: close\r\n\r\n`.slice(0, 12), `${ok}Connection: close\r\n\r\n`.slice(12)], status: [200] },
  ];
  for (const k of cases) {
    test(`${k.what}: ${k.status.join(" or ")}`, async () => {
      const r = await rawExchange(s.port, k.send, { gapMs: 5 });
      const status = statusOf(r.text);
      assert.ok(k.status.includes(status), `want ${k.status.join("/")}, got ${JSON.stringify(r.text.slice(0, 300))}`);
      if (k.body) assert.match(bodyOf(r.text), k.body);
      if (status >= 400) assert.ok(r.closed, "the server closes the connection after an error it cannot continue from");
    });
  }

  test("the HTTP/2 preface followed by garbage: the connection is closed (GOAWAY), the server carries on", async () => {
    const r = await rawExchange(s.port, ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Buffer.alloc(64, 0xff)]);
    assert.ok(r.closed, "closed");
    assert.equal(statusOf(r.text), 0, "no HTTP/1.1 answer on an HTTP/2 connection");
    assert.equal((await proxyGet(s.port, "http://app-1/metrics")).status, 200);
  });

  test("the server still serves after all of the above", async () => {
    const r = await proxyGet(s.port, "http://app-1/metrics");
    assert.equal(r.status, 200);
    assert.equal(s.server.clients().length, 1);
  });
});

describe("connections that never say anything", () => {
  test("no bytes at all (slowloris): closed after the preface timeout, others unaffected", async () => {
    // The preface timeout is a listen option; the default (10 s) is too long for a test.
    const server = createServer({ logger: silentLogger });
    const { port } = await server.listen({ host: "127.0.0.1", port: 0, prefaceTimeoutMs: 300 });
    try {
      const idle = rawExchange(port, [], { timeoutMs: 5_000 });
      const partialH2 = rawExchange(port, ["PRI * HTTP/2.0\r\n"], { timeoutMs: 5_000 });
      const partialP = rawExchange(port, ["P"], { timeoutMs: 5_000 });
      // Meanwhile a normal request is answered at once.
      assert.equal((await proxyGet(port, "http://nobody/metrics")).status, 404);
      for (const [what, p] of [["silent", idle], ["half an HTTP/2 preface", partialH2], ['a lone "P"', partialP]] as const) {
        const r = await p;
        assert.ok(r.closed, `${what}: closed by the server`);
        assert.equal(r.text, "", `${what}: nothing written back`);
        assert.ok(r.ms >= 150 && r.ms < 5_000, `${what}: closed after ${r.ms.toFixed(0)} ms, want about 300 (not at once, not never)`);
      }
    } finally {
      await server.close({ graceMs: 200 });
    }
  });

  test("an HTTP/2 peer that stops answering PINGs is dropped after one missed PING", async () => {
    let h2requests = 0;
    const bound = await listenOnePort(
      { host: "127.0.0.1", port: 0 },
      {
        h1Handler: (_req, res) => res.end(),
        h2Handler: (_req, res) => {
          h2requests++;
          res.end();
        },
        logger: silentLogger,
        pingIntervalMs: 150,
      },
    );
    const live = http2.connect(`http://127.0.0.1:${bound.port}`);
    live.on("error", () => {});
    try {
      // A dead peer: it sends the preface and an empty SETTINGS frame, then never reads or answers again.
      const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
      const dead = rawExchange(bound.port, ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", settings], { timeoutMs: 5_000 });
      const r = await dead;
      assert.ok(r.closed, "the dead peer's connection was closed");
      // Within two or three intervals; Node's own limit (10 unanswered PINGs) would take over 1.5 s here.
      assert.ok(r.ms < 1_000, `closed after ${r.ms.toFixed(0)} ms, want within a few PING intervals of 150 ms`);
      // A live peer (Node answers PINGs) outlasts many intervals and still works.
      await new Promise((resolve) => setTimeout(resolve, 800));
      assert.equal(live.closed || live.destroyed, false, "the live session survives");
      const req = live.request({ ":path": "/x" });
      req.resume();
      await new Promise((resolve, reject) => {
        req.on("end", resolve);
        req.on("error", reject);
      });
      assert.equal(h2requests, 1);
    } finally {
      live.destroy();
      await bound.close(200);
    }
  });
});

test("100 000 distinct unknown hostnames: each gets 404, and the server's memory does not grow", { timeout: 120_000 }, async () => {
  const srv = runScript("server-process.ts", [], ["--expose-gc"]);
  try {
    const port = Number((await srv.waitLine(/^port \d+$/)).split(" ")[1]);
    const mem = async () => {
      const from = srv.lines().length;
      srv.send("mem");
      const [heap = 0, rss = 0, handles = 0] = (await srv.waitLine(/^mem /, 10_000, from)).split(" ").slice(1).map(Number);
      return { heap, rss, handles };
    };
    const warm = await blastUnknownHosts(port, 0, 10_000);
    assert.deepEqual(warm, { notFound: 10_000, other: 0 });
    const m1 = await mem();
    const run = await blastUnknownHosts(port, 10_000, 100_000);
    assert.deepEqual(run, { notFound: 100_000, other: 0 });
    const m2 = await mem();
    const growth = m2.heap - m1.heap;
    // A map entry per name would be several MB for 100k names; garbage-collected noise is well under 2 MiB.
    assert.ok(growth < 2 * 1024 * 1024, `heap grew by ${(growth / 1024).toFixed(0)} KiB over 100k unknown names (rss ${(m1.rss / 2 ** 20).toFixed(0)} -> ${(m2.rss / 2 ** 20).toFixed(0)} MiB)`);
    assert.ok(m2.handles <= m1.handles + 2, `active handles ${m1.handles} -> ${m2.handles}`);
    // And no metric label per name.
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.doesNotMatch(metrics, /unknown\.example/);
    assert.match(metrics, /promproxy_scrapes_total\{outcome="unknown_client"\} 110000/);
  } finally {
    srv.child.stdin?.end();
    await Promise.race([srv.exited, new Promise((r) => setTimeout(r, 3_000))]);
    await srv.kill();
  }
});

/**
 * Sends `count` proxy requests for distinct unknown hostnames, pipelined in
 * batches on a few keep-alive connections, and counts the answers. A batch is at most `maxPipelinedRequests`
 * (past it the server drops the connection: it was 250 while that limit was 256).
 */
function blastUnknownHosts(port: number, from: number, count: number, connections = 8, batch = maxPipelinedRequests): Promise<{ notFound: number; other: number }> {
  let next = from;
  const end = from + count;
  let notFound = 0;
  let other = 0;
  const marker = "HTTP/1.1 ";
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1");
      let carry = "";
      let pending = 0;
      const send = () => {
        if (next >= end) return void socket.end();
        const n = Math.min(batch, end - next);
        let requests = "";
        for (let i = 0; i < n; i++, next++) {
          requests += `GET http://h${next}.unknown.example:9100/metrics HTTP/1.1\r\nHost: h${next}.unknown.example:9100\r\n\r\n`;
        }
        pending = n;
        socket.write(requests);
      };
      socket.on("data", (b: Buffer) => {
        // Count status lines; keep a partial marker at the end for the next chunk.
        const text = carry + b.toString("latin1");
        let i = 0;
        for (;;) {
          const at = text.indexOf(marker, i);
          if (at < 0 || at + marker.length + 3 > text.length) break;
          if (text.startsWith("404", at + marker.length)) notFound++;
          else other++;
          pending--;
          i = at + marker.length + 3;
        }
        carry = text.slice(Math.max(i, text.length - marker.length - 2));
        if (pending === 0) send();
      });
      socket.on("error", reject);
      socket.on("close", () => resolve());
      socket.once("connect", send);
    });
  return Promise.all(Array.from({ length: connections }, one)).then(() => ({ notFound, other }));
}

describe("hellos the server refuses", () => {
  let s: TestServer;
  let holder: PromproxyClient;
  const limits = { maxLabels: 4, maxLabelValueLength: 32, maxTargets: 4 };
  before(async () => {
    s = await startServer(limits);
    holder = await startClient(s.url, "app-1");
  });
  after(async () => {
    await holder.stop();
    await s.close();
  });

  const label63 = "a".repeat(63);
  // 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 characters: the longest valid name (accepted below).
  const cases: { what: string; hello: Parameters<typeof connectRaw>[1]; code: Code }[] = [
    { what: "an empty name", hello: { name: "" }, code: Code.InvalidArgument },
    { what: "a name of 254 characters", hello: { name: `${label63}.${label63}.${label63}.${"a".repeat(62)}` }, code: Code.InvalidArgument },
    { what: "a DNS label of 64 characters", hello: { name: `${"a".repeat(64)}.example` }, code: Code.InvalidArgument },
    ...["app_1", "-app", "app-", "a..b", ".app", "app.", "äpp", "app 1", "app/1", "app:80", "app\u0000", "*"].map((name) => ({
      what: `the non-DNS name ${JSON.stringify(name)}`,
      hello: { name },
      code: Code.InvalidArgument,
    })),
    { what: "a name held by a connected client", hello: { name: "app-1" }, code: Code.AlreadyExists },
    { what: "a name held by a connected client, in other case", hello: { name: "APP-1" }, code: Code.AlreadyExists },
    { what: "too many labels", hello: { name: "x", labels: { a: "1", b: "2", c: "3", d: "4", e: "5" } }, code: Code.InvalidArgument },
    { what: "a too-large label value", hello: { name: "x", labels: { a: "v".repeat(33) } }, code: Code.InvalidArgument },
    { what: "a label name that is not one", hello: { name: "x", labels: { "1a": "v" } }, code: Code.InvalidArgument },
    { what: "a reserved label name", hello: { name: "x", labels: { __address__: "evil:80" } }, code: Code.InvalidArgument },
    { what: "too many targets", hello: { name: "x", targets: [1, 2, 3, 4, 5].map((port) => ({ port, path: "/metrics" })) }, code: Code.InvalidArgument },
    { what: "a target port out of range", hello: { name: "x", targets: [{ port: 70_000, path: "/metrics" }] }, code: Code.InvalidArgument },
    { what: "a target path without a slash", hello: { name: "x", targets: [{ port: 1, path: "metrics" }] }, code: Code.InvalidArgument },
    { what: "a target path with a query", hello: { name: "x", targets: [{ port: 1, path: "/metrics?x=1" }] }, code: Code.InvalidArgument },
    { what: "a target announced twice", hello: { name: "x", targets: [{ port: 1, path: "/m" }, { port: 1, path: "/m" }] }, code: Code.InvalidArgument },
    { what: "too many target labels", hello: { name: "x", targets: [{ port: 1, path: "/m", labels: { a: "1", b: "2", c: "3", d: "4", e: "5" } }] }, code: Code.InvalidArgument },
  ];
  for (const k of cases) {
    test(`${k.what}: ${Code[k.code]}`, async () => {
      const err = await connectRaw(s.url, k.hello).then(
        async (raw) => {
          await raw.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      assert.ok(err instanceof ConnectError, `refused with a ConnectError, got ${String(err)}`);
      assert.equal(err.code, k.code, `${Code[err.code]}: ${err.rawMessage}`);
      assert.ok(err.rawMessage.length > 0 && err.rawMessage.length < 600, "a one-line reason");
      // Nothing changed: the holder keeps its name.
      assert.deepEqual(s.server.clients().map((c) => c.name), ["app-1"]);
    });
  }

  test("at the limits: a 253-character name, 4 labels with 32-character values, 4 targets: accepted", async () => {
    const name = `${label63}.${label63}.${label63}.${"b".repeat(61)}`;
    const labels = { a: "v".repeat(32), b: "", c: "3", d: "4" };
    const targets = [1, 2, 3, 4].map((port) => ({ port, path: "/metrics", labels }));
    const raw = await connectRaw(s.url, { name: name.toUpperCase(), labels, targets });
    try {
      assert.ok(s.server.clients().some((c) => c.name === name), "kept in lower case");
    } finally {
      await raw.close();
    }
  });
});

/** Opens a Scrape stream and sends exactly `frames` (no hello unless listed), then half-closes or keeps it open. */
async function streamOf(url: string, frames: ClientFrame[], keepOpen = false): Promise<ConnectError | undefined> {
  const sessionManager = new Http2SessionManager(url);
  const rpc = createRpcClient(ScrapeService, createGrpcTransport({ baseUrl: url, sessionManager }));
  const stop = new AbortController();
  async function* requests() {
    for (const f of frames) yield f;
    if (keepOpen) await new Promise((resolve) => stop.signal.addEventListener("abort", resolve, { once: true }));
  }
  try {
    for await (const _ of rpc.scrape(requests())) {
      /* nothing expected */
    }
    return undefined;
  } catch (e) {
    return ConnectError.from(e);
  } finally {
    stop.abort();
    sessionManager.abort();
  }
}

describe("frames before the hello", () => {
  const frame = (f: ClientFrame["frame"]) => create(ClientFrameSchema, { frame: f });
  for (const [what, frames] of [
    ["a pong first", [frame({ case: "pong", value: { $typeName: "promproxy.v1.Pong", nonce: 1n } })]],
    ["a result head first", [frame({ case: "head", value: { $typeName: "promproxy.v1.ResultHead", scrapeId: 1n, status: 200, headers: [] } })]],
    ["an empty frame first", [create(ClientFrameSchema)]],
    ["no frame at all (the stream ends)", []],
  ] as const) {
    test(`${what}: FailedPrecondition`, async () => {
      const s = await startServer();
      try {
        const err = await streamOf(s.url, [...frames]);
        assert.equal(err?.code, Code.FailedPrecondition, err?.message);
        assert.equal(s.server.clients().length, 0);
      } finally {
        await s.close();
      }
    });
  }

  test("no frame within the hello timeout: DeadlineExceeded", { timeout: 10_000 }, async () => {
    const s = await startServer({ helloTimeoutMs: 200 });
    try {
      const t0 = performance.now();
      const err = await streamOf(s.url, [], true);
      assert.equal(err?.code, Code.DeadlineExceeded, err?.message);
      assert.ok(performance.now() - t0 < 3_000);
    } finally {
      await s.close();
    }
  });
});

describe("protocol violations after the welcome end the stream, fail its scrapes at once, and free the name", () => {
  const limits = { maxChunkBytes: 1024, creditBytes: 4096 };
  const ct = { "content-type": "text/plain" };
  /** Each case gets an order for scrape `id` first (unless `noOrder`), then breaks the rules. */
  const cases: { what: string; code: Code; noOrder?: boolean; act: (raw: RawClient, id: bigint) => void }[] = [
    { what: "a head for a scrape never ordered", code: Code.InvalidArgument, noOrder: true, act: (raw) => raw.head(99n) },
    { what: "a chunk for a scrape never ordered", code: Code.InvalidArgument, noOrder: true, act: (raw) => raw.chunk(99n, "x 1\n") },
    { what: "an end for a scrape never ordered", code: Code.InvalidArgument, noOrder: true, act: (raw) => raw.end(99n) },
    { what: "a second hello", code: Code.InvalidArgument, noOrder: true, act: (raw) => raw.send({ frame: { case: "hello", value: { name: "other" } } }) },
    { what: "a second head", code: Code.InvalidArgument, act: (raw, id) => (raw.head(id, 200, ct), raw.head(id, 200, ct)) },
    { what: "a chunk before the head", code: Code.InvalidArgument, act: (raw, id) => raw.chunk(id, "x 1\n") },
    { what: "an end without head or error", code: Code.InvalidArgument, act: (raw, id) => raw.end(id) },
    { what: "a chunk above maxChunkBytes", code: Code.ResourceExhausted, act: (raw, id) => (raw.head(id, 200, ct), raw.chunk(id, Buffer.alloc(1025, 120))) },
  ];
  for (const k of cases) {
    test(`${k.what}: ${Code[k.code]}`, async () => {
      const s = await startServer(limits);
      let raw: RawClient | undefined;
      try {
        raw = await connectRaw(s.url, { name: "bad" });
        // Keep Prometheus from reading, so that credit is not replenished while the case runs.
        const scrape = k.noOrder ? undefined : openGet(s.port, "http://bad/metrics", { "x-prometheus-scrape-timeout-seconds": "30" });
        let id = 0n;
        if (scrape) id = (await raw.next("order")).scrapeId;
        k.act(raw, id);
        const err = await raw.ended;
        assert.equal(err?.code, k.code, `${err ? Code[err.code] : "no error"}: ${err?.rawMessage}`);
        assert.match(err?.rawMessage ?? "", /\S/, "says why");
        if (scrape) {
          const seen = await scrape.done;
          assert.ok(seen.status === 502 || (seen.status === 200 && !seen.complete), `the scrape fails: ${seen.status} ${seen.body}`);
        }
        await waitFor("the name to be free", () => s.server.clients().length === 0, 2_000, 10);
        // The name is free again for a well-behaved client.
        const good = await connectRaw(s.url, { name: "bad" });
        await good.close();
      } finally {
        raw?.abort();
        await s.close();
      }
    });
  }
});

describe("more body bytes than the credit allows: ResourceExhausted", () => {
  const limits = { maxChunkBytes: 1024, creditBytes: 4096 };
  test("while Prometheus is not reading (the server grants nothing more)", { timeout: 60_000 }, async () => {
    const s = await startServer(limits);
    let raw: RawClient | undefined;
    // Prometheus asks, then reads nothing: once the socket buffers are full the server stops granting.
    const stalled = net.connect(s.port, "127.0.0.1");
    stalled.on("error", () => {});
    try {
      raw = await connectRaw(s.url, { name: "greedy" });
      stalled.write("GET http://greedy/metrics HTTP/1.1\r\nHost: greedy\r\nX-Prometheus-Scrape-Timeout-Seconds: 60\r\n\r\n");
      stalled.pause();
      const id = (await raw.next("order")).scrapeId;
      raw.head(id, 200, { "content-type": "text/plain" });
      // Ignore credit: push 1 KiB chunks until the server ends the stream (at most 64 MiB).
      let ended = false;
      void raw.ended.then(() => (ended = true));
      const chunk = Buffer.alloc(1024, 120);
      for (let sent = 0; !ended && sent < 64 * 1024; sent++) {
        raw.chunk(id, chunk);
        if (sent % 256 === 255) await new Promise((resolve) => setTimeout(resolve, 1));
      }
      const err = await raw.ended;
      assert.equal(err?.code, Code.ResourceExhausted, `${err ? Code[err.code] : "no error"}: ${err?.rawMessage}`);
      assert.match(err?.rawMessage ?? "", /credit/);
      await waitFor("the name to be free", () => s.server.clients().length === 0, 2_000, 10);
    } finally {
      stalled.destroy();
      raw?.abort();
      await s.close();
    }
  });

  test("after Prometheus gave up (late frames are accepted only within the credit left)", async () => {
    const s = await startServer(limits);
    let raw: RawClient | undefined;
    try {
      raw = await connectRaw(s.url, { name: "late" });
      const scrape = openGet(s.port, "http://late/metrics", { "x-prometheus-scrape-timeout-seconds": "30" });
      const id = (await raw.next("order")).scrapeId;
      scrape.destroy();
      await raw.next("cancel", (c) => c.scrapeId === id);
      raw.head(id, 200, { "content-type": "text/plain" });
      for (let i = 0; i < 4; i++) raw.chunk(id, Buffer.alloc(1024, 120)); // exactly the credit: accepted
      raw.send({ frame: { case: "pong", value: { nonce: 1n } } });
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(s.server.clients().length, 1, "within the credit, late frames are harmless");
      raw.chunk(id, Buffer.alloc(1, 120)); // one byte more
      const err = await raw.ended;
      assert.equal(err?.code, Code.ResourceExhausted, `${err ? Code[err.code] : "no error"}: ${err?.rawMessage}`);
    } finally {
      raw?.abort();
      await s.close();
    }
  });
});

describe("floods", () => {
  test("a client flooding results nobody asked for is cut off at the first; the server and other clients carry on", async () => {
    const s = await startServer();
    const c = await startClient(s.url, "app-1");
    let raw: RawClient | undefined;
    try {
      raw = await connectRaw(s.url, { name: "flood" });
      const junk = Buffer.alloc(512, 120);
      for (let i = 1; i <= 20_000; i++) {
        const id = BigInt(1_000_000 + i);
        raw.head(id);
        raw.chunk(id, junk);
        raw.end(id);
      }
      const err = await raw.ended;
      assert.equal(err?.code, Code.InvalidArgument, err?.message);
      assert.match(err?.rawMessage ?? "", /never ordered/);
      await waitFor("the flooder to be gone", () => s.server.clients().length === 1, 5_000, 10);
      const r = await proxyGet(s.port, "http://app-1/metrics");
      assert.equal(r.status, 200);
      assert.equal((await proxyGet(s.port, "http://flood/metrics")).status, 503, "vanished: its stream broke");
    } finally {
      raw?.abort();
      await c.stop();
      await s.close();
    }
  });

  test("a client flooding pongs stays connected and the server stays responsive", async () => {
    const s = await startServer();
    const c = await startClient(s.url, "app-1");
    let raw: RawClient | undefined;
    try {
      raw = await connectRaw(s.url, { name: "chatty" });
      for (let i = 0; i < 50_000; i++) raw.send({ frame: { case: "pong", value: { nonce: BigInt(i) } } });
      const t0 = performance.now();
      const r = await proxyGet(s.port, "http://app-1/metrics");
      assert.equal(r.status, 200);
      assert.ok(performance.now() - t0 < 5_000);
      assert.deepEqual(s.server.clients().map((x) => x.name).sort(), ["app-1", "chatty"]);
    } finally {
      raw?.abort();
      await c.stop();
      await s.close();
    }
  });

  test("Prometheus flooding one client beyond its in-flight limit (no wait for a place): 503 at once for the excess, others unaffected, nothing stuck", async () => {
    const s = await startServer({ maxScrapesInFlight: 8, maxScrapesWaiting: 0 });
    const slow = slowRegistry(3_000);
    const busy = await startClient(s.url, "busy", { registry: slow, maxScrapesInFlight: 64 });
    const other = await startClient(s.url, "other");
    try {
      const t0 = performance.now();
      const flood = Array.from({ length: 200 }, () => openGet(s.port, "http://busy/metrics"));
      const answers = flood.map((f) => f.done.then((r) => ({ r, ms: performance.now() - t0 })));
      // While the 8 admitted scrapes are still collecting, another client is scraped as usual.
      await waitFor("the limit to be reached", () => s.server.clients().some((x) => x.name === "busy" && x.scrapesInFlight === 8), 2_000, 5);
      const meanwhile = await proxyGet(s.port, "http://other/metrics");
      assert.equal(meanwhile.status, 200);
      assert.ok(performance.now() - t0 < 2_500, "the other client was served while the flood was in flight");
      const refusedBy = await Promise.all(answers);
      const served = refusedBy.filter((x) => x.r.status === 200);
      const refused = refusedBy.filter((x) => x.r.status === 503);
      assert.equal(served.length, 8, "exactly the limit is served");
      assert.equal(refused.length, 192);
      for (const x of refused) {
        assert.equal(x.r.body.toString(), 'promproxy: client "busy" has 8 scrapes in flight, the maximum\n');
        assert.ok(x.ms < 2_500, `a refusal took ${x.ms.toFixed(0)} ms: it must not wait for the slow scrapes (3 s)`);
      }
      // Afterwards nothing is left in flight, and the flooded client serves again.
      await waitFor("no scrape left in flight", () => s.server.clients().every((x) => x.scrapesInFlight === 0), 5_000);
      // The 8 admitted scrapes arrived together and shared one render (the client renders once per format at a time).
      const rendered = slow.started;
      assert.ok(rendered >= 1 && rendered <= 8, `${rendered} renders for 8 scrapes`);
      const again = openGet(s.port, "http://busy/metrics");
      await waitFor("a new scrape to be admitted", () => slow.started === rendered + 1, 2_000, 5);
      slow.release();
      assert.equal((await again.done).status, 200);
    } finally {
      slow.release();
      await busy.stop();
      await other.stop();
      await s.close();
    }
  });
});
