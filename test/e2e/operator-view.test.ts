/**
 * What operators see, end to end over real sockets: the status page, its JSON
 * and /metrics cost the same whatever the poll rate (counted: distinct
 * snapshots per second, never times); a vanished client's 503 says in words
 * what happened; a name clash is logged at warn once per name per minute, and
 * the routine clash of a client searching for replicas is not.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { ClientFrameSchema } from "../../gen/promproxy/v1/scrape_pb.ts";
import { createClient, silentLogger, type PromproxyClient } from "../../src/client/index.ts";
import type { StatusJson } from "../../src/server/status/status-json.ts";
import { proxyGet, startClient, startServer, testRegistry, waitFor } from "../helpers.ts";
import { connectRaw } from "./raw-client.ts";

/** Requests `path` back to back on `n` keep-alive connections until `until`; the bodies. */
async function poll(port: number, path: string, n: number, until: number): Promise<string[]> {
  const bodies: string[] = [];
  await Promise.all(
    Array.from({ length: n }, async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      while (Date.now() < until) {
        bodies.push(
          await new Promise<string>((resolve, reject) => {
            http.get({ host: "127.0.0.1", port, path, agent }, (res) => {
              let text = "";
              res.setEncoding("utf8");
              res.on("data", (d: string) => (text += d));
              res.on("end", () => resolve(text));
            }).on("error", reject);
          }),
        );
      }
      agent.destroy();
    }),
  );
  return bodies;
}

test("four pollers of /, /status.json and /metrics: at most one build a second, however many requests", { timeout: 60_000 }, async () => {
  const s = await startServer();
  const clients: PromproxyClient[] = [];
  let scraping = true;
  let scrapes: Promise<void> | undefined;
  try {
    for (let i = 0; i < 5; i++) clients.push(await startClient(s.url, `app-${i}`));
    // Scrapes all along: every build of the page or of /metrics would differ from the one before.
    scrapes = (async () => {
      for (let i = 0; scraping; i++) await proxyGet(s.port, `http://app-${i % 5}/metrics`);
    })();
    for (const path of ["/", "/status.json", "/metrics"]) {
      const started = Date.now();
      const bodies = await poll(s.port, path, 4, started + 2_500);
      const seconds = (Date.now() - started) / 1000;
      const builds = path === "/status.json" ? new Set(bodies.map((b) => (JSON.parse(b) as StatusJson).now)).size : new Set(bodies).size;
      assert.ok(bodies.length >= 20, `${path}: requests answered: ${bodies.length}`);
      assert.ok(builds <= Math.ceil(seconds) + 1, `${path}: ${builds} builds for ${bodies.length} requests in ${seconds.toFixed(1)} s`);
    }
    const json = (await (await fetch(`${s.url}/status.json`)).json()) as StatusJson;
    assert.equal(json.clientsTotal, 5);
  } finally {
    scraping = false;
    await scrapes?.catch(() => {});
    await Promise.all(clients.map((c) => c.stop()));
    await s.close();
  }
});

/** A Scrape stream on a socket of our own (to reset it): hello, then nothing. */
async function rawStream(url: string, name: string): Promise<net.Socket> {
  let socket: net.Socket | undefined;
  const session = http2.connect(url, { createConnection: () => (socket = net.connect(Number(new URL(url).port), "127.0.0.1")) });
  session.on("error", () => {});
  const stream = session.request({ ":method": "POST", ":path": "/promproxy.v1.ScrapeService/Scrape", "content-type": "application/grpc", te: "trailers" });
  stream.on("error", () => {});
  const hello = toBinary(ClientFrameSchema, create(ClientFrameSchema, { frame: { case: "hello", value: { name, version: "raw" } } }));
  const frame = Buffer.alloc(5 + hello.length);
  frame.writeUInt32BE(hello.length, 1);
  frame.set(hello, 5);
  stream.write(frame);
  await new Promise((r) => stream.once("data", r)); // the welcome
  return socket as net.Socket;
}

test("a vanished client's 503 and the status page say in words what happened, never Node's words", { timeout: 30_000 }, async () => {
  const s = await startServer({ vanishedRetentionMs: 60_000, heartbeatIntervalMs: 100, heartbeatTimeoutMs: 400 });
  try {
    const aborted = await connectRaw(s.url, { name: "aborted" });
    aborted.abort();
    (await rawStream(s.url, "reset")).resetAndDestroy();
    (await rawStream(s.url, "closed")).destroy();
    const silent = await connectRaw(s.url, { name: "silent" }, { autoPong: false });
    await waitFor("four vanished", () => s.server.status().vanished.length === 4, 10_000);
    const expect: Record<string, RegExp> = {
      aborted: /client "aborted" disconnected \d+s ago: the client closed its connection \(or cancelled its stream\) without a goodbye/,
      closed: /client "closed" disconnected \d+s ago: the client closed its connection \(or cancelled its stream\) without a goodbye/,
      reset: /client "reset" disconnected \d+s ago: the connection was reset/,
      silent: /client "silent" disconnected \d+s ago: the stream went silent: nothing heard from the client for 0\.4s \(no pong\)/,
    };
    for (const [name, words] of Object.entries(expect)) {
      const res = await proxyGet(s.port, `http://${name}/metrics`);
      assert.equal(res.status, 503);
      assert.match(res.body.toString(), words, name);
    }
    const page = await (await fetch(`${s.url}/`)).text();
    assert.ok(!/Premature close|ECONNRESET|INTERNAL_ERROR/.test(page), "no Node words on the page");
    assert.ok(page.includes("the connection was reset") && page.includes("(no pong)"));
    silent.abort();
  } finally {
    await s.close();
  }
});

test("a name clash is logged at warn once per name per minute, however often the twin retries; the holder's own search is not", { timeout: 30_000 }, async () => {
  const lines: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => void lines.push({ level, message, fields });
  const s = await startServer({ logger: { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") } });
  const holder = await startClient(s.url, "app-1");
  const twins: PromproxyClient[] = [];
  try {
    const twin = (localAddress: string) => {
      const c = createClient({
        name: "app-1",
        serverUrl: s.url,
        registry: testRegistry(),
        logger: silentLogger,
        backoff: { initialMs: 10, maxMs: 20 },
        http2Options: { localAddress } as object,
      });
      twins.push(c);
      c.start().catch(() => {});
    };
    twin("127.0.0.2");
    const clashes = () => s.server.status().refused.find((r) => r.code === "AlreadyExists")?.count ?? 0;
    await waitFor("ten clashes", () => clashes() >= 10, 20_000);
    const warns = lines.filter((l) => l.level === "warn" && /held by another connected client/.test(l.message));
    assert.equal(warns.length, 1, `one line for ${clashes()} refusals`);
    assert.equal(warns[0]?.fields?.["name"], "app-1");
    assert.equal(warns[0]?.fields?.["address"], "127.0.0.2");
    // The same name from the holder's own address (and identity): a client searching for replicas meets this.
    twin("127.0.0.1");
    await waitFor("routine clashes counted", () => s.server.status().refusedRoutine >= 3, 20_000);
    assert.equal(s.server.status().refused.filter((r) => r.code === "AlreadyExists").length, 1, "routine clashes are not listed");
    assert.equal(lines.filter((l) => l.level === "warn" && /held by another/.test(l.message)).length, 1);
  } finally {
    await Promise.all(twins.map((c) => c.stop()));
    await holder.stop();
    await s.close();
  }
});

test("with replicaCount 1 (clients never search) a clash from the holder's own address is a real one: listed and logged", { timeout: 30_000 }, async () => {
  const warns: string[] = [];
  const s = await startServer({ replicaCount: 1, logger: { ...silentLogger, warn: (m: string) => void warns.push(m) } });
  const holder = await startClient(s.url, "app-1");
  const twin = createClient({ name: "app-1", serverUrl: s.url, registry: testRegistry(), logger: silentLogger, backoff: { initialMs: 10, maxMs: 20 } });
  try {
    twin.start().catch(() => {});
    await waitFor("clashes listed", () => (s.server.status().refused.find((r) => r.code === "AlreadyExists")?.count ?? 0) >= 3, 20_000);
    assert.equal(s.server.status().refusedRoutine, 0);
    assert.equal(warns.filter((m) => /held by another connected client/.test(m)).length, 1);
  } finally {
    await twin.stop();
    await holder.stop();
    await s.close();
  }
});

test("a stranger's flood of refused hellos (40 bad names) keeps 20 entries of that kind and pushes out no other kind", { timeout: 60_000 }, async () => {
  const s = await startServer();
  const holder = await startClient(s.url, "app-1");
  const twin = createClient({ name: "app-1", serverUrl: s.url, registry: testRegistry(), logger: silentLogger, http2Options: { localAddress: "127.0.0.2" } as object });
  try {
    twin.start().catch(() => {});
    await waitFor("a clash listed", () => s.server.status().refused.some((r) => r.code === "AlreadyExists"), 20_000);
    await twin.stop();
    for (let i = 0; i < 40; i++) await connectRaw(s.url, { name: `bad name ${i} <b>` }).catch(() => {});
    const json = (await (await fetch(`${s.url}/status.json`)).json()) as StatusJson;
    assert.equal(json.refused.filter((r) => r.code === "InvalidArgument").length, 20);
    assert.equal(json.refused.filter((r) => r.code === "AlreadyExists").length, 1, "the clash is still listed");
    assert.equal(json.refused[0]?.name, "bad name 39 <b>", "the most recent first, as text");
  } finally {
    await twin.stop();
    await holder.stop();
    await s.close();
  }
});
