/**
 * A forwarded scrape whose holder does not answer it: a holder that stops
 * answering its state polls (frozen, stopped, cut off) after the request
 * went out is left for the next holder; one that says it does not hold the
 * client (any more) or refuses our signature too. Fake peers on loopback
 * sockets; the replica under test is real.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { createServer, type PromproxyServer } from "../src/server/index.ts";
import { createPeerAuth } from "../src/server/peers/peer-auth.ts";
import { silentLogger } from "../src/shared/logger.ts";
import { freePort } from "./e2e/prometheus.ts";
import { proxyGet, waitFor } from "./helpers.ts";

const secret = "0123456789abcdef-test-peer-secret";
const statePath = "/_promproxy/peer/state";
const signer = createPeerAuth({ secret, replicaId: "fake", clockSkewMs: 10_000, maxNonces: 1000, logger: silentLogger });

/** A fake peer holding `clients`; `ready` false puts it after the ready holders. Its scrapes answer with `onScrape`. */
async function fakePeer(id: string, clients: string[], ready: boolean, onScrape: (res: http.ServerResponse, req: http.IncomingMessage) => void, extra: Record<string, unknown> = {}) {
  const held: http.ServerResponse[] = [];
  let frozen = false;
  let scrapes = 0;
  const body = JSON.stringify({
    id,
    ready,
    ...extra,
    clients: clients.map((n) => ({ targets: [n], labels: { __meta_promproxy_client: n, __meta_promproxy_session_id: "s", __meta_promproxy_connected: "true" } })),
  });
  const s = http.createServer((req, res) => {
    if (frozen && req.url === statePath) return void held.push(res); // frozen: its polls go unanswered
    if (frozen) return void held.push(res); // and its scrapes
    if (req.url !== statePath) {
      scrapes++;
      return onScrape(res, req);
    }
    const nonce = String(req.headers["x-promproxy-peer"]).split(";")[2] ?? "";
    res.writeHead(200, { etag: '"1"', "x-promproxy-peer-answer": signer.signAnswer(nonce, 200, '"1"', body) });
    res.end(body);
  });
  const sockets = new Set<import("node:net").Socket>();
  s.on("connection", (c) => (sockets.add(c), c.on("close", () => sockets.delete(c))));
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    freeze: () => void (frozen = true),
    /** Answers again, the polls held meanwhile too (they have timed out at the replica by now). */
    thaw: () => {
      frozen = false;
      for (const r of held.splice(0)) r.destroy();
    },
    scrapes: () => scrapes,
    close: () => new Promise<void>((r) => (held.forEach((x) => x.destroy()), s.close(() => r()), sockets.forEach((c) => c.destroy()))),
  };
}

describe("a forwarded scrape whose holder does not answer it goes to the next holder", { timeout: 60_000 }, () => {
  let server: PromproxyServer;
  let port: number;
  let fakes: Awaited<ReturnType<typeof fakePeer>>[];
  const hanging: http.ServerResponse[] = [];

  before(async () => {
    const ok = (res: http.ServerResponse) => (res.writeHead(200, { "content-type": "text/plain" }), res.end("from good\n"));
    fakes = [
      await fakePeer("frozen", ["app"], true, (res) => void res), // answers its polls, then freezes
      await fakePeer("not-held", ["app2"], true, (res) => (res.writeHead(404, { "x-promproxy-not-held": "1" }), res.end('promproxy: no client "app2" connected\n'))),
      await fakePeer("refuses", ["app3"], true, (res) => (res.writeHead(403), res.end("promproxy: peer request refused: bad signature\n"))),
      // The good holder says it is not ready: the ready (misbehaving) ones are always asked first.
      await fakePeer("good", ["app", "app2", "app3", "app5"], false, ok),
      // Answers its polls, never its scrapes.
      await fakePeer("hangs", ["app5"], true, (res) => void hanging.push(res)),
    ];
    // The only holder of "app4": its polls go unanswered while it scrapes (1.5 s), then it answers both.
    const lonely = await fakePeer("lonely", ["app4"], true, (res) => {
      lonely.freeze();
      setTimeout(() => (lonely.thaw(), ok(res)), 1_500);
    });
    fakes.push(lonely);
    port = await freePort();
    server = createServer({
      logger: silentLogger,
      peers: [`http://127.0.0.1:${port}`, ...fakes.map((f) => f.url)],
      peerSecret: secret,
      peerTimeoutMs: 500,
      peerPollIntervalMs: 200,
    });
    await server.listen({ host: "127.0.0.1", port });
    await waitFor("every fake peer's clients listed", async () => ((await (await fetch(`http://127.0.0.1:${port}/clients`)).json()) as unknown[]).length === 5, 10_000);
  });

  after(async () => {
    for (const r of hanging) r.destroy();
    await server.close({ graceMs: 200 });
    await Promise.all(fakes.map((f) => f.close()));
  });

  test("a holder that says it does not hold the client, or refuses our signature: the next one answers; its header is not passed on", async () => {
    for (const name of ["app2", "app3"]) {
      const r = await proxyGet(port, `http://${name}/metrics`);
      assert.equal(r.status, 200, r.body.toString());
      assert.equal(r.body.toString(), "from good\n");
      assert.equal(r.headers["x-promproxy-not-held"], undefined);
    }
    assert.equal(fakes[1]!.scrapes(), 1, "the holder that no longer holds it was asked first");
    assert.equal(fakes[2]!.scrapes(), 1, "so was the one that refused us");
  });

  test("a replica asked for a client it does not hold says so in a header, for the replica that forwarded it", async () => {
    const uri = "http://nobody-here/metrics";
    const signed = signer.sign("GET", uri, "5", server.status().replicaId);
    const r = await proxyGet(port, uri, { "x-prometheus-scrape-timeout-seconds": "5", "x-promproxy-forwarded": "fake", "x-promproxy-peer": signed });
    assert.equal(signer.verifyForwardAnswer(signed.split(";")[2]!, r.headers["x-promproxy-peer-answer"]), true, "its answer is signed");
    assert.equal(r.status, 404);
    assert.equal(r.headers["x-promproxy-not-held"], "1");
    assert.equal(signer.verifyForwardAnswer(signer.sign("GET", uri, "5", "x").split(";")[2]!, r.headers["x-promproxy-peer-answer"]), false, "over that request's nonce only");
    assert.match(r.body.toString(), /^promproxy: no client "nobody-here" connected/);
  });

  test("the only holder, whose polls go unanswered while it scrapes slowly: waited for, not given up (no other to ask)", async () => {
    const r = await proxyGet(port, "http://app4/metrics", { "x-prometheus-scrape-timeout-seconds": "10" });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(r.body.toString(), "from good\n");
  });

  test("a holder whose polls are answered but whose scrape ran out of its budget: asked last from then on", async () => {
    const first = await proxyGet(port, "http://app5/metrics", { "x-prometheus-scrape-timeout-seconds": "1" });
    assert.equal(first.status, 504);
    assert.match(first.body.toString(), /^promproxy: scrape of "app5" forwarded to replica hangs \(http:\/\/127\.0\.0\.1:\d+\): no answer within 1s/);
    for (let i = 0; i < 3; i++) {
      const r = await proxyGet(port, "http://app5/metrics", { "x-prometheus-scrape-timeout-seconds": "5" });
      assert.equal(r.status, 200, r.body.toString());
    }
    assert.equal(hanging.length, 1, "the hung holder was not asked again");
  });

  test("a holder that freezes (its state polls go unanswered): each scrape sent there goes to the next holder within the budget", async () => {
    const [frozen, , , good] = fakes;
    const before = good!.scrapes();
    frozen!.freeze();
    for (let i = 0; i < 3; i++) {
      const r = await proxyGet(port, "http://app/metrics", { "x-prometheus-scrape-timeout-seconds": "10" });
      assert.equal(r.status, 200, r.body.toString());
      assert.equal(r.body.toString(), "from good\n");
    }
    assert.equal(good!.scrapes() - before, 3);
  });
});

describe("an answer to a forwarded scrape without the peer signature", { timeout: 60_000 }, () => {
  let server: PromproxyServer;
  let port: number;
  let fakes: Awaited<ReturnType<typeof fakePeer>>[];

  before(async () => {
    const unsigned = (res: http.ServerResponse) => (res.writeHead(200, { "content-type": "text/plain" }), res.end("fake_metric 1\n"));
    const signed = (res: http.ServerResponse, req: http.IncomingMessage) => {
      const nonce = String(req.headers["x-promproxy-peer"]).split(";")[2] ?? "";
      res.writeHead(200, { "content-type": "text/plain", "x-promproxy-peer-answer": signer.signForwardAnswer(nonce) });
      res.end("from the holder\n");
    };
    fakes = [
      // Someone at a peer's address, answering scrapes unsigned while the peer's (signed) state still counts.
      await fakePeer("impostor", ["imp", "imp-only"], true, unsigned, { signedForwards: true }),
      await fakePeer("holder", ["imp"], false, signed, { signedForwards: true }),
      // A replica of a version before signed answers: its state does not say it signs them.
      await fakePeer("older", ["old"], true, unsigned),
    ];
    port = await freePort();
    server = createServer({ logger: silentLogger, peers: [`http://127.0.0.1:${port}`, ...fakes.map((f) => f.url)], peerSecret: secret, peerTimeoutMs: 500, peerPollIntervalMs: 200 });
    await server.listen({ host: "127.0.0.1", port });
    await waitFor("every fake peer's clients listed", async () => ((await (await fetch(`http://127.0.0.1:${port}/clients`)).json()) as unknown[]).length === 3, 10_000);
  });

  after(async () => {
    await server.close({ graceMs: 200 });
    await Promise.all(fakes.map((f) => f.close()));
  });

  test("not passed on: the next holder is asked; with none left, 502 saying why; a replica that predates signing is still trusted", async () => {
    const r = await proxyGet(port, "http://imp/metrics", { "x-prometheus-scrape-timeout-seconds": "5" });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(r.body.toString(), "from the holder\n");
    assert.equal(r.headers["x-promproxy-peer-answer"], undefined, "the signature is not passed on to Prometheus");
    assert.equal(fakes[0]!.scrapes(), 1, "the impostor (ready) was asked first");
    const only = await proxyGet(port, "http://imp-only/metrics", { "x-prometheus-scrape-timeout-seconds": "5" });
    assert.equal(only.status, 502);
    assert.match(only.body.toString(), /^promproxy: scrape of "imp-only" not forwarded: .*impostor \(http:\/\/127\.0\.0\.1:\d+\): answered 200 without the peer signature \(someone else at its address\?\)\)\n$/);
    assert.ok(!only.body.toString().includes("fake_metric"));
    const old = await proxyGet(port, "http://old/metrics", { "x-prometheus-scrape-timeout-seconds": "5" });
    assert.equal(old.status, 200, old.body.toString());
    assert.equal(old.body.toString(), "fake_metric 1\n");
  });
});

describe("an impostor that answers a state poll unsigned while it holds a forwarded scrape", { timeout: 60_000 }, () => {
  let server: PromproxyServer;
  let port: number;
  let close = async () => {};

  before(async () => {
    const stranger = createPeerAuth({ secret: "another-secret-not-the-peers-0123", replicaId: "x", clockSkewMs: 10_000, maxNonces: 1000, logger: silentLogger });
    const body = JSON.stringify({ id: "held", ready: true, signedForwards: true, clients: [{ targets: ["imp2"], labels: { __meta_promproxy_client: "imp2", __meta_promproxy_session_id: "s", __meta_promproxy_connected: "true" } }] });
    let scrape: http.ServerResponse | undefined;
    const s = http.createServer((req, res) => {
      const nonce = String(req.headers["x-promproxy-peer"]).split(";")[2] ?? "";
      if (req.url !== statePath) return void (scrape = res); // held until its state is forgotten
      // Once it holds the scrape: this poll unsigned (the peer's state is forgotten), then the scrape unsigned.
      res.writeHead(200, { etag: '"1"', "x-promproxy-peer-answer": (scrape ? stranger : signer).signAnswer(nonce, 200, '"1"', body) });
      res.end(body);
      if (scrape) setTimeout(() => (scrape!.writeHead(200, { "content-type": "text/plain" }), scrape!.end("fake_metric 1\n")), 20);
    });
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    close = () => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r())));
    port = await freePort();
    server = createServer({ logger: silentLogger, peers: [`http://127.0.0.1:${port}`, `http://127.0.0.1:${(s.address() as AddressInfo).port}`], peerSecret: secret, peerTimeoutMs: 500, peerPollIntervalMs: 200 });
    await server.listen({ host: "127.0.0.1", port });
    await waitFor("its client listed", async () => ((await (await fetch(`http://127.0.0.1:${port}/clients`)).json()) as unknown[]).length === 1, 10_000);
  });

  after(async () => {
    await server.close({ graceMs: 200 });
    await close();
  });

  test("its unsigned answer is not passed on: the peer's state said it signs them when the request went out", async () => {
    const r = await proxyGet(port, "http://imp2/metrics", { "x-prometheus-scrape-timeout-seconds": "5" });
    assert.equal(r.status, 502, r.body.toString());
    assert.match(r.body.toString(), /answered 200 without the peer signature/);
  });
});
