/**
 * Large documents that change often are rebuilt at most once per 1 ms for every 10 KB of their last build
 * (src/server/paced-document.ts): `/clients` and a replica's peer state. Small ones are rebuilt on every change.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { pacedBytesPerMs, pacedDocument } from "../src/server/paced-document.ts";
import { createStateSource } from "../src/server/peers/peer-state.ts";
import { piecedBody } from "../src/server/listen/pieced-body.ts";

test("a document is rebuilt at most once per bytes / 10,000 ms; served as last built in between", () => {
  let now = 0;
  let builds = 0;
  let size = 58_000_000; // a 58 MB /clients: at most once per 5.8 s
  const doc = pacedDocument(() => ({ n: ++builds, bytes: size }), (d) => d.bytes, () => now);
  assert.equal(doc().n, 1);
  for (now = 0; now < 5_800; now += 100) assert.equal(doc().n, 1, `still the first build at ${now} ms`);
  now = 5_800;
  assert.equal(doc().n, 2);
  // Its size now small: the next one comes as soon as its own size allows.
  size = 10_000;
  now += 5_800;
  assert.equal(doc().n, 3);
  now += 0.5;
  assert.equal(doc().n, 3, "10 KB: at most once per millisecond");
  now += 0.5;
  assert.equal(doc().n, 4);
  assert.equal(pacedBytesPerMs, 10_000);
});

test("documents of a few KB are rebuilt on every call a millisecond apart or less often", () => {
  let now = 0;
  let builds = 0;
  const doc = pacedDocument(() => ++builds, () => 2_000, () => now);
  for (let i = 0; i < 100; i++, now += 1) doc();
  assert.equal(builds, 100);
});

test("a replica's peer state: a large one changing on every poll keeps its ETag (peers get 304) until its pace allows", () => {
  let now = 0;
  let version = 0;
  const big = (n: number) => piecedBody([Buffer.from(`[${`{"targets":["c${n}"],"labels":{}}`.padEnd(2_000_000, " ")}]`)]);
  let joins = 0;
  const source = createStateSource({
    replicaId: "r1",
    discovery: () => (joins++, { body: big(++version) }), // a change on every look
    ready: () => true,
    now: () => now,
  });
  const first = source.current();
  assert.ok(first.bytes > 2_000_000);
  for (now = 0; now < 200; now += 10) assert.equal(source.current().etag, first.etag, `at ${now} ms`);
  assert.equal(joins, 1, "the local /clients is not even looked at in between");
  now = 201;
  assert.notEqual(source.current().etag, first.etag);
  assert.equal(joins, 2);
});
