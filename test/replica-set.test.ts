/**
 * The replica set's pieces: rendezvous hashing (stable, spread, moving about
 * K/N of the clients on a change), the client's check of an announced set
 * (at and over its bound, bad ids), what a client holds under a set or a
 * count, the server's feature negotiation, its refusal of a client it is not
 * assigned, and the debounced ReplicaSet frames.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { HelloSchema } from "../gen/promproxy/v1/scrape_pb.ts";
import { checkReplicaSet } from "../src/client/replica-set.ts";
import { assigns, createReplicaTarget } from "../src/client/replica-target.ts";
import { notServedHere } from "../src/client/search-refusal.ts";
import { negotiateFeatures } from "../src/server/features.ts";
import { resolveServerOptions } from "../src/server/options.ts";
import { assignmentRefusal } from "../src/server/peers/assignment.ts";
import { createReplicaSetFeed } from "../src/server/peers/replica-set.ts";
import type { Peer } from "../src/server/peers/peer-poller.ts";
import type { Session } from "../src/server/session.ts";
import { createQueue } from "../src/shared/queue.ts";
import { assignedReplicas, rendezvousWeight } from "../src/shared/rendezvous.ts";
import { replicaIdKey } from "../src/shared/replica-header.ts";

const ids = (n: number) => Array.from({ length: n }, (_, i) => `r${i + 1}`);
const names = Array.from({ length: 3000 }, (_, i) => `app-${i}.example`);

describe("rendezvous hashing", () => {
  test("the weight is the first 8 bytes of SHA-256(name 0x00 id), big-endian (PROTOCOL.md)", () => {
    const digest = createHash("sha256").update(Buffer.concat([Buffer.from("app-1"), Buffer.from([0]), Buffer.from("r1")])).digest();
    assert.equal(rendezvousWeight("app-1", "r1"), digest.readBigUInt64BE(0));
    // Fixed vectors, for other languages' implementations.
    assert.equal(rendezvousWeight("app-1", "r1").toString(16).padStart(16, "0"), digest.subarray(0, 8).toString("hex"));
  });

  test("K of N: K distinct ids of the set, whatever its order; 0 or K >= N: every id", () => {
    const set = ids(6);
    for (const name of names.slice(0, 50)) {
      const a = assignedReplicas(name, set, 2);
      assert.equal(new Set(a).size, 2);
      assert.deepEqual(assignedReplicas(name, [...set].reverse(), 2), a);
      for (const id of a) assert.ok(set.includes(id));
    }
    assert.deepEqual(assignedReplicas("x", ["b", "a"], 0), ["a", "b"]);
    assert.deepEqual(assignedReplicas("x", ["b", "a"], 5), ["a", "b"]);
  });

  test("spread: 3,000 clients, 6 replicas, K 2: every replica within 1.15x of its fair share", () => {
    const held = new Map<string, number>();
    for (const n of names) for (const id of assignedReplicas(n, ids(6), 2)) held.set(id, (held.get(id) ?? 0) + 1);
    const fair = (names.length * 2) / 6;
    for (const [id, c] of held) assert.ok(c <= fair * 1.15 && c >= fair * 0.85, `${id}: ${c}, fair ${fair}`);
  });

  test("a replica leaving moves only the clients it held; one joining takes about K/N", () => {
    const before = ids(6);
    const after = before.filter((id) => id !== "r6");
    let moved = 0;
    for (const n of names) {
      const a = assignedReplicas(n, before, 2);
      const b = assignedReplicas(n, after, 2);
      if (!a.includes("r6")) assert.deepEqual(b, a, `${n} moved though r6 did not hold it`);
      else moved++;
    }
    assert.ok(Math.abs(moved / names.length - 2 / 6) < 0.05, `moved ${moved}`);
    let changed = 0;
    for (const n of names) if (assignedReplicas(n, [...before, "r7"], 2).includes("r7")) changed++;
    assert.ok(Math.abs(changed / names.length - 2 / 7) < 0.05, `joined: ${changed}`);
  });
});

describe("the client's check of an announced set", () => {
  test("empty: unknown; sorted and kept otherwise", () => {
    assert.equal(checkReplicaSet([], 0, 64, "welcome"), undefined);
    assert.deepEqual(checkReplicaSet(["b", "a"], 2, 64, "welcome"), { ids: ["a", "b"], perClient: 2 });
  });

  test("at maxReplicas accepted, over it refused with one line", () => {
    assert.equal(checkReplicaSet(ids(64), 0, 64, "welcome")?.ids.length, 64);
    assert.throws(() => checkReplicaSet(ids(65), 0, 64, "welcome"), (e: ConnectError) => e.code === Code.FailedPrecondition && /of over 64 replicas, more than this client holds \(maxReplicas 64\)/.test(e.rawMessage));
    assert.throws(() => checkReplicaSet(ids(3), 0, 2, "replica set frame"), /replica set frame announces a replica set of over 2 replicas/);
  });

  test("ids: at most 128 header-safe characters, each once", () => {
    assert.ok(checkReplicaSet(["x".repeat(128)], 0, 64, "welcome"));
    assert.throws(() => checkReplicaSet(["x".repeat(129)], 0, 64, "welcome"), /129 characters that is not a short header-safe id/);
    assert.throws(() => checkReplicaSet(["a\nb"], 0, 64, "welcome"), /not a short header-safe id/);
    assert.throws(() => checkReplicaSet([""], 0, 64, "welcome"), /0 characters/);
    assert.throws(() => checkReplicaSet(["a", "a"], 0, 64, "welcome"), /naming a replica twice/);
  });
});

describe("what a client holds", () => {
  test("without a set: the count; with one: its assigned replicas, the set winning over the count", () => {
    const t = createReplicaTarget("app-1", 64);
    assert.equal(t.known, false);
    assert.equal(t.searchers(new Set()), 0);
    t.welcome(3, undefined, "a");
    assert.ok(t.known && t.missing(new Set(["a", "b"])) && !t.missing(new Set(["a", "b", "c"])));
    assert.equal(t.searchers(new Set(["a"])), 3);
    const mine = assignedReplicas("app-1", ids(6), 2);
    assert.equal(t.welcome(3, { ids: ids(6), perClient: 2 }, mine[0]!), true);
    assert.deepEqual([...t.wanted!].sort(), [...mine].sort());
    assert.ok(t.missing(new Set(ids(6).filter((id) => id !== mine[0]))), "a replica of its own missing");
    assert.ok(!t.missing(new Set(mine)));
    assert.equal(t.searchers(new Set([mine[0]!])), 6, "a round of N connections meets every replica");
    const other = ids(6).find((id) => !mine.includes(id))!;
    assert.ok(assigns("app-1", { ids: ids(6), perClient: 2 }, mine[0]!) && !assigns("app-1", { ids: ids(6), perClient: 2 }, other));
    assert.ok(!assigns("app-1", { ids: ids(6), perClient: 0 }, "not-in-the-set"), "an id outside the set is never given");
    assert.equal(t.follow({ ids: ids(6), perClient: 2 }, mine[0]!), false, "the same set: nothing changed");
    assert.equal(t.follow({ ids: ids(12), perClient: 0 }, mine[0]!), true);
    assert.equal(t.searchers(new Set()), 8, "at most 8 search at once");
  });

  test("a rogue's set cannot hide the replicas that the held replicas' own sets give: the search goes on for them", () => {
    const t = createReplicaTarget("app-1", 64);
    t.welcome(0, { ids: ["r1", "r2"], perClient: 0 }, "r1");
    t.welcome(0, { ids: ["rogue"], perClient: 0 }, "rogue"); // the latest set names the rogue alone
    assert.deepEqual([...t.wanted!], ["rogue"]);
    assert.ok(t.missing(new Set(["r1", "rogue"])), "r1's own set still gives r2: searched for");
    assert.ok(!t.missing(new Set(["r1", "r2", "rogue"])));
    assert.ok(t.searchers(new Set(["r1", "rogue"])) > 0);
    // Once r1 is no longer held, its set no longer counts.
    assert.ok(!t.missing(new Set(["rogue"])), "only the rogue held: its set is all there is");
  });
});

describe("server side", () => {
  test("features: replica-set only with peers", () => {
    assert.deepEqual(negotiateFeatures(["replica-set", "head", "x", "head"], { peers: [] }), ["head"]);
    assert.deepEqual(negotiateFeatures(["replica-set", "head"], { peers: [new URL("http://a:1")] }), ["replica-set", "head"]);
  });

  test("a replica refuses a client it is not assigned: Unavailable naming itself; takes it while the set is unknown", () => {
    const set = ids(4);
    const hello = create(HelloSchema, { name: "App-7" });
    const mine = assignedReplicas("app-7", set, 2);
    const other = set.find((id) => !mine.includes(id))!;
    assert.equal(assignmentRefusal(hello, mine[0]!, set, 2), undefined);
    const r = assignmentRefusal(hello, other, set, 2)!;
    assert.equal(r.code, Code.Unavailable);
    assert.equal(r.metadata.get(replicaIdKey), other);
    assert.match(r.rawMessage, new RegExp(`replica ${other} does not hold client "app-7": each client holds 2 of the 4 replicas, this one ${mine.join(", ")}`));
    assert.ok(notServedHere(r), "the client reads it as a step of its search");
    assert.ok(!notServedHere(new ConnectError("shutting down", Code.Unavailable)), "a plain Unavailable is not");
    assert.equal(assignmentRefusal(hello, other, [], 2), undefined, "set unknown");
    assert.equal(assignmentRefusal(hello, other, set.slice(0, 2), 2), undefined, "K >= N");
    assert.equal(assignmentRefusal(create(HelloSchema, { name: "bad name!" }), other, set, 2), undefined, "a bad name is the coordinator's to refuse");
  });

  test("replicasPerClient: 0 to 64, only with peers", () => {
    const peers = { peers: "http://a:1", peerSecret: "0123456789abcdef0123" };
    assert.equal(resolveServerOptions({ ...peers, replicasPerClient: 64 }).replicasPerClient, 64);
    assert.equal(resolveServerOptions({}).replicasPerClient, 0);
    assert.throws(() => resolveServerOptions({ ...peers, replicasPerClient: 65 }), /replicasPerClient \(65\) needs peers .* at most 64/);
    assert.throws(() => resolveServerOptions({ replicasPerClient: 2 }), /replicasPerClient \(2\) needs peers/);
    assert.throws(() => resolveServerOptions({ ...peers, replicasPerClient: 1.5 }), /replicasPerClient must be a whole number >= 0/);
  });

  test("the feed: unknown until synced; self plus fresh ready peers; one frame per change per interval, the latest winning", async () => {
    const peer = (id: string, ready: boolean) => ({ state: { id, ready, clients: new Map() } }) as unknown as Peer;
    let peers = [peer("r2", true), peer("r3", false)];
    let synced = false;
    const feed = createReplicaSetFeed({ replicaId: "r1", perClient: 2, fresh: () => peers, synced: () => synced, maxIds: 64, intervalMs: 50 });
    const outbound = createQueue<unknown>();
    const session = { features: ["replica-set"], outbound } as unknown as Session;
    const deaf = { features: ["head"], outbound: createQueue<unknown>() } as unknown as Session;
    feed.subscribe(session);
    feed.subscribe(deaf);
    assert.deepEqual(feed.current(), []);
    synced = true;
    assert.deepEqual(feed.current(), ["r1", "r2", "r3"], "r3 is starting (never seen ready): in the set");
    peers = [peer("r2", true), peer("r3", true)];
    assert.deepEqual(feed.current(), ["r1", "r2", "r3"]);
    peers = [peer("r2", false), peer("r3", true)];
    assert.deepEqual(feed.current(), ["r1", "r3"], "r2 turned unready (draining): out of the set");
    peers = [peer("r2", true), peer("r3", true)];
    assert.deepEqual(feed.current(), ["r1", "r2", "r3"]);
    peers = [peer("r3", false), peer("r2", true)];
    peers = [peer("r3", true), peer("r2", true)]; // flapping within one interval: one frame, the latest set
    await new Promise((r) => setTimeout(r, 120));
    const frames: unknown[] = [];
    for (let f = outbound.shift(); f !== undefined; f = outbound.shift()) frames.push(f);
    assert.deepEqual(frames, [{ frame: { case: "replicaSet", value: { replicaIds: ["r1", "r2", "r3"], replicasPerClient: 2 } } }]);
    assert.equal(deaf.outbound.size, 0);
    const many = createReplicaSetFeed({ replicaId: "zz", perClient: 0, fresh: () => ids(100).map((id) => peer(id, true)), synced: () => true, maxIds: 64, intervalMs: 1000 });
    assert.equal(many.current().length, 64);
    assert.ok(many.current().includes("zz"), "this replica is always in its own set");
    feed.close();
    many.close();
  });
});
