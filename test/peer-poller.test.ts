/**
 * The peer poller on its own, against fake peers on loopback sockets: how
 * often each peer is polled with many of them (a slot is free again as soon
 * as its poll ends), and with addresses that never answer (a failing peer is
 * polled with a backoff, after the peers that answered; at once when a replica
 * unknown here polls this one), and who answers at a peer address.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { after, describe, test } from "node:test";
import { createPeerAuth } from "../src/server/peers/peer-auth.ts";
import { createPeerList, parsePeers } from "../src/server/peers/peer-list.ts";
import { processInstance } from "../src/server/peers/peer-state.ts";
import { createPoller, type PollerOptions } from "../src/server/peers/peer-poller.ts";
import { duePeers, nextPollAt } from "../src/server/peers/poll-schedule.ts";
import { silentLogger, type Logger } from "../src/shared/logger.ts";
import { waitFor } from "./helpers.ts";

const secret = "0123456789abcdef-poller-test-secret";
const statePath = "/_promproxy/peer/state";
const signer = createPeerAuth({ secret, replicaId: "fake", clockSkewMs: 10_000, maxNonces: 100_000, logger: silentLogger });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function capture(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (m: string, f?: Record<string, unknown>) => lines.push(`${m} ${JSON.stringify(f ?? {})}`);
  return { lines, debug() {}, info: log, warn: log, error: log };
}

/** A state document naming `clients`. */
export const stateOf = (id: string, clients: string[], extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    id,
    ready: true,
    ...extra,
    clients: clients.map((n) => ({ targets: [n], labels: { __meta_promproxy_client: n, __meta_promproxy_session_id: "s", __meta_promproxy_connected: "true" } })),
  });

/** Answers a state poll with `body`, signed over the poll's nonce with `key` (the peer secret unless told). */
function answer(req: http.IncomingMessage, res: http.ServerResponse, body: string, key = signer) {
  const nonce = String(req.headers["x-promproxy-peer"]).split(";")[2] ?? "";
  res.writeHead(200, { etag: '"1"', "x-promproxy-peer-answer": key.signAnswer(nonce, 200, '"1"', body) });
  res.end(body);
}

interface Fake {
  url: string;
  polls: number;
  close(): Promise<void>;
}

/** A fake peer answering state polls with `onState`. */
async function fakePeer(onState: (req: http.IncomingMessage, res: http.ServerResponse, fake: Fake) => void, port = 0): Promise<Fake> {
  const sockets = new Set<Socket>();
  const fake: Fake = { url: "", polls: 0, close: async () => {} };
  const s = http.createServer((req, res) => {
    if (req.url !== statePath) return void res.writeHead(404).end();
    fake.polls++;
    onState(req, res, fake);
  });
  s.on("connection", (c) => (sockets.add(c), c.on("close", () => sockets.delete(c))));
  await new Promise<void>((r) => s.listen(port, "127.0.0.1", r));
  fake.url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  fake.close = () => new Promise<void>((r) => (s.close(() => r()), sockets.forEach((c) => c.destroy())));
  return fake;
}

/** A poller of `urls` as replica r0, its logger, and a close() for both. */
function startPoller(urls: string[], over: Partial<PollerOptions> = {}) {
  const logger = capture();
  const agents = { http: new http.Agent({ keepAlive: true, maxSockets: 1 }), https: new https.Agent({ keepAlive: true, maxSockets: 1 }) };
  const poller = createPoller({
    list: createPeerList({ peers: parsePeers(urls), maxPeers: 64, logger }),
    auth: createPeerAuth({ secret, replicaId: "r0", clockSkewMs: 10_000, maxNonces: 100_000, logger: silentLogger }),
    replicaId: "r0",
    pollIntervalMs: 1_000,
    resolveIntervalMs: 5_000,
    timeoutMs: 500,
    staleMs: 3_500,
    maxStateBytes: 1 << 20,
    concurrency: 8,
    agents,
    logger,
    ...over,
  });
  return {
    poller,
    logger,
    close() {
      poller.close();
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

describe("many peers: a slot is free again as soon as its poll ends", { timeout: 60_000 }, () => {
  const fakes: Fake[] = [];
  let stop = () => {};
  after(async () => {
    stop();
    await Promise.all(fakes.map((f) => f.close()));
  });

  test("63 healthy peers, 8 polls at once: every one stays fresh, each polled about once a second, never more than 8 at once", async () => {
    let inFlight = 0;
    let most = 0;
    for (let i = 0; i < 63; i++) {
      // Each answer takes 20 ms: polls overlap, and 63 of them take 8 slots about 160 ms a round.
      fakes.push(
        await fakePeer((req, res) => {
          most = Math.max(most, ++inFlight);
          setTimeout(() => (inFlight--, answer(req, res, stateOf(`p${i}`, [`app-${i}`]))), 20);
        }),
      );
    }
    const { poller, close } = startPoller(fakes.map((f) => f.url));
    stop = close;
    await sleep(3_000);
    const before = fakes.map((f) => f.polls);
    const seen: number[] = [];
    for (let k = 0; k < 16; k++) {
      seen.push(poller.fresh().length);
      await sleep(250);
    }
    const polls = fakes.map((f, i) => f.polls - before[i]!);
    assert.deepEqual([...new Set(seen)], [63], `fresh peers sampled every 250 ms: ${seen.join(" ")}`);
    // 4 s at one poll a second: 4 each; wide margins for a loaded machine.
    assert.ok(Math.min(...polls) >= 2 && Math.max(...polls) <= 6, `polls per peer in 4 s: ${Math.min(...polls)}-${Math.max(...polls)}`);
    assert.ok(most <= 8, `at most 8 polls at once, saw ${most}`);
    assert.equal(poller.synced, true);
  });
});

test("the schedule: every interval while it answers or still counts; failing: 1, 2, 4 ... s, at most maxBackoffMs; answered ones go first", () => {
  const o = { pollIntervalMs: 1_000, maxBackoffMs: 30_000, staleMs: 5_000, selfRecheckMs: 30_000 };
  const at = (failures: number, lastOkAt = 0, polledAt = 100_000) => nextPollAt({ polledAt, failures, lastOkAt, self: false, polling: false }, o) - polledAt;
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 50].map((f) => at(f)), [1_000, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
  assert.equal(at(3, 96_000), 1_000, "every interval while it still counts (within staleMs of its last answer)");
  assert.equal(at(6, 95_000), 30_000, "then with the backoff");
  assert.equal(nextPollAt({ polledAt: 0, failures: 0, lastOkAt: 0, self: false, polling: false }, o), 0, "never polled: due at once");
  assert.equal(nextPollAt({ polledAt: 100_000, failures: 0, lastOkAt: 100_000, self: true, polling: false }, o), 130_000, "this replica: every selfRecheckMs");
  const peer = (name: string, polledAt: number, failures: number, polling = false) => ({ name, polledAt, failures, lastOkAt: 0, self: false, polling });
  const peers = [
    peer("failing, waited longest", 1, 1),
    peer("answered", 50_000, 0),
    peer("answered, waited longer", 10_000, 0),
    peer("being polled", 1, 0, true),
    peer("failing, not due", 59_000, 3),
  ];
  assert.deepEqual(duePeers(peers, 60_000, o).map((p) => p.name), ["answered, waited longer", "answered", "failing, waited longest"]);
  const slow = { ...peer("answered slowly, waited longest", 2, 0), slow: true };
  assert.deepEqual(
    duePeers([...peers, slow], 60_000, o).map((p) => p.name),
    ["answered, waited longer", "answered", "answered slowly, waited longest", "failing, waited longest"],
    "quick ones, then slow ones, then failing ones",
  );
});

describe("24 peers that answer slowly and one that answers at once", { timeout: 60_000 }, () => {
  const fakes: Fake[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let stop = () => {};
  after(async () => {
    stop();
    for (const t of timers) clearTimeout(t);
    await Promise.all(fakes.map((f) => f.close()));
  });

  test("the quick peer is polled every second and stays fresh; the slow ones never take the last slot", async () => {
    let slowInFlight = 0;
    let mostSlow = 0;
    for (let i = 0; i < 24; i++) {
      // 1.2 s of 2 s (slow past 0.5 s): 24 of them would need 29 slots to be polled every second; there are 8.
      fakes.push(
        await fakePeer((req, res) => {
          mostSlow = Math.max(mostSlow, ++slowInFlight);
          const t = setTimeout(() => (timers.delete(t), slowInFlight--, answer(req, res, stateOf(`slow${i}`, [`slow-app-${i}`]))), 1_200);
          timers.add(t);
        }),
      );
    }
    const quick = await fakePeer((req, res) => answer(req, res, stateOf("quick", ["quick-app"])));
    // Stale 3 s after its last answer: in line behind the slow ones, each polled every 3.6 s, it went stale.
    const { poller, close } = startPoller([...fakes.map((f) => f.url), quick.url], { timeoutMs: 2_000, staleMs: 3_000 });
    fakes.push(quick);
    stop = close;
    await waitFor("the quick peer to answer", () => quick.polls > 0, 8_000);
    await sleep(4_000);
    mostSlow = slowInFlight;
    const before = quick.polls;
    const fresh: boolean[] = [];
    for (let k = 0; k < 24; k++) {
      await sleep(250);
      fresh.push(poller.fresh().some((p) => p.state?.id === "quick"));
    }
    // 6 s at one poll a second: 6; wide margins for a loaded machine.
    assert.ok(quick.polls - before >= 4, `the quick peer polled ${quick.polls - before} times in 6 s`);
    assert.ok(fresh.every(Boolean), `the quick peer fresh, sampled every 250 ms: ${fresh.map(Number).join("")}`);
    assert.ok(mostSlow <= 7, `slow peers polled at once: at most 7 of 8 slots, saw ${mostSlow}`);
    assert.ok(poller.fresh().length > 1, "slow peers are still polled");
  });
});

describe("20 addresses that never answer and one healthy peer", { timeout: 60_000 }, () => {
  const fakes: Fake[] = [];
  const held: http.ServerResponse[] = [];
  let stop = () => {};
  after(async () => {
    stop();
    for (const r of held) r.destroy();
    await Promise.all(fakes.map((f) => f.close()));
  });

  test("the healthy peer is polled every second and stays fresh; each hung address is polled with a backoff, on half the slots at most", async () => {
    let t0 = performance.now();
    // Polls of hung addresses, [start, end] (ms since t0), to count how many slots they took at once.
    const spans: [number, number][] = [];
    for (let i = 0; i < 20; i++) {
      fakes.push(
        await fakePeer((_, res) => {
          held.push(res);
          const span: [number, number] = [performance.now() - t0, Infinity];
          spans.push(span);
          res.on("close", () => (span[1] = performance.now() - t0));
        }),
      );
    }
    t0 = performance.now();
    const healthy = await fakePeer((req, res) => answer(req, res, stateOf("healthy", ["app"])));
    // As in production: 2 s timeout, gone after 5 s.
    const { poller, logger, close } = startPoller([...fakes.map((f) => f.url), healthy.url], { timeoutMs: 2_000, staleMs: 5_000 });
    fakes.push(healthy);
    stop = close;
    // Its first poll may wait behind new addresses (nothing is known of them yet): from 6 s on it is polled every second.
    await waitFor("the healthy peer to answer", () => healthy.polls > 0, 8_000);
    await sleep(6_000 - (performance.now() - t0));
    const before = healthy.polls;
    const fresh: number[] = [];
    for (let k = 0; k < 24; k++) {
      await sleep(250);
      fresh.push(poller.fresh().length);
    }
    assert.ok(healthy.polls - before >= 4, `the healthy peer polled ${healthy.polls - before} times in 6 s`);
    // Each hung one at 0-4 s, then 2 s later (timeout) + 1 s, + 2 s, + 4 s: 4 at most in 12 s.
    const hung = fakes.slice(0, 20).map((f) => f.polls);
    assert.ok(Math.max(...hung) <= 4, `polls of each hung address in 12 s: ${hung.join(" ")}`);
    // Once each was polled (new addresses may take every slot: nothing is known of them yet), 4 at once at most.
    const late = spans.filter(([start]) => start > 6_000);
    const most = Math.max(...late.map(([start]) => late.filter(([s, e]) => s <= start && start < e).length));
    assert.ok(late.length > 0 && most <= 4, `at most 4 of the 8 slots on failing peers, saw ${most} (${late.length} polls after 6 s)`);
    assert.ok(fresh.every((n) => n === 1), `the healthy peer fresh, sampled every 250 ms: ${fresh.join(" ")}`);
    assert.equal(logger.lines.filter((l) => l.startsWith("peer state not fetched")).length, 20, "each hung address said once");
  });
});

describe("someone without the secret at a peer's address", { timeout: 60_000 }, () => {
  const fakes: Fake[] = [];
  const held: http.ServerResponse[] = [];
  let stop = () => {};
  after(async () => {
    stop();
    for (const r of held) r.destroy();
    await Promise.all(fakes.map((f) => f.close()));
  });

  test("an unsigned answer: the peer is not fresh at once; one that only stops answering stays fresh for staleMs", async () => {
    const stranger = createPeerAuth({ secret: "another-secret-not-the-peers-0123", replicaId: "x", clockSkewMs: 10_000, maxNonces: 1000, logger: silentLogger });
    let mode: "peer" | "stranger" = "peer";
    const onState = (id: string) => (req: http.IncomingMessage, res: http.ServerResponse) =>
      mode === "peer" ? answer(req, res, stateOf(id, [`${id}-app`])) : answer(req, res, stateOf(id, ["someone-else"]), stranger);
    const taken = await fakePeer(onState("taken"));
    let silentMode = false;
    const silent = await fakePeer((req, res) => (silentMode ? held.push(res) : answer(req, res, stateOf("silent", ["silent-app"]))));
    fakes.push(taken, silent);
    // Gone only after 30 s of silence: an unsigned answer must not wait for it.
    const { poller, close } = startPoller([taken.url, silent.url], { staleMs: 30_000 });
    stop = close;
    await waitFor("both fresh", () => poller.fresh().length === 2, 10_000);
    const okAt = poller.peers.find((p) => p.address.url === taken.url)!.lastOkAt;
    mode = "stranger";
    silentMode = true;
    const t = performance.now();
    await waitFor("the taken address to leave the fresh peers", () => !poller.fresh().some((p) => p.address.url === taken.url), 10_000);
    assert.ok(performance.now() - t < 10_000);
    const p = poller.peers.find((q) => q.address.url === taken.url)!;
    assert.equal(p.error, "its answer is not signed with the peer secret");
    assert.equal(p.state, undefined, "its clients are forgotten");
    assert.equal(p.lastOkAt, okAt, "lastOkAt: when the peer last answered");
    await sleep(3_000);
    assert.deepEqual(poller.fresh().map((q) => q.state?.id), ["silent"], "the silent one is still fresh (timeouts keep the staleMs tolerance)");
    assert.match(poller.peers.find((q) => q.address.url === silent.url)!.error ?? "", /no answer within 0\.5s/);
  });
});

describe("a peer whose answers are signed, then not, every poll", { timeout: 60_000 }, () => {
  let stop = () => {};
  let fake: Fake | undefined;
  after(async () => {
    stop();
    await fake?.close();
  });

  test("said at most once per statusQuietMs each way; the failures left unsaid counted in the next warning", async () => {
    const stranger = createPeerAuth({ secret: "another-secret-not-the-peers-0123", replicaId: "x", clockSkewMs: 10_000, maxNonces: 1000, logger: silentLogger });
    fake = await fakePeer((req, res, f) => answer(req, res, stateOf("flapper", ["flapper-app"]), f.polls % 2 === 0 ? stranger : signer));
    const { poller, logger, close } = startPoller([fake.url], { statusQuietMs: 3_000 });
    stop = close;
    await waitFor("7 polls", () => fake!.polls >= 7, 20_000);
    await sleep(100);
    const warned = logger.lines.filter((l) => l.startsWith("peer state not fetched"));
    const again = logger.lines.filter((l) => l.startsWith("peer answers again"));
    // 7 polls, 3 of them unsigned, over about 6 s: a warning at the first and one 3 s later, not one a flap.
    assert.ok(warned.length >= 1 && warned.length <= 3, `warnings: ${warned.join(" | ")}`);
    assert.ok(again.length <= warned.length, `answers again: ${again.join(" | ")}`);
    if (warned.length > 1) assert.match(warned[1]!, /"unsaidFailures":[1-9]/);
    assert.ok(poller.peers.length === 1);
  });
});

describe("an address that answers with this replica's own id", { timeout: 60_000 }, () => {
  const fakes: Fake[] = [];
  let stop = () => {};
  after(async () => {
    stop();
    await Promise.all(fakes.map((f) => f.close()));
  });

  test("this process: itself, polled again every selfRecheckMs; another process with its id: neither, said once a minute; either one replaced: a peer", async () => {
    let selfId = "r0";
    let otherId = "r0";
    // This process's own answer (as its state source signs it), and another process given the same id.
    const self = await fakePeer((req, res) => answer(req, res, stateOf(selfId, [], { instance: processInstance })));
    const other = await fakePeer((req, res) => answer(req, res, stateOf(otherId, ["dup-app"], { instance: "another-process" })));
    fakes.push(self, other);
    const { poller, logger, close } = startPoller([self.url, other.url], { selfRecheckMs: 1_000 });
    stop = close;
    const peer = (f: Fake) => poller.peers.find((p) => p.address.url === f.url)!;
    await waitFor("both answered", () => peer(self).self && peer(other).lastOkAt > 0, 10_000);
    await sleep(3_000);
    assert.equal(peer(self).self, true);
    assert.ok(self.polls >= 2, `its own address polled again (selfRecheckMs 1 s): ${self.polls} polls`);
    assert.equal(peer(other).self, false, "another process with our id is not this replica");
    assert.deepEqual(poller.fresh(), [], "nor a peer to list or forward to");
    assert.match(peer(other).error ?? "", /another process answers with this replica's own id "r0" \(give each replica its own --replica-id\)/);
    assert.ok(other.polls >= 3, `still polled: ${other.polls}`);
    assert.equal(logger.lines.filter((l) => l.startsWith("another process answers with this replica's own id")).length, 1, "said once a minute at most");
    assert.equal(poller.synced, true, "it answered: this replica is not kept waiting for it");
    // Restarted with ids of their own.
    otherId = "r3";
    selfId = "r5";
    await waitFor("both to be peers", () => poller.fresh().map((p) => p.state?.id).sort().join() === "r3,r5", 10_000);
    assert.equal(peer(self).self, false);
    assert.equal(peer(other).error, undefined);
    assert.ok(logger.lines.some((l) => l.startsWith("peer answers again")), logger.lines.join("\n"));
  });
});

describe("a stranger at a peer address answering a large state", { timeout: 60_000 }, () => {
  const fakes: Fake[] = [];
  let stop = () => {};
  after(async () => {
    stop();
    await Promise.all(fakes.map((f) => f.close()));
  });

  test("without a signature: cut off before its body; with a wrong one: read, refused, and polled with a backoff", async () => {
    const stranger = createPeerAuth({ secret: "another-secret-not-the-peers-0123", replicaId: "x", clockSkewMs: 10_000, maxNonces: 1000, logger: silentLogger });
    const big = stateOf("big", Array.from({ length: 20_000 }, (_, i) => `app-${i}`));
    // Streams the state in 64 KiB pieces, one every 20 ms; counts the pieces written before the poller hung up.
    const written: number[] = [];
    const bare = await fakePeer((_, res) => {
      res.writeHead(200, { etag: '"1"' });
      let n = 0;
      const t = setInterval(() => (n * 65_536 < big.length ? res.write(big.slice(n * 65_536, ++n * 65_536)) : (clearInterval(t), res.end())), 20);
      res.on("close", () => (clearInterval(t), written.push(n)));
    });
    const wrong = await fakePeer((req, res) => answer(req, res, big, stranger));
    fakes.push(bare, wrong);
    const { poller, close } = startPoller([bare.url, wrong.url], { maxStateBytes: 4 << 20, timeoutMs: 2_000 });
    stop = close;
    await sleep(8_000);
    const total = Math.ceil(big.length / 65_536);
    assert.ok(written.length > 0 && Math.max(...written) <= 3, `pieces written of ${total} before the poller hung up: ${written.join(" ")}`);
    for (const f of [bare, wrong]) {
      assert.equal(poller.peers.find((p) => p.address.url === f.url)!.error, "its answer is not signed with the peer secret");
      // 8 s: polled at 0 s, then 1, 2 and 4 s after each failure: 4 at most.
      assert.ok(f.polls >= 2 && f.polls <= 4, `${f === bare ? "unsigned" : "wrongly signed"}: ${f.polls} polls in 8 s`);
    }
    assert.deepEqual(poller.fresh(), []);
  });
});

describe("a replica back at an address whose polls fail", { timeout: 60_000 }, () => {
  const fakes: Fake[] = [];
  let stop = () => {};
  after(async () => {
    stop();
    await Promise.all(fakes.map((f) => f.close()));
  });

  test("a state poll from a replica unknown here: its failing peers are polled at once, not at the end of their backoff", async () => {
    const gone = await fakePeer((req, res) => answer(req, res, stateOf("old", ["app"])));
    const port = Number(new URL(gone.url).port);
    const { poller, close } = startPoller([gone.url], { staleMs: 1_500 });
    stop = close;
    await waitFor("the peer fresh", () => poller.fresh().length === 1, 10_000);
    await gone.close();
    // Refused: stale after 1.5 s, then polled 1, 2, 4 ... s apart (on a loaded machine later: waited for).
    const p = poller.peers[0]!;
    await waitFor("4 failed polls in a row", () => p.failures >= 4, 30_000);
    const back = await fakePeer((req, res) => answer(req, res, stateOf("new", ["app"])), port);
    fakes.push(back);
    poller.heardFrom("new");
    const t = performance.now();
    await waitFor("the replica back to be fresh", () => poller.fresh()[0]?.state?.id === "new", 10_000);
    const waited = performance.now() - t;
    // Its next poll was 8 s (failures 4) or more after the last one: at once is far sooner, on a loaded machine too.
    assert.ok(waited < 6_000, `seen ${Math.round(waited)} ms after it polled this replica`);
    assert.ok(back.polls >= 1 && back.polls <= 2, `${back.polls} polls`);
  });
});

describe("a large state, sent slowly", { timeout: 60_000 }, () => {
  let stop = () => {};
  let fake: Fake | undefined;
  after(async () => {
    stop();
    await fake?.close();
  });

  test("its body may take as long as its size needs (4 MB a second), and the peer stays fresh meanwhile", async () => {
    // 12 MB of state: 0.5 s for the head, then 3 s more for the body; it comes in 2 s, past timeoutMs and staleMs.
    // staleMs is half a poll interval past the poll that brings it (1.5 s, polls every 1 s): the poll begins while
    // fresh, on a loaded machine too (at 1 s, a poll begun a few ms late counted as begun stale).
    const big = (n: number) => stateOf("big", [`app-${n}`], { pad: "x".repeat(12_000_000) });
    let version = 1;
    fake = await fakePeer((req, res) => {
      const etag = `"${version}"`;
      if (req.headers["if-none-match"] === etag) return void res.writeHead(304, { etag, "x-promproxy-peer-answer": signer.signAnswer(String(req.headers["x-promproxy-peer"]).split(";")[2] ?? "", 304, etag, "") }).end();
      const body = Buffer.from(big(version));
      const nonce = String(req.headers["x-promproxy-peer"]).split(";")[2] ?? "";
      res.writeHead(200, { etag, "content-length": body.length, "x-promproxy-peer-answer": signer.signAnswer(nonce, 200, etag, body.toString()) });
      if (version === 1) return void res.end(body);
      let at = 0;
      const piece = Math.ceil(body.length / 20);
      const drip = setInterval(() => {
        res.write(body.subarray(at, (at += piece)));
        if (at >= body.length) (clearInterval(drip), res.end());
      }, 100);
    });
    const { poller, close } = startPoller([fake.url], { staleMs: 1_500, maxStateBytes: 16 << 20 });
    stop = close;
    await waitFor("the first state", () => poller.fresh()[0]?.state?.clients.has("app-1"), 10_000);
    version = 2;
    let gaps = 0;
    const peer = () => poller.peers[0]!;
    await waitFor("the second state", () => {
      if (poller.fresh().length === 0) gaps++;
      return peer().state?.clients.has("app-2");
    }, 15_000, 50);
    assert.equal(peer().error, undefined);
    assert.equal(gaps, 0, "fresh all along");
  });
});

describe("a large state whose body never comes", { timeout: 60_000 }, () => {
  let stop = () => {};
  let fake: Fake | undefined;
  after(async () => {
    stop();
    await fake?.close();
  });

  test("the peer stays fresh for one body's time past staleMs, not poll after poll", async () => {
    // After its first answer, every poll gets a head declaring 8 MB (a 2.5 s body deadline) and 1 KB of it: a path
    // that stalls large bodies. Each poll's head must not renew the peer's freshness.
    let first = true;
    fake = await fakePeer((req, res) => {
      if (first) {
        first = false;
        return answer(req, res, stateOf("stalls", ["app-1"]));
      }
      const nonce = String(req.headers["x-promproxy-peer"]).split(";")[2] ?? "";
      res.writeHead(200, { etag: '"2"', "content-length": 8_000_000, "x-promproxy-peer-answer": signer.signAnswer(nonce, 200, '"2"', "x") });
      res.write(Buffer.alloc(1024, " "));
    });
    const { poller, close } = startPoller([fake.url], { staleMs: 1_500, maxStateBytes: 16 << 20 });
    stop = close;
    await waitFor("the first state", () => poller.fresh().length === 1, 10_000);
    const okAt = Date.now();
    await waitFor("the peer gone", () => poller.fresh().length === 0, 20_000, 50);
    // staleMs (1 s), then at most the body deadline of a poll begun while fresh (0.5 s + 2 s): about 3.5 s.
    assert.ok(Date.now() - okAt < 10_000, `stale after ${Date.now() - okAt} ms`);
    // And stays gone while polls keep getting heads: watched every 50 ms for 5 s.
    let back = 0;
    for (let i = 0; i < 100; i++, await sleep(50)) if (poller.fresh().length > 0) back++;
    assert.equal(back, 0, "fresh again after it was gone");
    assert.ok(fake.polls >= 3, `${fake.polls} polls`);
  });
});
