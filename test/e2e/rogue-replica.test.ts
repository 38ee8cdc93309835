// A client's servers are not trusted: an endpoint that claims a real replica's id must not evict the real
// replica's stream, and a server (or a DNS answer) cannot make the client hold streams without a cap.
import assert from "node:assert/strict";
import * as net from "node:net";
import { test, type TestContext } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { createClient, type ClientOptions, type PromproxyClient } from "../../src/client/index.ts";
import { notServedTries } from "../../src/client/search-refusal.ts";
import type { Logger } from "../../src/shared/logger.ts";
import { proxyGet, startServer, testRegistry } from "../helpers.ts";
import { startRogueServer, type RogueServer } from "./fixtures/rogue-replica/rogue-server.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A logger that keeps every line. */
function recordingLogger() {
  const lines: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => void lines.push({ level, message, fields });
  const logger: Logger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  return { logger, lines };
}

function client(options: Partial<ClientOptions> & Pick<ClientOptions, "serverUrl">): PromproxyClient {
  return createClient({ name: "app-1", registry: testRegistry("app-1"), backoff: { initialMs: 50, maxMs: 500 }, logger: recordingLogger().logger, ...options });
}

/** Scrapes app-1 through the real server `count` times, `gapMs` apart; the statuses seen. */
async function scrapeRepeatedly(port: number, count: number, gapMs: number): Promise<Map<number, number>> {
  const statuses = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const res = await proxyGet(port, "http://app-1/metrics");
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    await sleep(gapMs);
  }
  return statuses;
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000) {
  for (const end = Date.now() + timeoutMs; !check(); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

async function rogueEvictionRun(t: TestContext, how: "list" | "dns") {
  const real = await startServer({ replicaId: "r1" });
  let rogue: RogueServer | undefined;
  let c: PromproxyClient | undefined;
  try {
    rogue = await startRogueServer({ replicaId: () => "r1", hosts: [how === "list" ? "127.0.0.1" : "127.0.0.2"], port: how === "dns" ? real.port : 0 });
    let realWelcomes = 0;
    const { logger, lines } = recordingLogger();
    const realHost = how === "list" ? `127.0.0.1:${real.port}` : `promproxy.test:${real.port} (127.0.0.1)`;
    c = client({
      serverUrl: how === "list" ? [real.url, rogue.url] : `http://promproxy.test:${real.port}`,
      resolve: async () => ["127.0.0.1", "127.0.0.2"],
      onConnected: (info) => void (info.server === realHost && realWelcomes++),
      logger,
    });
    await c.start({ timeoutMs: 10_000 });
    await waitFor("both streams", () => realWelcomes > 0 && rogue!.welcomes > 0);
    const statuses = await scrapeRepeatedly(real.port, 100, 80);
    const served = statuses.get(200) ?? 0;
    t.diagnostic(`${how}: scrapes through the real replica ${JSON.stringify(Object.fromEntries(statuses))}; ` +
      `welcomes by the real replica ${realWelcomes}, by the rogue ${rogue.welcomes}`);
    assert.ok(served >= 90, `at least 90 of 100 scrapes served: ${served}`);
    assert.ok(realWelcomes <= 3, `at most a few redials to the real replica: ${realWelcomes} welcomes`);
    assert.ok(rogue.welcomes <= 3, `the rogue's stream is kept, not redialled: ${rogue.welcomes} welcomes`);
    const claims = lines.filter((l) => /claim the same replica id/.test(l.message));
    assert.equal(claims.length, 1, "the double claim is logged, once");
    assert.equal(claims[0]?.level, "warn");
  } finally {
    await c?.stop();
    await rogue?.close();
    await real.close();
  }
}

test("a rogue endpoint in a list of URLs that claims the real replica's id does not evict it", async (t) => {
  await rogueEvictionRun(t, "list");
});

test("a stale DNS address whose server claims the real replica's id does not evict it", async (t) => {
  await rogueEvictionRun(t, "dns");
});

/** A loopback TCP relay whose connections open so far can be turned into black holes (nothing forwarded, nothing closed). */
async function relay(targetPort: number) {
  const sockets = new Set<net.Socket>();
  const dead = new WeakSet<net.Socket>();
  const server = net.createServer((down) => {
    const up = net.connect(targetPort, "127.0.0.1");
    for (const s of [down, up]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
    }
    down.on("data", (d) => dead.has(down) || up.write(d));
    up.on("data", (d) => dead.has(down) || down.write(d));
    down.on("close", () => up.destroy());
    up.on("close", () => down.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    /** The connections open now stop forwarding, silently; new ones work. */
    blackHole() {
      for (const s of sockets) dead.add(s);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

test("through one address, a replica that welcomes a new stream because the old one went silent still replaces it at once", async () => {
  const real = await startServer({ replicaId: "r1", takeoverProbeMs: 300 });
  const r = await relay(real.port);
  const sessions: string[] = [];
  const closed: string[] = [];
  // The old stream's own watchdog would take 1000 heartbeats to notice: only the replacement can end it soon.
  const c = client({
    serverUrl: `http://127.0.0.1:${r.port}`,
    heartbeatMisses: 1000,
    pingIntervalMs: 60_000,
    probeIntervalMs: 200,
    onConnected: (info) => void sessions.push(info.sessionId),
    onDisconnected: (_e, info) => void closed.push(info.sessionId),
  });
  try {
    await c.start({ timeoutMs: 10_000 });
    await waitFor("the first welcome", () => sessions.length === 1);
    r.blackHole();
    // The server probes (and replaces) a stream it has not heard from for 1.5 heartbeats (15 s at the default 10 s).
    await waitFor("a second welcome by the same replica", () => sessions.length >= 2, 40_000);
    await waitFor("the silent stream replaced", () => closed.includes(sessions[0]!), 5_000);
    assert.equal((await proxyGet(real.port, "http://app-1/metrics")).status, 200);
  } finally {
    await c.stop();
    await r.close();
    await real.close();
  }
});

test("a server naming a fresh replica id in every welcome gets at most maxReplicas streams, and one log line", async (t) => {
  for (const o of [{ replicaCount: 1000, maxReplicas: undefined }, { replicaCount: 0, maxReplicas: 5 }]) {
    const rogue = await startRogueServer({ replicaId: (n) => `fresh-${n}`, replicaCount: o.replicaCount });
    const { logger, lines } = recordingLogger();
    const c = client({ serverUrl: rogue.url, probeIntervalMs: 50, logger, ...(o.maxReplicas ? { maxReplicas: o.maxReplicas } : {}) });
    try {
      await c.start({ timeoutMs: 10_000 });
      await sleep(6_000);
      const capLines = lines.filter((l) => /holding streams to .* \(option maxReplicas\)/.test(l.message));
      const countLines = lines.filter((l) => /announced 1000 replicas .*believing at most 64 \(option maxReplicas\)/.test(l.message));
      t.diagnostic(`replica_count ${o.replicaCount}, maxReplicas ${o.maxReplicas ?? "default"}: ` +
        `${rogue.open} streams open after 6 s, at most ${rogue.peak} at once, ${rogue.welcomes} welcomes, ${capLines.length} cap log lines, ${countLines.length} count lines`);
      const max = o.maxReplicas ?? 64;
      assert.ok(rogue.open <= max, `at most ${max} streams held: ${rogue.open}`);
      assert.ok(rogue.peak <= max + 8, `at most ${max} held plus 8 searching: ${rogue.peak}`);
      // The count capped is said once, as such; the streams capped, once when a welcome is closed for it.
      assert.equal(countLines.length, o.replicaCount > max ? 1 : 0, "the count capped: one line");
      assert.ok(capLines.length <= 1 && capLines.length + countLines.length >= 1, "one log line when the cap bites");
      // Once at the cap, it stays there: no stream added, no redial loop.
      const before = rogue.welcomes;
      await sleep(2_000);
      assert.ok(rogue.welcomes - before <= 8, `few welcomes once at the cap: ${rogue.welcomes - before}`);
    } finally {
      await c.stop();
      await rogue.close();
    }
  }
});

test("a server naming no replica but claiming 2^32-1 of them gets one stream, not a search", async (t) => {
  const rogue = await startRogueServer({ replicaId: () => "", replicaCount: 2 ** 32 - 1 });
  const { logger, lines } = recordingLogger();
  const c = client({ serverUrl: rogue.url, probeIntervalMs: 50, searchBackoff: { initialMs: 20, maxMs: 100 }, logger });
  try {
    await c.start({ timeoutMs: 10_000 });
    await sleep(3_000); // dozens of fast search rounds, were the count believed
    const warnings = lines.filter((l) => l.level === "warn" || l.level === "error");
    t.diagnostic(`${rogue.open} streams open after 3 s, at most ${rogue.peak} at once, ${rogue.welcomes} welcomes, ${warnings.length} warnings`);
    assert.equal(rogue.open, 1, "one stream, as to any server naming no replica");
    assert.ok(rogue.welcomes <= 2, `no search: ${rogue.welcomes} welcomes`);
    assert.deepEqual(warnings, []);
  } finally {
    await c.stop();
    await rogue.close();
  }
});

test("through one address, a second stream naming no replica is closed again quietly: one such stream is held", async (t) => {
  // The first welcome names r0 and claims 3 replicas; every later one names none.
  const rogue = await startRogueServer({ replicaId: (n) => (n === 0 ? "r0" : ""), replicaCount: 3 });
  const { logger, lines } = recordingLogger();
  const held: string[] = [];
  const c = client({ serverUrl: rogue.url, searchBackoff: { initialMs: 20, maxMs: 100 }, logger, onConnected: (info) => void held.push(info.replicaId) });
  try {
    await c.start({ timeoutMs: 10_000 });
    await sleep(3_000);
    const warnings = lines.filter((l) => l.level === "warn" || l.level === "error").map((l) => l.message);
    t.diagnostic(`${rogue.welcomes} welcomes, ${rogue.open} open; held ${JSON.stringify(held)}; warnings ${JSON.stringify(warnings)}`);
    assert.deepEqual(held, ["r0", ""], "r0 and one stream naming no replica");
    assert.ok(rogue.open <= 2 + 3, `two streams held (and a round's closing): ${rogue.open}`);
    assert.deepEqual(warnings, []);
  } finally {
    await c.stop();
    await rogue.close();
  }
});

test("a server welcoming every searcher under one id (claiming 2^32-1 replicas) gets at most 8 connections a round, rounds backing off", async (t) => {
  const rogue = await startRogueServer({ replicaId: () => "r1", replicaCount: 2 ** 32 - 1 });
  const { logger, lines } = recordingLogger();
  // Fast rounds 20 ms doubling to 100 ms, then 200 ms doubling (to 6.4 s): about a dozen rounds in 3 s.
  const at: number[] = [];
  const c = client({ serverUrl: rogue.url, probeIntervalMs: 200, searchBackoff: { initialMs: 20, maxMs: 100 }, logger, onConnected: () => void at.push(performance.now()) });
  try {
    await c.start({ timeoutMs: 10_000 });
    await sleep(3_000);
    const [first, from] = [rogue.welcomes, performance.now()];
    await sleep(3_000); // rounds 1.6 and 3.2 s apart by now (half of it random): two or three
    const second = rogue.welcomes - first;
    const replaced = lines.filter((l) => /replaced ours/.test(l.message));
    const caps = lines.filter((l) => /maxReplicas/.test(l.message)).map((l) => l.message);
    // The welcomes of one round come within a few ms; rounds are 0.8 s apart or more by then.
    const late = at.filter((x) => x >= from);
    const rounds: number[] = [];
    late.forEach((x, i) => (i > 0 && x - late[i - 1]! < 200 ? rounds[rounds.length - 1]!++ : rounds.push(1)));
    t.diagnostic(`welcomes: ${first} in the first 3 s, ${second} in the next 3 s (rounds of ${rounds.join(", ")}); ` +
      `${rogue.open} open, at most ${rogue.peak}; ${replaced.length} "replaced" lines`);
    assert.ok(rounds.every((n) => n <= 8), `at most 8 connections a round: ${rounds.join(", ")}`);
    assert.ok(second <= 4 * 8, `rounds backing off: ${second} welcomes`);
    assert.ok(rogue.open <= 1 + 8, `one stream held (and a round's replaced ones closing): ${rogue.open}`);
    assert.equal(replaced.length, 1, "the replacements are said once");
    assert.deepEqual(caps, ["a server announced 4294967295 replicas (replica_count): believing at most 64 (option maxReplicas)"]);
  } finally {
    await c.stop();
    await rogue.close();
  }
});

test("a server answering every hello 'this replica does not serve you' is retried promptly a few times, then backed off and reported", async (t) => {
  const notServed = () => new ConnectError("replica r9 does not hold client app-1", Code.Unavailable, { "promproxy-replica-id": "r9" });
  const rogue = await startRogueServer({ replicaId: () => "r9", refuse: notServed });
  const { logger, lines } = recordingLogger();
  const errors: ConnectError[] = [];
  const c = client({ serverUrl: rogue.url, logger, onError: (e) => void errors.push(e) }); // backoff 50 ms doubling to 500 ms
  try {
    c.start();
    await sleep(4_000); // redialled every 25-50 ms, that would be 80-160 attempts
    const said = lines.filter((l) => l.level !== "debug" && /does not serve this client/.test(l.message));
    t.diagnostic(`${rogue.refusals} refusals in 4 s, ${errors.length} errors reported, ${said.length} warn lines, state ${c.state}`);
    assert.ok(rogue.refusals >= notServedTries + 1, `a few prompt retries: ${rogue.refusals}`);
    assert.ok(rogue.refusals <= notServedTries + 16, `then backed off: ${rogue.refusals}`);
    assert.ok(errors.length >= 1 && errors.every((e) => e.code === Code.Unavailable), "reported to onError");
    assert.deepEqual(said.map((l) => l.level), ["warn"], "said once, at warn");
    assert.equal(c.state, "connecting");
  } finally {
    await c.stop();
    await rogue.close();
  }
});

test("a DNS answer with 150 addresses gets at most maxServerAddresses streams; 64 addresses get 64, no log", async (t) => {
  const hosts = Array.from({ length: 150 }, (_, i) => `127.0.0.${i + 10}`);
  const rogue = await startRogueServer({ replicaId: (n) => `r-${n}`, hosts });
  try {
    for (const answer of [hosts.slice(0, 64), hosts]) {
      const { logger, lines } = recordingLogger();
      const c = client({ serverUrl: `http://promproxy.test:${rogue.port}`, resolve: async () => answer, resolveIntervalMs: 200, logger });
      try {
        await c.start({ timeoutMs: 10_000 });
        await waitFor("64 streams", () => rogue.open >= 64, 20_000);
        await sleep(2_000); // ten resolutions
        const capLines = lines.filter((l) => /maxServerAddresses/.test(l.message));
        t.diagnostic(`${answer.length} addresses: ${rogue.open} streams open, ${capLines.length} cap log lines`);
        assert.equal(rogue.open, 64);
        assert.equal(capLines.length, answer.length > 64 ? 1 : 0);
      } finally {
        await c.stop();
        await waitFor("every stream closed", () => rogue.open === 0);
      }
    }
  } finally {
    await rogue.close();
  }
});
