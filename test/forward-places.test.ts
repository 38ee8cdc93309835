/**
 * Forwarded scrapes between replicas never queue silently behind a stranger's
 * (src/server/peers/forward-places.ts). Two real replicas on loopback, A and
 * B, know each other; clients are held by B only, one ("slow") whose
 * registry never answers until the test lets it. Scrapes enter at A from
 * several source addresses (127.0.0.x), so A forwards them to B:
 * - at `maxForwardsPerPeer` in flight to B, the next scrape, for any client,
 *   is answered 503 at once saying so (counted, logged once), never queued;
 * - one address holds at most half of them, so a good client's scrape from
 *   another address is still served while a stranger holds its share;
 * - a forward that never got a connection here (it never left this replica)
 *   neither blames the peer nor marks it hung.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { Counter, Gauge, Registry } from "prom-client";
import type { PromproxyClient } from "../src/client/index.ts";
import { createServer, type PromproxyServer, type ServerOptions } from "../src/server/index.ts";
import type { ScrapeRequest } from "../src/server/coordinator.ts";
import { createForwardPlaces, sourceShare, type NoPlace } from "../src/server/peers/forward-places.ts";
import { createPeerAuth } from "../src/server/peers/peer-auth.ts";
import { createForwarder } from "../src/server/peers/peer-forward.ts";
import type { Peer } from "../src/server/peers/peer-poller.ts";
import { silentLogger, type Logger } from "../src/shared/logger.ts";
import { freePort } from "./e2e/prometheus.ts";
import { startClient, testRegistry, waitFor } from "./helpers.ts";

const secret = "0123456789abcdef-test-peer-secret";

function capture(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (m: string, f?: Record<string, unknown>) => lines.push(`${m} ${JSON.stringify(f ?? {})}`);
  return { lines, debug() {}, info: log, warn: log, error: log };
}

/** A scrape of `name` through the proxy at `port`, sent from the source address `from`; `abort()` hangs up. */
function scrape(port: number, from: string, name: string, timeoutS = 60) {
  let req!: http.ClientRequest;
  const done = new Promise<{ status: number; body: string }>((resolve) => {
    req = http.request(
      { host: "127.0.0.1", port, localAddress: from, path: `http://${name}/metrics`, headers: { "x-prometheus-scrape-timeout-seconds": String(timeoutS) }, agent: false },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", () => resolve({ status: 0, body: "" }));
    req.end();
  });
  return { done, abort: () => req.destroy() };
}

/** A registry whose scrape answers only once `release()` is called. */
function hangingRegistry() {
  let release = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const registry = new Registry();
  new Gauge({ name: "slow_metric", help: "Answers when the test lets it.", registers: [registry], async collect() { await gate; this.set(1); } });
  return { registry, release: () => release() };
}

/** Replicas A and B knowing each other; "slow" and "good" held by B only. */
async function pair(optionsA: ServerOptions) {
  const [portA, portB] = [await freePort(), await freePort()];
  const peers = [`http://127.0.0.1:${portA}`, `http://127.0.0.1:${portB}`];
  const common = { peers, peerSecret: secret, peerPollIntervalMs: 200, peerTimeoutMs: 1_000 };
  const a = createServer({ logger: silentLogger, replicaId: "A", ...common, ...optionsA });
  // B takes every forwarded scrape (300 of one client's in flight): only A's cap is under test.
  const b = createServer({ logger: silentLogger, replicaId: "B", ...common, maxScrapesInFlight: 300 });
  await a.listen({ host: "127.0.0.1", port: portA });
  await b.listen({ host: "127.0.0.1", port: portB });
  const hang = hangingRegistry();
  const clients: PromproxyClient[] = [
    await startClient(`http://127.0.0.1:${portB}`, "slow", { registry: hang.registry, maxScrapesInFlight: 300 }),
    await startClient(`http://127.0.0.1:${portB}`, "good", { registry: testRegistry("good") }),
  ];
  await waitFor("A lists B's clients", async () => {
    const listed = (await (await fetch(`http://127.0.0.1:${portA}/clients`)).json()) as { targets: string[] }[];
    return listed.length === 2;
  }, 10_000);
  const held: ReturnType<typeof scrape>[] = [];
  return {
    a, b, portA, held,
    /** Scrapes of "slow" from `from` that B holds (it sees them in flight): `n` of them. */
    async hold(from: string, n: number) {
      const before = b.status().scrapesInFlight;
      for (let i = 0; i < n; i++) held.push(scrape(portA, from, "slow"));
      await waitFor(`${n} more scrapes in flight at B`, () => b.status().scrapesInFlight === before + n, 20_000);
    },
    /** Hangs up every held scrape and waits until B holds none. */
    async letGo() {
      for (const h of held.splice(0)) h.abort();
      await waitFor("no scrape in flight at B", () => b.status().scrapesInFlight === 0, 20_000);
    },
    async close() {
      for (const h of held.splice(0)) h.abort();
      hang.release();
      await Promise.all(clients.map((c) => c.stop()));
      await a.close({ graceMs: 200 });
      await b.close({ graceMs: 200 });
    },
  };
}

/** The value of one series of a registry, 0 when absent. */
async function sample(registry: Registry, series: string): Promise<number> {
  const line = (await registry.metrics()).split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

describe("forwarded scrapes to one peer: maxForwardsPerPeer 4", { timeout: 90_000 }, () => {
  const registry = new Registry();
  const logger = capture();
  let p: Awaited<ReturnType<typeof pair>>;
  before(async () => {
    p = await pair({ maxForwardsPerPeer: 4, registry, logger });
  });
  after(() => p.close());

  test("at 4 in flight to B, the 5th (of any client) is 503 at once saying so, counted, logged once; then served when one ends", async () => {
    await p.hold("127.0.0.2", 2);
    await p.hold("127.0.0.3", 2); // at the cap: all four reached B
    const over = await scrape(p.portA, "127.0.0.4", "slow").done;
    assert.equal(over.status, 503, over.body);
    assert.match(over.body, /^promproxy: scrape of "slow" not forwarded: replica B \(http:\/\/127\.0\.0\.1:\d+\) has 4 scrapes from this replica in flight, the most \(maxForwardsPerPeer 4\); retry later\n$/);
    const good = await scrape(p.portA, "127.0.0.4", "good").done;
    assert.equal(good.status, 503, "the cap is per peer, whatever the client");
    assert.equal(p.b.status().scrapesInFlight, 4, "B never saw them");
    assert.equal(await sample(registry, 'promproxy_forwarded_scrapes_total{outcome="too_many"}'), 2);
    assert.equal(logger.lines.filter((l) => l.startsWith("refusing forwarded scrapes: replica B")).length, 1, `logged once: ${logger.lines.join("\n")}`);
    p.held.shift()!.abort();
    await waitFor("3 in flight at B", () => p.b.status().scrapesInFlight === 3);
    const again = await scrape(p.portA, "127.0.0.4", "good").done;
    assert.equal(again.status, 200, again.body);
    assert.match(again.body, /test_up_total\{name="good"\} 1/);
    await p.letGo();
  });

  test("one address holds at most half: a stranger's 5 scrapes get 2 places, the good client's scrape from another address is served", async () => {
    const before = await sample(registry, 'promproxy_forwarded_scrapes_total{outcome="too_many_from_address"}');
    await p.hold("127.0.0.2", 2);
    const refused = await Promise.all([1, 2, 3].map(() => scrape(p.portA, "127.0.0.2", "slow").done));
    for (const r of refused) {
      assert.equal(r.status, 503, r.body);
      assert.match(r.body, /^promproxy: scrape of "slow" not forwarded: replica B \(http:\/\/127\.0\.0\.1:\d+\) has 2 scrapes from 127\.0\.0\.2 in flight through this replica, the most one address may have \(half of maxForwardsPerPeer 4\); retry later\n$/);
    }
    assert.equal(p.b.status().scrapesInFlight, 2);
    assert.equal(await sample(registry, 'promproxy_forwarded_scrapes_total{outcome="too_many_from_address"}'), before + 3);
    for (let i = 0; i < 2; i++) {
      const good = await scrape(p.portA, "127.0.0.1", "good").done;
      assert.equal(good.status, 200, good.body);
    }
    await p.letGo();
  });
});

describe("forwarded scrapes to one peer: the default cap, 256", { timeout: 120_000 }, () => {
  let p: Awaited<ReturnType<typeof pair>>;
  before(async () => {
    p = await pair({});
  });
  after(() => p.close());

  test("256 in flight (128 from each of two addresses) all reach B; the 257th is 503 at once, not queued until its budget", async () => {
    await p.hold("127.0.0.2", 128);
    await p.hold("127.0.0.3", 128);
    const over = await scrape(p.portA, "127.0.0.4", "good", 5).done;
    assert.equal(over.status, 503, over.body);
    assert.match(over.body, /has 256 scrapes from this replica in flight, the most \(maxForwardsPerPeer 256\); retry later\n$/);
    await p.letGo();
  });
});

describe("a forward that never got a connection here", { timeout: 60_000 }, () => {
  const servers: http.Server[] = [];
  const hanging: http.ServerResponse[] = [];
  after(async () => {
    for (const r of hanging) r.destroy();
    for (const s of servers) s.closeAllConnections();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });

  test("is not blamed on the peer, nor marks it hung (it goes on being asked first)", async () => {
    const listen = async (handler: http.RequestListener) => {
      const s = http.createServer(handler);
      servers.push(s);
      await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
      return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    };
    const peer = (id: string, url: string, ready: boolean): Peer => ({
      address: { url },
      state: { id, ready, signedForwards: false, clients: new Map([["app", { connected: true }]]) as never, dropped: 0 },
      generation: 1, lastOkAt: Date.now(), receivingUntil: 0, failures: 0, self: false, polling: false, polledAt: 0, retryNow: false, slow: false,
    });
    // The ready holder (asked first) holds every scrape; the other answers. One connection to each, at most.
    const first = peer("first", await listen((_req, res) => void hanging.push(res)), true);
    const second = peer("second", await listen((_req, res) => res.end("ok\n")), false);
    const counter = new Counter({ name: "t_forwards", help: "t", labelNames: ["outcome"], registers: [] });
    const forwarder = createForwarder({
      auth: createPeerAuth({ secret, replicaId: "me", clockSkewMs: 10_000, maxNonces: 100, logger: silentLogger }),
      replicaId: "me",
      fresh: () => [first, second],
      agents: { http: new http.Agent({ maxSockets: 1 }), https: undefined as never },
      places: createForwardPlaces({ maxPerPeer: 16, logger: silentLogger }),
      counter,
      onFailed() {},
    });
    const front = await listen((req, res) => {
      const timeoutMs = Number(req.headers["x-prometheus-scrape-timeout-seconds"]) * 1000;
      forwarder.forward(req, res, { name: "app", timeoutMs } as ScrapeRequest, req.url!);
    });
    const port = Number(new URL(front).port);
    assert.equal(forwarder.holders("app")[0], first);
    const taken = scrape(port, "127.0.0.1", "app", 30); // takes the one connection to the first holder
    await waitFor("the first holder holds a scrape", () => hanging.length === 1);
    const queued = await scrape(port, "127.0.0.1", "app", 0.5).done;
    assert.equal(queued.status, 504, queued.body);
    assert.match(queued.body, /^promproxy: scrape of "app" not forwarded within 0\.5s: no connection to replica first \(http:\/\/127\.0\.0\.1:\d+\) came free here \(it was not asked\)\n$/);
    assert.equal(hanging.length, 1, "the first holder never saw it");
    assert.equal(forwarder.holders("app")[0], first, "not marked hung: still asked first");
    taken.abort();
    await taken.done;
  });
});

describe("forward places, counted", () => {
  test("per peer: at most the cap, one address at most half (rounded down, at least 1); a place given back once", () => {
    assert.deepEqual([1, 2, 3, 4, 256].map(sourceShare), [1, 1, 1, 2, 128]);
    const logger = capture();
    const places = createForwardPlaces({ maxPerPeer: 4, logger });
    const take = (peer: string, from: string) => places.take(peer, peer, from);
    const a1 = take("B", "10.0.0.1");
    const a2 = take("B", "10.0.0.1");
    assert.equal(typeof a1, "function");
    assert.equal(typeof a2, "function");
    assert.equal((take("B", "10.0.0.1") as NoPlace).outcome, "too_many_from_address", "its half taken");
    assert.equal(typeof take("C", "10.0.0.1"), "function", "another peer has places of its own");
    const b = [take("B", "10.0.0.2"), take("B", "10.0.0.3")];
    assert.ok(b.every((x) => typeof x === "function"));
    assert.equal(places.inFlight("B"), 4);
    const over = take("B", "10.0.0.4") as NoPlace;
    assert.equal(over.outcome, "too_many", "at the cap, whoever asks");
    assert.equal(over.why, "replica B has 4 scrapes from this replica in flight, the most (maxForwardsPerPeer 4)");
    (a1 as () => void)();
    (a1 as () => void)();
    assert.equal(places.inFlight("B"), 3, "given back once");
    assert.equal(typeof take("B", "10.0.0.1"), "function", "the address has room again");
    for (const x of [a2, ...b]) (x as () => void)();
    assert.equal(logger.lines.length, 2, "one line per kind, then counted for the minute");
    places.close();
  });
});
