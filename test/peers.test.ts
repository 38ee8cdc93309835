/**
 * Peers under attack, on loopback sockets: peers that stall, answer garbage,
 * too much or refuse us; holders that hang or drop the connection on a
 * forwarded scrape; and a forwarded scrape that must arrive unchanged
 * (status, headers, a large body streamed) with the budget left.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { createServer, type PromproxyServer } from "../src/server/index.ts";
import { createPeerAuth } from "../src/server/peers/peer-auth.ts";
import { silentLogger, type Logger } from "../src/shared/logger.ts";
import { freePort } from "./e2e/prometheus.ts";
import { proxyGet, startClient, waitFor } from "./helpers.ts";
import type { PromproxyClient } from "../src/client/index.ts";

const secret = "0123456789abcdef-test-peer-secret";
const statePath = "/_promproxy/peer/state";
const state = (id: string, clients: string[]) =>
  JSON.stringify({
    id,
    ready: true,
    clients: clients.map((n) => ({ targets: [n], labels: { __meta_promproxy_client: n, __meta_promproxy_session_id: "s", __meta_promproxy_connected: "true" } })),
  });

const signer = createPeerAuth({ secret, replicaId: "fake", clockSkewMs: 10_000, maxNonces: 1000, logger: silentLogger });
/** A fake peer's state answer signed as a real peer signs it (over the request's nonce): from a peer that knows the secret. */
function signedState(req: http.IncomingMessage, res: http.ServerResponse, body: string) {
  const nonce = String(req.headers["x-promproxy-peer"]).split(";")[2] ?? "";
  res.writeHead(200, { etag: '"1"', "x-promproxy-peer-answer": signer.signAnswer(nonce, 200, '"1"', body) });
  res.end(body);
}

/** The headers of a state answer signed over the request's nonce, for a body sent as the fake likes. */
function answerHeaders(req: http.IncomingMessage, body: string) {
  const nonce = String(req.headers["x-promproxy-peer"]).split(";")[2] ?? "";
  return { etag: '"1"', "x-promproxy-peer-answer": signer.signAnswer(nonce, 200, '"1"', body) };
}

/** A fake peer: answers its state with `onState`, and forwarded scrapes with `onScrape`. */
async function fakePeer(onState: (res: http.ServerResponse, req: http.IncomingMessage) => void, onScrape: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_, r) => r.end()) {
  const sockets = new Set<import("node:net").Socket>();
  const s = http.createServer((req, res) => (req.url === statePath ? onState(res, req) : onScrape(req, res)));
  s.on("connection", (c) => (sockets.add(c), c.on("close", () => sockets.delete(c))));
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => (s.close(() => r()), sockets.forEach((c) => c.destroy()))),
  };
}

function capture(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (m: string, f?: Record<string, unknown>) => lines.push(`${m} ${JSON.stringify(f ?? {})}`);
  return { lines, debug() {}, info: log, warn: log, error: log };
}

describe("peers that misbehave", { timeout: 60_000 }, () => {
  const fakes: { url: string; close(): Promise<void> }[] = [];
  const held: http.ServerResponse[] = [];
  let server: PromproxyServer;
  let port: number;
  const logger = capture();
  const seen: { headers: http.IncomingHttpHeaders; url: string; verified: unknown }[] = [];
  const verifier = createPeerAuth({ secret, replicaId: "answers", clockSkewMs: 10_000, maxNonces: 100, logger: silentLogger });

  before(async () => {
    const huge = "x".repeat(200_000);
    fakes.push(await fakePeer((res) => held.push(res))); // stalls
    fakes.push(await fakePeer((res, req) => signedState(req, res, "{not json"))); // garbage, signed
    fakes.push(await fakePeer((res) => res.end(state("unsigned", ["impostor"])))); // a valid state, unsigned: an impostor
    const hugeState = `{"id":"huge","ready":true,"clients":[],"pad":"${huge}"}`;
    // Too large, said (Content-Length), and chunked; signed (an answer without a signature is cut off before its body).
    fakes.push(await fakePeer((res, req) => (Object.entries(answerHeaders(req, hugeState)).forEach(([k, v]) => res.setHeader(k, v)), res.end(hugeState))));
    fakes.push(await fakePeer((res, req) => (res.writeHead(200, answerHeaders(req, hugeState)), res.write(hugeState.slice(0, 100)), res.write(hugeState.slice(100)), res.end())));
    fakes.push(await fakePeer((res) => (res.writeHead(403), res.end("promproxy: peer request refused: bad signature\n")))); // refuses us
    // Exactly maxPeerStateBytes: accepted.
    const fit = state("fits", ["exact-fit"]).slice(0, -1);
    fakes.push(await fakePeer((res, req) => signedState(req, res, `${fit},"pad":"${"y".repeat(64 * 1024 - fit.length - 10)}"}`)));
    fakes.push(await fakePeer((res, req) => signedState(req, res, `{"id":"bad-groups","ready":true,"clients":[{"targets":"x"}]}`))); // wrong shape
    // Holders: one hangs on scrapes, one drops the connection, one answers and records what it got.
    fakes.push(await fakePeer((res, req) => signedState(req, res, state("hangs", ["ghost-hang"])), (_, res) => held.push(res)));
    fakes.push(await fakePeer((res, req) => signedState(req, res, state("drops", ["ghost-drop"])), (req) => req.socket.destroy()));
    fakes.push(
      await fakePeer(
        (res, req) => signedState(req, res, state("answers", ["ghost-ok"])),
        (req, res) => {
          seen.push({ headers: req.headers, url: req.url ?? "", verified: verifier.verify(req.method ?? "", req.url ?? "", req.headers) });
          res.writeHead(500, { "content-type": "text/x-weird", "x-exporter": "yes" });
          res.end("exporter says no\n");
        },
      ),
    );
    port = await freePort();
    server = createServer({
      logger,
      peers: [`http://127.0.0.1:${port}`, ...fakes.map((f) => f.url)],
      peerSecret: secret,
      peerTimeoutMs: 500,
      peerPollIntervalMs: 200,
      maxPeerStateBytes: 64 * 1024,
      warmupMs: 60_000,
    });
    await server.listen({ host: "127.0.0.1", port });
  });

  after(async () => {
    for (const r of held) r.destroy();
    await server.close({ graceMs: 200 });
    await Promise.all(fakes.map((f) => f.close()));
  });

  test("each bad peer is marked failing with its reason; the replica serves on, not ready while one never answered", async () => {
    await waitFor("seven failing peers logged", () => logger.lines.filter((l) => l.startsWith("peer state not fetched")).length >= 7, 10_000).catch((e: Error) => assert.fail(`${e.message}\n${logger.lines.join("\n")}`));
    const text = logger.lines.join("\n");
    assert.match(text, /no answer within 0\.5s/);
    assert.match(text, /its state is not valid: Expected property name/);
    assert.match(text, /its state is 200048 bytes, more than maxPeerStateBytes \(65536\)/);
    assert.match(text, /its state passed maxPeerStateBytes \(65536\)/);
    assert.match(text, /status 403: promproxy: peer request refused: bad signature/);
    assert.match(text, /its state is not valid: a client group is not \{targets, labels\}/);
    assert.match(text, /its answer is not signed with the peer secret/);
    const clients = (await (await fetch(`http://127.0.0.1:${port}/clients`)).json()) as { labels: Record<string, string> }[];
    assert.deepEqual(clients.map((c) => c.labels["__meta_promproxy_client"]).sort(), ["exact-fit", "ghost-drop", "ghost-hang", "ghost-ok"], "a state of exactly maxPeerStateBytes is read");
    const r = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.equal(r.status, 503, "a peer never heard from: not ready before the warm-up");
    assert.match(await r.text(), /^promproxy: not ready: warming up: clients are still finding this replica, and 7 of 11 peers have not answered yet \(http:\/\/127\.0\.0\.1:\d+: [^;]+; /);
    assert.equal(server.ready, false);
  });

  test("a signed request for a path that only starts like the state path is not served the state", async () => {
    const asPeer = createPeerAuth({ secret, replicaId: "p9", clockSkewMs: 10_000, maxNonces: 100, logger: silentLogger });
    const get = async (p: string) => {
      const r = await fetch(`http://127.0.0.1:${port}${p}`, { headers: { "x-promproxy-peer": asPeer.sign("GET", p, undefined, server.status().replicaId) } });
      return { status: r.status, body: await r.text() };
    };
    const state = await get(statePath);
    assert.equal(state.status, 200);
    assert.match(state.body, /^\{"id":/);
    for (const p of [`${statePath}foo`, `${statePath}/x`]) {
      const r = await get(p);
      assert.equal(r.status, 404, `${p}: ${r.body}`);
      assert.match(r.body, /^promproxy: no route/);
    }
  });

  test("a holder that hangs: 504 at the budget, naming the replica asked; one that drops the connection: 502 with the reason", async () => {
    const t0 = performance.now();
    let r = await proxyGet(port, "http://ghost-hang/metrics", { "x-prometheus-scrape-timeout-seconds": "0.5" });
    assert.equal(r.status, 504);
    assert.match(r.body.toString(), /^promproxy: scrape of "ghost-hang" forwarded to replica hangs \(http:\/\/127\.0\.0\.1:\d+\): no answer within 0\.5s/);
    assert.ok(performance.now() - t0 < 10_000);
    r = await proxyGet(port, "http://ghost-drop/metrics");
    assert.equal(r.status, 502);
    assert.match(r.body.toString(), /^promproxy: scrape of "ghost-drop" not forwarded: the replica holding it could not be reached \(drops \(http:\/\/127\.0\.0\.1:\d+\): socket hang up\)/);
    const errors = server.status().recentErrors.map((e) => `${e.name} ${e.outcome}`);
    assert.ok(errors.includes("ghost-drop forward_unreachable") && errors.includes("ghost-hang forward_timeout"), `on the status page: ${errors.join(", ")}`);
  });

  test("the holder's answer passes unchanged; the forwarded request is signed, marked and carries the budget left", async () => {
    const r = await proxyGet(port, "http://ghost-ok:9100/metrics?x=1", { "x-prometheus-scrape-timeout-seconds": "7", accept: "text/plain", "user-agent": "Prometheus/3" });
    assert.equal(r.status, 500);
    assert.equal(r.headers["content-type"], "text/x-weird");
    assert.equal(r.headers["x-exporter"], "yes");
    assert.equal(r.body.toString(), "exporter says no\n");
    const got = seen.at(-1)!;
    assert.equal(got.url, "http://ghost-ok:9100/metrics?x=1");
    assert.equal((got.verified as { from?: string }).from, server.status().replicaId, "signed with the shared secret");
    assert.equal(got.headers["x-promproxy-forwarded"], server.status().replicaId);
    assert.equal(got.headers["accept"], "text/plain");
    assert.equal(got.headers["user-agent"], "Prometheus/3");
    const budget = Number(got.headers["x-prometheus-scrape-timeout-seconds"]);
    assert.ok(budget > 5 && budget <= 7, `budget ${budget}`);
  });
});

describe("forwarding a large answer between two real replicas", { timeout: 60_000 }, () => {
  const servers: PromproxyServer[] = [];
  const ports: number[] = [];
  let client: PromproxyClient;
  let exporter: http.Server;
  const size = 24 * 1024 * 1024;

  before(async () => {
    exporter = http.createServer((req, res) => {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      const line = Buffer.from("# padding ".padEnd(1023, "p") + "\n");
      res.write(`# timeout ${String(req.headers["x-prometheus-scrape-timeout-seconds"])}`.padEnd(1023) + "\n");
      let left = size / 1024 - 1;
      const write = () => {
        while (left > 0) {
          left--;
          if (!res.write(line)) return void res.once("drain", write);
        }
        res.end();
      };
      write();
    });
    await new Promise<void>((r) => exporter.listen(0, "127.0.0.1", r));
    ports.push(await freePort(), await freePort());
    const peers = ports.map((p) => `http://127.0.0.1:${p}`);
    for (const [i, p] of ports.entries()) {
      const s = createServer({ logger: silentLogger, peers, peerSecret: secret, replicaId: `r${i + 1}` });
      await s.listen({ host: "127.0.0.1", port: p });
      servers.push(s);
    }
    client = await startClient(`http://127.0.0.1:${ports[1]}`, "big", { targets: [`9100=http://127.0.0.1:${(exporter.address() as AddressInfo).port}/`] });
    await waitFor("r1 to list big", async () => (await (await fetch(`http://127.0.0.1:${ports[0]}/clients`)).text()).includes('"big"'), 10_000);
  });

  after(async () => {
    await client.stop();
    await Promise.all(servers.map((s) => s.close({ graceMs: 200 })));
    await new Promise((r) => exporter.close(r));
  });

  test("24 MiB through r1 (held by r2): every byte, the exporter's headers, the budget left", async () => {
    const r = await proxyGet(ports[0]!, "http://big:9100/metrics", { "x-prometheus-scrape-timeout-seconds": "20" });
    assert.equal(r.status, 200, r.body.subarray(0, 200).toString());
    assert.equal(r.body.length, size);
    assert.equal(r.headers["content-type"], "text/plain; version=0.0.4");
    const seenTimeout = Number(/^# timeout (\S+)/.exec(r.body.subarray(0, 100).toString())?.[1]);
    assert.ok(seenTimeout > 15 && seenTimeout < 20, `the exporter saw ${seenTimeout}`);
  });
});

describe("Prometheus-side auth with peers: checked once, where the request entered", { timeout: 60_000 }, () => {
  const servers: PromproxyServer[] = [];
  const ports: number[] = [];
  let client: PromproxyClient;
  const token = "prometheus-token-0123456789";

  before(async () => {
    ports.push(await freePort(), await freePort());
    const peers = ports.map((p) => `http://127.0.0.1:${p}`);
    for (const [i, p] of ports.entries()) {
      const s = createServer({ logger: silentLogger, peers, peerSecret: secret, replicaId: `r${i + 1}`, promAuth: { tokens: [token] } });
      await s.listen({ host: "127.0.0.1", port: p });
      servers.push(s);
    }
    client = await startClient(`http://127.0.0.1:${ports[1]}`, "held-by-r2");
    const auth = { authorization: `Bearer ${token}` };
    await waitFor("r1 to list the client", async () => (await (await fetch(`http://127.0.0.1:${ports[0]}/clients`, { headers: auth })).text()).includes("held-by-r2"), 10_000);
  });

  after(async () => {
    await client.stop();
    await Promise.all(servers.map((s) => s.close({ graceMs: 200 })));
  });

  test("with the token: served through r1 (the peer checks the signature, not the token); without or with a wrong one: 407 or 403 at r1, nothing forwarded", async () => {
    const ok = await proxyGet(ports[0]!, "http://held-by-r2/metrics", { authorization: `Bearer ${token}` });
    assert.equal(ok.status, 200, ok.body.toString());
    assert.match(ok.body.toString(), /test_up_total/);
    const metricsOf = async (port: number) => {
      await new Promise((r) => setTimeout(r, 1_100));
      return (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    };
    const before = await metricsOf(ports[0]!);
    const denied = await proxyGet(ports[0]!, "http://held-by-r2/metrics");
    assert.equal(denied.status, 407);
    const wrong = await proxyGet(ports[0]!, "http://held-by-r2/metrics", { authorization: "Bearer nope" });
    assert.equal(wrong.status, 403, "a wrong token");
    const after = await metricsOf(ports[0]!);
    const forwards = (t: string) => /promproxy_forwarded_scrapes_total\{outcome="success"\} (\d+)/.exec(t)?.[1];
    assert.equal(forwards(after), forwards(before), "refused scrapes are not forwarded");
    // Straight to r2 without the token: its own Prometheus-side auth applies.
    assert.equal((await proxyGet(ports[1]!, "http://held-by-r2/metrics")).status, 407);
  });
});
