import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { createDiscovery, discoveryBytesOf, discoveryDefaults, groupsOf, type DiscoveryEntry } from "../src/server/discovery.ts";
import { joinBody, type AnswerBody } from "../src/server/listen/pieced-body.ts";
import { connectRaw, type RawClient } from "./e2e/raw-client.ts";
import { startServer, type TestServer } from "./helpers.ts";

/** A document's text, its pieces joined (the server never joins them). */
const textOf = (body: AnswerBody) => joinBody(body).toString("utf8");

const entry = (name: string, over: Partial<DiscoveryEntry> = {}): DiscoveryEntry => ({
  name,
  labels: { env: "prod" },
  targets: [{ port: 0, path: "", labels: {} }],
  sessionId: `s-${name}`,
  ...over,
});

test("the http_sd groups: one per target, target labels over client labels, meta labels, __metrics_path__ for other paths", () => {
  const e = entry("fw", {
    labels: { env: "prod", kind: "host" },
    targets: [
      { port: 9100, path: "/", labels: {} },
      { port: 9200, path: "/probe", labels: { kind: "blackbox" } },
      { port: 0, path: "", labels: {} },
    ],
  });
  assert.deepEqual(groupsOf(e), [
    { targets: ["fw:9100"], labels: { env: "prod", kind: "host", __meta_promproxy_client: "fw", __meta_promproxy_session_id: "s-fw", __meta_promproxy_connected: "true" } },
    {
      targets: ["fw:9200"],
      labels: { env: "prod", kind: "blackbox", __meta_promproxy_client: "fw", __meta_promproxy_session_id: "s-fw", __meta_promproxy_connected: "true", __metrics_path__: "/probe" },
    },
    { targets: ["fw"], labels: { env: "prod", kind: "host", __meta_promproxy_client: "fw", __meta_promproxy_session_id: "s-fw", __meta_promproxy_connected: "true" } },
  ]);
});

test("body is the JSON of every listed client's groups, in the order they came; bytes is its UTF-8 size", () => {
  const d = createDiscovery(discoveryDefaults);
  assert.equal(textOf(d.body()), "[]");
  assert.equal(d.bytes, 2);
  assert.equal(d.size, 0);
  const a = entry("a", { labels: { city: "Zürich", emoji: "😀", ctl: "\u0001\n\"" } });
  const b = entry("b", { targets: [{ port: 1, path: "/x", labels: {} }, { port: 2, path: "/", labels: { t: "€" } }] });
  const c = entry("c");
  d.add(a);
  const removeB = d.add(b);
  d.add(c);
  assert.equal(d.size, 3);
  assert.equal(textOf(d.body()), JSON.stringify([...groupsOf(a), ...groupsOf(b), ...groupsOf(c)]));
  assert.equal(d.bytes, Buffer.byteLength(textOf(d.body())));
  assert.ok(d.bytes > textOf(d.body()).length, "multi-byte characters are counted in bytes, not UTF-16 units");
  removeB();
  assert.equal(textOf(d.body()), JSON.stringify([...groupsOf(a), ...groupsOf(c)]));
  assert.equal(d.bytes, Buffer.byteLength(textOf(d.body())));
  assert.equal(d.size, 2);
  assert.deepEqual(JSON.parse(textOf(d.body())), [...groupsOf(a), ...groupsOf(c)]);
});

test("rendered once per change: requests reuse the document; a burst of changes costs one join", () => {
  const d = createDiscovery(discoveryDefaults);
  const removes = Array.from({ length: 100 }, (_, i) => d.add(entry(`c${i}`)));
  assert.equal(d.renders, 0, "nothing joined before anyone asks");
  const first = d.body();
  for (let i = 0; i < 50; i++) assert.equal(d.body(), first, "the same document, not rebuilt");
  assert.equal(d.renders, 1, "50 requests, one join");
  removes[0]?.();
  removes[0]?.(); // idempotent: no change, no join
  d.add(entry("late"));
  assert.equal(d.renders, 1, "changes alone join nothing");
  d.body();
  d.body();
  assert.equal(d.renders, 2, "one join for the two changes");
  removes[0]?.();
  d.body();
  assert.equal(d.renders, 2, "removing twice changed nothing");
  assert.equal(d.size, 100);
});

test("the size bound: a client that fits exactly is listed, one byte over is refused with ResourceExhausted", () => {
  const a = entry("a");
  const b = entry("b", { labels: { name: "é" } });
  const exact = 2 + discoveryBytesOf(a) + 1 + discoveryBytesOf(b);
  const d = createDiscovery({ maxBytes: exact });
  const removeA = d.add(a);
  d.add(b);
  assert.equal(d.bytes, exact);
  assert.equal(Buffer.byteLength(textOf(d.body())), exact);

  const tight = createDiscovery({ maxBytes: exact - 1 });
  tight.add(a);
  assert.throws(
    () => tight.add(b),
    (e: unknown) =>
      e instanceof ConnectError &&
      e.code === Code.ResourceExhausted &&
      e.rawMessage === `/clients would grow to ${exact} bytes with this client (${discoveryBytesOf(b)} bytes for 1 target), past its maximum of ${exact - 1} bytes; try again later`,
  );
  assert.equal(tight.size, 1, "the refused client is not listed");
  assert.equal(tight.bytes, Buffer.byteLength(textOf(tight.body())));

  removeA();
  d.add(entry("c")); // same size as "a": fits again once "a" left
  assert.equal(d.bytes, exact);
});

test("a client with no targets is not listed", () => {
  const d = createDiscovery(discoveryDefaults);
  d.add(entry("none", { targets: [] }))();
  assert.equal(textOf(d.body()), "[]");
  assert.equal(d.size, 0);
});

test("the default bound: 64 MiB, far below V8's longest string", () => {
  assert.equal(discoveryDefaults.maxBytes, 64 * 1024 * 1024);
  assert.ok(discoveryDefaults.maxBytes * 2 < 2 ** 29 - 24, "even as a two-byte string");
});

test("discoveryBytesOf is the exact UTF-8 size of the rendering, for any labels and paths", () => {
  const text = fc.oneof(fc.string({ unit: "binary", maxLength: 12 }), fc.string({ unit: fc.constantFrom("a", "\u0001", "\"", "\\", "é", "😀", "\u2028", "\ud800"), maxLength: 8 }));
  const labels = fc.dictionary(fc.oneof(text, fc.constantFrom("__meta_promproxy_client", "__metrics_path__", "env")), text, { maxKeys: 5 });
  const target = fc.record({ port: fc.nat(65535), path: fc.oneof(fc.constantFrom("", "/"), text), labels });
  fc.assert(
    fc.property(text, labels, fc.array(target, { maxLength: 4 }), text, (name, l, targets, sessionId) => {
      const e: DiscoveryEntry = { name, labels: { ...l }, targets: targets.map((t) => ({ ...t, labels: { ...t.labels } })), sessionId };
      const d = createDiscovery({ maxBytes: Infinity });
      d.add(e);
      const json = JSON.stringify(groupsOf(e));
      assert.equal(discoveryBytesOf(e), Buffer.byteLength(json.slice(1, -1)));
      assert.equal(textOf(d.body()), json);
      assert.equal(d.bytes, Buffer.byteLength(json));
    }),
    { numRuns: 2_000 },
  );
});

describe("/clients through a server", () => {
  const servers: TestServer[] = [];
  const raws: RawClient[] = [];
  after(async () => {
    for (const r of raws) await r.close().catch(() => {});
    for (const s of servers) await s.close();
  });
  const refusal = (p: Promise<unknown>) =>
    p.then(
      () => assert.fail("welcomed"),
      (e: unknown) => ConnectError.from(e),
    );

  test("the issue's attack: 45 clients with 34 KB hellos that would each take 12.6 MB are refused; /clients answers 200", async () => {
    const t = await startServer();
    servers.push(t);
    const labels = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`l${String(i).padStart(2, "0")}`, "\u0001".repeat(1024)]));
    const targets = Array.from({ length: 64 }, (_, i) => ({ port: 9000 + i, path: "/" }));
    for (let i = 0; i < 45; i++) {
      const e = await refusal(connectRaw(t.url, { name: `evil-${i}`, labels, targets }));
      assert.equal(e.code, Code.InvalidArgument, e.rawMessage);
      assert.match(e.rawMessage, /bytes of \/clients/);
    }
    raws.push(await connectRaw(t.url, { name: "app-1", labels: { team: "a" } }));
    const r = await fetch(`${t.url}/clients`);
    const body = await r.text();
    assert.equal(r.status, 200);
    assert.equal(Number(r.headers.get("content-length")), Buffer.byteLength(body));
    assert.deepEqual((JSON.parse(body) as { targets: string[] }[]).map((g) => g.targets), [["app-1"]]);
  });

  test("maxDiscoveryBytes: the client that would grow /clients past it gets ResourceExhausted, and fits once another left", async () => {
    // Session ids are UUIDs: every "c-N" client with the same labels takes the same bytes.
    const piece = discoveryBytesOf({ name: "c-1", labels: { team: "é" }, targets: [{ port: 0, path: "", labels: {} }], sessionId: "00000000-0000-0000-0000-000000000000" });
    const t = await startServer({ maxDiscoveryBytes: 2 + 2 * piece + 1 });
    servers.push(t);
    const c1 = await connectRaw(t.url, { name: "c-1", labels: { team: "é" } });
    raws.push(c1, await connectRaw(t.url, { name: "c-2", labels: { team: "é" } }));
    const full = await fetch(`${t.url}/clients`);
    assert.equal(Number(full.headers.get("content-length")), 2 + 2 * piece + 1);
    assert.equal(Buffer.byteLength(await full.text()), 2 + 2 * piece + 1);
    const e = await refusal(connectRaw(t.url, { name: "c-3", labels: { team: "é" } }));
    assert.equal(e.code, Code.ResourceExhausted, e.rawMessage);
    assert.match(e.rawMessage, new RegExp(`/clients would grow to ${4 + 3 * piece} bytes .* past its maximum of ${2 + 2 * piece + 1} bytes`));
    await c1.close();
    let c3: RawClient | undefined;
    for (let i = 0; i < 100 && !c3; i++) {
      c3 = await connectRaw(t.url, { name: "c-3", labels: { team: "é" } }).catch(async () => {
        await new Promise((r) => setTimeout(r, 20));
        return undefined;
      });
    }
    assert.ok(c3, "c-3 fits once c-1 left");
    raws.push(c3);
    const names = (JSON.parse(await (await fetch(`${t.url}/clients`)).text()) as { targets: string[] }[]).map((g) => g.targets[0]);
    assert.deepEqual(names, ["c-2", "c-3"]);
  });
});
