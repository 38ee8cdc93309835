/**
 * The replica set and K of N, in one process: replicas that know each other
 * (`peers`) behind a TCP round robin, `replicasPerClient` 2, embedded clients
 * that know only the balancer. Each client ends up held by exactly the two
 * replicas rendezvous hashing assigns it (so the counts per replica are near
 * fair), every client is scrapeable through every replica (held or
 * forwarded) and every replica is ready; once a replica is gone, the set
 * shrinks and every client is held by its two replicas of the new set. With
 * every replica per client (K = 0), a replica that joins later is held by
 * every client through the ReplicaSet frame. Against a scripted server: a
 * welcome from a replica outside the set is closed, one whose set lacks its
 * own id dropped as a protocol error.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, describe, test } from "node:test";
import { createClient, type PromproxyClient } from "../../src/client/index.ts";
import { startScriptedServer } from "../../src/conformance/scripted-server.ts";
import { assignedReplicas } from "../../src/shared/rendezvous.ts";
import { createServer } from "../../src/server/index.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { proxyGet, startClient, testRegistry, waitFor, type TestServer } from "../helpers.ts";
import { freePorts, ready } from "./fixtures/ha/cluster.ts";
import { startRoundRobin, type RoundRobin } from "./fixtures/ha/round-robin.ts";

const secret = randomBytes(32).toString("hex");

interface Fleet {
  replicas: { id: string; port: number; s?: TestServer }[];
  lb: RoundRobin;
  clients: PromproxyClient[];
  names: string[];
}

async function startFleet(n: number, perClient: number, clients: number, o: { late?: number } = {}): Promise<Fleet> {
  const ports = await freePorts(n);
  const peers = ports.map((p) => `http://127.0.0.1:${p}`);
  const replicas = ports.map((port, i) => ({ id: `r${i + 1}`, port, s: undefined as TestServer | undefined }));
  // The peers need known ports: the servers listen on the ports handed out.
  for (const r of replicas.slice(0, n - (o.late ?? 0))) r.s = await listenOn(r.id, r.port, peers, perClient);
  const lb = await startRoundRobin(ports);
  for (const r of replicas.filter((r) => r.s)) await waitFor(`${r.id} ready`, () => ready(`http://127.0.0.1:${r.port}`), 15_000, 100);
  const names = Array.from({ length: clients }, (_, i) => `app-${i}`);
  const out: PromproxyClient[] = [];
  for (const name of names) out.push(await startClient(lb.url, name, { probeIntervalMs: 2_000 }));
  return { replicas, lb, clients: out, names };
}

async function listenOn(id: string, port: number, peers: string[], perClient: number): Promise<TestServer> {
  const server = createServer({ logger: silentLogger, replicaId: id, peers, peerSecret: secret, replicasPerClient: perClient, vanishedRetentionMs: 0 });
  await server.listen({ host: "127.0.0.1", port });
  return { server, port, url: `http://127.0.0.1:${port}`, close: () => server.close({ graceMs: 500, drainDelayMs: 0 }) };
}

/** Which live replicas hold each client now. */
function holders(f: Fleet): Map<string, string[]> {
  const out = new Map<string, string[]>(f.names.map((n) => [n, []]));
  for (const r of f.replicas) {
    if (!r.s) continue;
    for (const c of r.s.server.clients()) out.get(c.name)?.push(r.id);
  }
  for (const v of out.values()) v.sort();
  return out;
}

/** Every client held by exactly its assigned replicas of `ids`: the clients that are not, or "" when all are. */
function misplaced(f: Fleet, ids: string[], k: number): string {
  const wrong: string[] = [];
  for (const [name, held] of holders(f)) {
    const want = assignedReplicas(name, ids, k).sort();
    if (held.join() !== want.join()) wrong.push(`${name}: held by [${held}], assigned [${want}]`);
  }
  return wrong.slice(0, 5).join("; ") + (wrong.length > 5 ? ` (${wrong.length} in all)` : "");
}

async function stopFleet(f: Fleet) {
  await Promise.all(f.clients.map((c) => c.stop()));
  await f.lb.close();
  await Promise.all(f.replicas.map((r) => r.s?.close()));
}

describe("replica set: K of N, and clients following the set", { timeout: 180_000 }, () => {
  const fleets: Fleet[] = [];
  after(async () => {
    for (const f of fleets) await stopFleet(f);
  });

  test("4 replicas, replicasPerClient 2, 40 clients: each held by its 2 assigned replicas, scrapeable everywhere; one replica gone: its clients move", async () => {
    const f = await startFleet(4, 2, 40);
    fleets.push(f);
    const ids = f.replicas.map((r) => r.id);
    await waitFor("every client held by its two assigned replicas", () => misplaced(f, ids, 2) === "", 30_000, 200).catch(() => assert.fail(misplaced(f, ids, 2)));
    // Refusing a client it is not assigned is routine: counted, not listed among the refusals on the status page.
    const statuses = f.replicas.map((r) => r.s!.server.status());
    assert.ok(statuses.some((st) => st.refusedRoutine > 0), "clients were refused by replicas not assigned to them");
    for (const st of statuses) assert.deepEqual(st.refused.filter((e) => e.code === "Unavailable"), []);
    const counts = f.replicas.map((r) => r.s!.server.clients().length);
    assert.equal(counts.reduce((a, b) => a + b, 0), 80, `held per replica: ${counts}`);
    for (const r of f.replicas) {
      assert.ok(await ready(`http://127.0.0.1:${r.port}`), `${r.id} ready with K < N`);
      // A replica learns its peers' clients within a poll or two (a second each).
      for (const name of f.names) await waitFor(`${name} through ${r.id}`, async () => (await proxyGet(r.port, `http://${name}/metrics`)).status === 200, 5_000, 100);
    }
    // One replica leaves: the set shrinks to three, every client is held by its two of those.
    const gone = f.replicas[3]!;
    await gone.s!.close();
    gone.s = undefined;
    const left = ids.slice(0, 3);
    await waitFor("every client held by its two assigned replicas of the three left", () => misplaced(f, left, 2) === "", 45_000, 250).catch(() => assert.fail(misplaced(f, left, 2)));
    for (const r of f.replicas.slice(0, 3)) {
      for (const name of f.names) await waitFor(`${name} through ${r.id}`, async () => (await proxyGet(r.port, `http://${name}/metrics`)).status === 200, 5_000, 100);
    }
  });

  test("every replica per client: a replica that joins later is held by every client (the ReplicaSet frame)", async () => {
    const f = await startFleet(3, 0, 6, { late: 1 });
    fleets.push(f);
    // r3 is on every peer list and not listening yet: r1 and r2 have not heard from every peer, so the set is unknown
    // (clients search as without peers). Once r3 answers, the set is [r1, r2, r3]: every client holds all three.
    const late = f.replicas[2]!;
    late.s = await listenOn(late.id, late.port, f.replicas.map((r) => `http://127.0.0.1:${r.port}`), 0);
    await waitFor("every client held by all three", () => misplaced(f, ["r1", "r2", "r3"], 0) === "", 30_000, 200).catch(() => assert.fail(misplaced(f, ["r1", "r2", "r3"], 0)));
  });
});

describe("replica set: a replacement under a new id at the same address", { timeout: 120_000 }, () => {
  test("the peers learn its id (a poll addressed to its predecessor is refused), the set names it, every client holds it", async (t) => {
    const f = await startFleet(2, 0, 5);
    t.after(() => stopFleet(f));
    await waitFor("every client held by both replicas", () => misplaced(f, ["r1", "r2"], 0) === "", 30_000, 200).catch(() => assert.fail(misplaced(f, ["r1", "r2"], 0)));
    const old = f.replicas[1]!;
    await old.s!.close();
    // Until r1 counts r2 as gone (5 s: 3 polls and the timeout) and its set [r1] reaches the clients: they stop looking.
    await new Promise((r) => setTimeout(r, 8_000));
    old.s = await listenOn("r2-new", old.port, f.replicas.map((r) => `http://127.0.0.1:${r.port}`), 0);
    old.id = "r2-new";
    await waitFor("every client held by r1 and r2-new", () => misplaced(f, ["r1", "r2-new"], 0) === "", 45_000, 200).catch(() => assert.fail(misplaced(f, ["r1", "r2-new"], 0)));
  });
});

describe("replica set: what a client does not believe", { timeout: 60_000 }, () => {
  test("each stream follows its own replica's set: another replica's set (a rogue's, a stale view) never closes it", async (t) => {
    const server = await startScriptedServer();
    t.after(() => server.close());
    const client = createClient({ name: "app-1", serverUrl: server.url, registry: testRegistry("app-1"), logger: silentLogger, backoff: { initialMs: 50, maxMs: 500 } });
    t.after(() => client.stop());
    void client.start();
    const first = await server.nextSession(10_000);
    first.welcome({ replicaId: "r1", replicaIds: ["r1", "r2"], features: ["replica-set"] });
    // The client searches for r2. A replica whose own set does not give it this client (K = 1 of [r1, y]: r1 for
    // "app-1") should have refused the hello: closed with a goodbye, its set not believed (the search goes on).
    assert.deepEqual(assignedReplicas("app-1", ["r1", "y"], 1), ["r1"]);
    const unassigned = await server.nextSession(10_000);
    unassigned.welcome({ replicaId: "y", replicaIds: ["r1", "y"], replicasPerClient: 1, features: ["replica-set"] });
    await Promise.race([unassigned.ended, new Promise((r) => setTimeout(r, 3_000))]);
    assert.ok(unassigned.halfClosedAt !== undefined, `a welcome whose own set does not give it the client was kept: ${unassigned.endedHow ?? "still open"}`);
    // A welcome whose own set lacks its id: the client drops that stream (no goodbye), and keeps r1.
    const liar = await server.nextSession(10_000);
    liar.welcome({ replicaId: "r2", replicaIds: ["r1", "r3"] });
    const how = await Promise.race([liar.ended, new Promise<string>((r) => setTimeout(() => r("still open"), 3_000))]);
    assert.notEqual(how, "still open");
    assert.equal(liar.halfClosedAt, undefined, "dropped as a protocol error, not left with a goodbye");
    assert.ok(first.open, `the stream to r1 ended: ${first.endedHow}`);
    // The real r2: held.
    const r2 = await server.nextSession(10_000);
    r2.welcome({ replicaId: "r2", replicaIds: ["r1", "r2"], features: ["replica-set"] });
    await new Promise((r) => setTimeout(r, 1_000));
    assert.ok(r2.open && first.open, "both replicas of the set held");
    // r1 (a rogue, or a replica whose peers lost r2) announces [r1]: r2's stream stays, r2 being still in r2's own set.
    first.send({ frame: { case: "replicaSet", value: { replicaIds: ["r1"], replicasPerClient: 0 } } });
    await new Promise((r) => setTimeout(r, 1_500));
    assert.ok(r2.open && first.open, `another replica's set closed a stream: r2 ${r2.endedHow ?? "open"}, r1 ${first.endedHow ?? "open"}`);
    // r2 itself says it left: its stream is closed with a goodbye, r1's stays.
    r2.send({ frame: { case: "replicaSet", value: { replicaIds: ["r1"], replicasPerClient: 0 } } });
    await Promise.race([r2.ended, new Promise((r) => setTimeout(r, 5_000))]);
    assert.ok(r2.halfClosedAt !== undefined, `r2's stream after r2's own set left it out: ${r2.endedHow ?? "still open"}`);
    assert.ok(first.open, `the stream to r1 ended: ${first.endedHow}`);
  });

  test("a hostile server's replica sets cost the client little: a flood of changes ends that stream, and the search is paced", async (t) => {
    // Every stream after the first is refused as a step of the search (the name held on r1), as a real replica would.
    const { Code, ConnectError } = await import("@connectrpc/connect");
    let opened = 0;
    const server = await startScriptedServer({ refuse: () => (++opened > 1 ? new ConnectError("held on r1", Code.AlreadyExists, new Headers({ "promproxy-replica-id": "r1" })) : undefined) });
    t.after(() => server.close());
    const said: string[] = [];
    const logger = { debug: () => {}, info: () => {}, warn: (m: string, f?: Record<string, unknown>) => void said.push(`${m} ${JSON.stringify(f)}`), error: (m: string, f?: Record<string, unknown>) => void said.push(`${m} ${JSON.stringify(f)}`) };
    const client = createClient({ name: "app-1", serverUrl: server.url, registry: testRegistry("app-1"), logger, backoff: { initialMs: 5_000, maxMs: 10_000 } });
    t.after(() => client.stop());
    void client.start();
    const first = await server.nextSession(10_000);
    const ids = (n: number) => Array.from({ length: 64 }, (_, i) => `r${i === 0 ? 1 : `${n}-${i}`}`);
    first.welcome({ replicaId: "r1", replicaIds: ["r1"], features: ["replica-set"] });
    // Sets of 64 ids changing every 20 ms for 3 s.
    const started = Date.now();
    let sent = 0;
    while (Date.now() - started < 3_000 && first.open) {
      first.send({ frame: { case: "replicaSet", value: { replicaIds: ids(sent++), replicasPerClient: 0 } } });
      await new Promise((r) => setTimeout(r, 20));
    }
    const how = await Promise.race([first.ended, new Promise<string>((r) => setTimeout(() => r("still open"), 2_000))]);
    assert.notEqual(how, "still open", `the stream survived ${sent} changed sets in 3 s`);
    assert.ok(said.some((l) => l.includes("faster than one a second")), `said why: ${said.join(" | ")}`);
    // The search the sets asked for (63 replicas missing): rounds of at most 8 connections, restarted fast at most once.
    assert.ok(server.sessions.length <= 8 * 8, `connections opened while flooded: ${server.sessions.length}`);
    t.diagnostic(`${sent} sets sent; stream ended: ${how}; ${server.sessions.length} connections`);
  });
});
