/**
 * `/clients` as pieces (src/server/listen/pieced-body.ts): the document, the peer state and the fleet's
 * `/clients` are the same bytes the old one-string join made, yet a rebuild copies no byte of it (the new
 * document is made of the very Buffers each client's piece was encoded into once), and writing it hands the
 * socket at most `slicesPerTurn` slices per turn of the event loop, as views of the pieces.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import fc from "fast-check";
import { createDiscovery, groupsOf, type DiscoveryEntry } from "../src/server/discovery.ts";
import { sliceBytes, slicesPerTurn, writeSlices } from "../src/server/listen/answer-slices.ts";
import { joinBody, piecedBody, sliceReader } from "../src/server/listen/pieced-body.ts";
import { createPeerDiscovery } from "../src/server/peers/peer-discovery.ts";
import type { Peer } from "../src/server/peers/peer-poller.ts";
import { createStateSource, hashBytesPerTurn, hashOf, parsePeerState, processInstance } from "../src/server/peers/peer-state.ts";
import { silentLogger } from "../src/shared/logger.ts";

/** What `/clients` was before pieces: each client's groups joined by ",", then all of them in one string. */
const oldJoin = (entries: DiscoveryEntry[]) => `[${entries.map((e) => groupsOf(e).map((g) => JSON.stringify(g)).join(",")).join(",")}]`;

const entry = (name: string, labels: Record<string, string>, over: Partial<DiscoveryEntry> = {}): DiscoveryEntry => ({
  name,
  labels,
  targets: [{ port: 9100, path: "/metrics", labels: {} }, { port: 0, path: "", labels: { t: "ü" } }],
  sessionId: `s-${name}`,
  ...over,
});

test("the document is byte for byte the old join: unicode, escapes, lone surrogates, removals, the empty list", () => {
  const d = createDiscovery({ maxBytes: Infinity });
  assert.equal(joinBody(d.body()).toString(), "[]");
  assert.equal(d.body().length, 2);
  const text = fc.string({ unit: fc.constantFrom("a", "\u0001", "\"", "\\", "é", "😀", "\u2028", "\ud800", "✓", "\n"), maxLength: 12 });
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.dictionary(fc.constantFrom("env", "team", "note"), text, { maxKeys: 3 }), fc.boolean(), fc.boolean()), { maxLength: 8 }), (specs) => {
      const d = createDiscovery({ maxBytes: Infinity });
      const kept: DiscoveryEntry[] = [];
      specs.forEach(([labels, remove, vanished], i) => {
        const e = entry(`c${i}`, labels, vanished ? { connected: false } : {});
        const off = d.add(e);
        if (remove) off();
        else kept.push(e);
      });
      const want = Buffer.from(oldJoin(kept));
      const doc = d.body();
      assert.deepEqual(joinBody(doc), want);
      assert.equal(doc.length, want.length);
      assert.equal(d.bytes, want.length);
    }),
    { numRuns: 500 },
  );
});

test("a rebuild copies no byte: the new document is made of the same piece Buffers, one per client", () => {
  const d = createDiscovery({ maxBytes: Infinity });
  const offs = Array.from({ length: 50 }, (_, i) => d.add(entry(`c${i}`, { note: "é".repeat(i) })));
  const first = d.body();
  assert.equal(first.parts.length, 2 * 50 + 1, "[, 50 pieces, 49 commas, ]");
  offs[10]!();
  d.add(entry("late", { note: "😀" }));
  const second = d.body();
  assert.notEqual(second, first);
  const before = new Set(first.parts);
  const reused = second.clients.filter((c) => before.has(c.json)).length;
  assert.equal(reused, 49, "every client still listed is the very Buffer it was encoded into");
  for (const c of second.clients) assert.ok(second.parts.includes(c.json));
});

test("sliceReader: slices of at most one slice's bytes, as views of the pieces (no copy), the whole body in order", () => {
  const pieces = [Buffer.from("["), Buffer.alloc(100_000, "a"), Buffer.from(","), Buffer.alloc(3, "é"), Buffer.alloc(200_000, "b"), Buffer.from("]")];
  const body = piecedBody(pieces);
  const read = sliceReader(body, sliceBytes);
  const out: Buffer[] = [];
  const buffers = new Set<ArrayBufferLike>(pieces.map((p) => p.buffer));
  for (let s = read(); s; s = read()) {
    const n = s.reduce((a, v) => a + v.length, 0);
    assert.ok(n > 0 && n <= sliceBytes);
    for (const v of s) assert.ok(buffers.has(v.buffer), "a view of a piece, not a copy");
    out.push(...s);
  }
  assert.deepEqual(Buffer.concat(out), Buffer.concat(pieces));
  assert.equal(sliceReader(piecedBody([]), sliceBytes)(), undefined);
  assert.equal(sliceReader(piecedBody([Buffer.alloc(0)]), sliceBytes)(), undefined);
});

test("the peer state is the old string's bytes, its hash the SHA-256 of them (in steps), its ETag kept while the document is", async () => {
  const d = createDiscovery({ maxBytes: Infinity });
  const e = entry("app-1", { city: "Zürich", emoji: "😀" });
  d.add(e);
  const source = createStateSource({ replicaId: "r-ü", discovery: () => ({ body: d.body() }), ready: () => true });
  const s = source.current();
  const old = `{"id":${JSON.stringify("r-ü")},"instance":"${processInstance}","ready":true,"signedForwards":true,"clients":${oldJoin([e])}}`;
  assert.deepEqual(joinBody(s.body), Buffer.from(old));
  assert.equal(s.bytes, Buffer.byteLength(old));
  assert.equal(await source.hash(s), createHash("sha256").update(old).digest("hex"));
  assert.equal(source.hash(s), source.hash(s), "hashed once per version");
  assert.equal(source.current().etag, s.etag, "same document, same ETag");
  assert.equal(parsePeerState(old).clients.get("app-1")?.bytes, Buffer.byteLength(oldJoin([e])) - 2);
});

test("a large state is hashed in steps of hashBytesPerTurn: other work gets turns in between; the digest is the whole body's", async () => {
  const parts = Array.from({ length: 40 }, (_, i) => Buffer.alloc(1024 * 1024, i));
  const v = { body: piecedBody(parts), bytes: 40 * 1024 * 1024, etag: '"x"' };
  let turns = 0;
  let ticking = true;
  const tick = () => {
    turns++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const sha = await hashOf(v);
  ticking = false;
  assert.equal(sha, createHash("sha256").update(Buffer.concat(parts)).digest("hex"));
  assert.ok(turns >= Math.floor(v.bytes / hashBytesPerTurn) - 1, `${turns} turns of the event loop while hashing 40 MiB`);
});

test("the fleet's /clients is the old merge's bytes: local pieces by name, a peer's clients, connected over vanished", () => {
  const d = createDiscovery({ maxBytes: Infinity });
  const mine = [entry("a", { note: "é" }), entry("b", { x: "\u2028" }, { connected: false })];
  for (const e of mine) d.add(e);
  const theirs = [entry("b", { x: "peer" }), entry("c", { emoji: "😀" })];
  const state = parsePeerState(JSON.stringify({ id: "r2", ready: true, clients: theirs.flatMap(groupsOf) }));
  const peer = { address: { url: "http://10.0.0.2:8080" }, generation: 1, state } as unknown as Peer;
  const fleet = createPeerDiscovery({ replicaId: "r1", local: () => ({ body: d.body() }), fresh: () => [peer], maxBytes: Infinity, logger: silentLogger });
  const got = fleet.current();
  // r1's own first (a, b vanished), then b connected at r2 wins over the vanished one, in b's place; then c.
  const want = Buffer.from(oldJoin([mine[0]!, theirs[0]!, theirs[1]!]));
  assert.deepEqual(joinBody(got.body), want);
  assert.equal(got.bytes, want.length);
  assert.equal(fleet.current(), got, "nothing changed: the same document");
});

test("a fast reader gets at most slicesPerTurn slices per turn of the event loop, all of the body, in order", async (t) => {
  const pieces = Array.from({ length: 2_000 }, (_, i) => Buffer.alloc(8_000 + (i % 7), i % 251));
  const body = piecedBody(pieces);
  let turn = 0;
  let ticking = true;
  const tick = () => {
    turn++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const perTurn = new Map<number, number>();
  const server = http.createServer((_req, res) => {
    const write = res.write.bind(res) as (chunk: Buffer) => boolean;
    const end = res.end.bind(res) as (chunk?: Buffer) => http.ServerResponse;
    const count = (chunk?: Buffer) => perTurn.set(turn, (perTurn.get(turn) ?? 0) + (chunk?.length ?? 0));
    res.write = ((chunk: Buffer) => (count(chunk), write(chunk))) as typeof res.write;
    res.end = ((chunk?: Buffer) => (count(chunk), end(chunk))) as typeof res.end;
    res.writeHead(200, { "content-length": body.length });
    writeSlices(res, body);
  });
  t.after(() => {
    ticking = false;
    server.close();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const got = await new Promise<Buffer>((resolve, reject) => {
    http.get({ host: "127.0.0.1", port: (server.address() as AddressInfo).port, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve(Buffer.concat(chunks)));
      res.on("error", reject);
    }).on("error", reject);
  });
  assert.deepEqual(got, Buffer.concat(pieces));
  const most = Math.max(...perTurn.values());
  assert.ok(most <= slicesPerTurn * sliceBytes, `${most} bytes written in one turn, at most ${slicesPerTurn * sliceBytes}`);
  assert.ok(perTurn.size >= Math.ceil(body.length / (slicesPerTurn * sliceBytes)), `${perTurn.size} turns for ${body.length} bytes`);
});
