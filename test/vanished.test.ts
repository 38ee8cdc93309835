/**
 * Vanished records are kept per identity: an identity's own churn pushes out
 * its own oldest records, never another's; room for a live client is taken
 * from its own identity, else only from an identity holding more clients.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createVanished, type VanishedClient } from "../src/server/vanished.ts";

function setup(maxPerIdentity: number, live: Record<string, number> = {}) {
  const unlisted: string[] = [];
  const v = createVanished({ retentionMs: 60_000, maxPerIdentity, live: (k) => live[k] ?? 0 });
  const add = (name: string, identity?: string) => {
    const client: VanishedClient = {
      info: { name, labels: {}, targets: [], sessionId: name, version: "", connectedAt: new Date(0), identity },
      since: Date.now(),
      reason: "test",
    };
    v.add(client, () => void unlisted.push(name));
  };
  const names = () => v.all().map((c) => c.info.name);
  return { v, add, names, unlisted };
}

test("an identity keeps at most maxVanishedPerIdentity records: at the limit all, over it its own oldest goes", () => {
  const { v, add, names, unlisted } = setup(3);
  try {
    add("app-1", "a");
    for (const n of ["b-1", "b-2", "b-3"]) add(n, "b");
    assert.deepEqual(names(), ["app-1", "b-1", "b-2", "b-3"], "at the limit: every record kept");
    add("b-4", "b");
    assert.deepEqual(names(), ["app-1", "b-2", "b-3", "b-4"], "over it: b's oldest forgotten, a's kept");
    assert.deepEqual(unlisted, ["b-1"]);
    assert.equal(v.sizeOf("a"), 1);
    assert.equal(v.sizeOf("b"), 3);
  } finally {
    v.close();
  }
});

test("room for a live client: its own identity's oldest record first", () => {
  const { v, add, names } = setup(100, { b: 5 });
  try {
    add("app-1", "a");
    add("b-1", "b");
    add("b-2", "b");
    assert.equal(v.evictFor("b"), true);
    assert.deepEqual(names(), ["app-1", "b-2"]);
  } finally {
    v.close();
  }
});

test("room for a live client: never from an identity holding as many clients or fewer", () => {
  const live = { b: 10_000, a: 0 } as Record<string, number>;
  const { v, add, names } = setup(100, live);
  try {
    add("app-1", "a");
    assert.equal(v.evictFor("b"), false, "b holds 10 000 live clients, a one vanished one");
    assert.deepEqual(names(), ["app-1"]);
    live["b"] = 1;
    assert.equal(v.evictFor("b"), false, "as many as a: still a's");
    live["b"] = 0;
    assert.equal(v.evictFor("b"), true, "a newcomer with nothing takes from an identity holding more");
    assert.deepEqual(names(), []);
  } finally {
    v.close();
  }
});

test("room for a live client: from the identity holding the most, counting its live clients", () => {
  const live = { a: 0, c: 50, d: 0 } as Record<string, number>;
  const { v, add, names } = setup(100, live);
  try {
    add("a-1", "a");
    add("a-2", "a");
    add("a-3", "a");
    add("c-1", "c");
    assert.equal(v.evictFor("d"), true);
    assert.deepEqual(names(), ["a-1", "a-2", "a-3"], "c holds 51 clients, a 3: c gives first");
  } finally {
    v.close();
  }
});

test("without stream auth every client is one anonymous identity: the oldest record makes room, as always", () => {
  const { v, add, names } = setup(10_000);
  try {
    for (const n of ["v-1", "v-2", "v-3"]) add(n);
    assert.equal(v.evictFor(undefined), true);
    assert.deepEqual(names(), ["v-2", "v-3"]);
    v.forget("v-3");
    assert.deepEqual(names(), ["v-2"]);
    assert.equal(v.sizeOf(undefined), 1);
  } finally {
    v.close();
  }
});

test("a name that vanishes again under another identity moves to that identity", () => {
  const { v, add } = setup(10);
  try {
    add("x", "a");
    add("x", "b");
    assert.equal(v.sizeOf("a"), 0);
    assert.equal(v.sizeOf("b"), 1);
    assert.equal(v.size, 1);
  } finally {
    v.close();
  }
});

test("maxVanishedPerIdentity 1: each new record replaces the identity's one, which stays countable and evictable", () => {
  const { v, add, names, unlisted } = setup(1, { b: 5 });
  try {
    for (let i = 1; i <= 6; i++) add(`a-${i}`, "a");
    assert.deepEqual(names(), ["a-6"], "one record kept, the newest");
    assert.deepEqual(unlisted, ["a-1", "a-2", "a-3", "a-4", "a-5"]);
    assert.equal(v.sizeOf("a"), 1);
    assert.equal(v.evictFor("a"), true, "its own record makes room for it");
    assert.deepEqual(names(), []);
  } finally {
    v.close();
  }
});
