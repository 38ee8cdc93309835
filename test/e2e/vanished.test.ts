/**
 * A vanished client stays visible: a client whose stream breaks (rather than
 * ending cleanly) stays in /clients marked disconnected for
 * vanishedRetentionMs, and scraping it answers 503 at once; a client that
 * says goodbye leaves at once. Also the replica's welcome and readiness warm-up.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { proxyGet, startClient, startServer, waitFor } from "../helpers.ts";
import { connectRaw } from "./raw-client.ts";

async function groups(url: string) {
  return (await (await fetch(`${url}/clients`)).json()) as { targets: string[]; labels: Record<string, string> }[];
}

test("a client whose stream breaks stays listed as disconnected for the retention, answered 503; then it leaves", { timeout: 30_000 }, async () => {
  const s = await startServer({ vanishedRetentionMs: 1_500 });
  try {
    const raw = await connectRaw(s.url, { name: "app-1", labels: { team: "a" } });
    raw.abort(); // RST_STREAM and the connection dropped: no goodbye
    await raw.ended;
    await waitFor("listed as vanished", async () => (await groups(s.url))[0]?.labels["__meta_promproxy_connected"] === "false");
    const [g] = await groups(s.url);
    assert.deepEqual(g?.targets, ["app-1"]);
    assert.equal(g?.labels["team"], "a", "with the labels it announced");
    const r = await proxyGet(s.port, "http://app-1/metrics");
    assert.equal(r.status, 503);
    assert.match(r.body.toString(), /^promproxy: client "app-1" disconnected \d+s ago: .+\n$/);
    await waitFor("forgotten after the retention", async () => (await groups(s.url)).length === 0, 10_000);
    assert.equal((await proxyGet(s.port, "http://app-1/metrics")).status, 404);
  } finally {
    await s.close();
  }
});

test("a client that ends its stream cleanly leaves /clients at once; one that comes back is connected again", { timeout: 30_000 }, async () => {
  const s = await startServer({ vanishedRetentionMs: 60_000 });
  try {
    const a = await connectRaw(s.url, { name: "bye" });
    await a.close(); // END_STREAM: a goodbye
    await waitFor("gone", async () => (await groups(s.url)).length === 0);
    assert.equal((await proxyGet(s.port, "http://bye/metrics")).status, 404);

    const b = await connectRaw(s.url, { name: "back" });
    b.abort();
    await b.ended;
    await waitFor("vanished", async () => (await groups(s.url))[0]?.labels["__meta_promproxy_connected"] === "false");
    const again = await connectRaw(s.url, { name: "back" });
    const listed = await groups(s.url);
    assert.equal(listed.length, 1, JSON.stringify(listed));
    assert.equal(listed[0]?.labels["__meta_promproxy_connected"], "true");
    again.abort();
    await again.ended;
  } finally {
    await s.close();
  }
});

test("vanished clients give way to live ones at maxClients", { timeout: 30_000 }, async () => {
  const s = await startServer({ vanishedRetentionMs: 60_000, maxClients: 2 });
  try {
    for (const name of ["v-1", "v-2"]) {
      const r = await connectRaw(s.url, { name });
      r.abort();
      await r.ended;
    }
    await waitFor("two vanished", async () => (await groups(s.url)).length === 2);
    const live = await connectRaw(s.url, { name: "live" });
    const names = (await groups(s.url)).map((g) => `${g.targets[0]}=${g.labels["__meta_promproxy_connected"]}`).sort();
    assert.deepEqual(names, ["live=true", "v-2=false"], "the oldest vanished client made room");
    live.abort();
    await live.ended;
  } finally {
    await s.close();
  }
});

test("the welcome names the replica and the replica count; /readyz waits for the warm-up", { timeout: 30_000 }, async () => {
  const s = await startServer({ replicaId: "replica-a", replicaCount: 3, warmupMs: 1_000, warmupSettleMs: 500 });
  try {
    const ready = async () => (await fetch(`${s.url}/readyz`)).status;
    const first = await fetch(`${s.url}/readyz`);
    assert.equal(first.status, 503, "not ready at start");
    assert.equal(await first.text(), "promproxy: not ready: warming up: clients are still finding this replica\n");
    const raw = await connectRaw(s.url, { name: "app-1" });
    assert.equal(raw.welcome.replicaId, "replica-a");
    assert.equal(raw.welcome.replicaCount, 3);
    await waitFor("ready after the warm-up", async () => (await ready()) === 200, 10_000);
    assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
    raw.abort();
    await raw.ended;
  } finally {
    await s.close();
  }
});

test("features: a client that names \"head\" gets HEAD orders; others get GET and the body is dropped", { timeout: 30_000 }, async () => {
  const s = await startServer();
  try {
    const modern = await connectRaw(s.url, { name: "modern", features: ["head", "future-thing"] });
    assert.deepEqual(modern.welcome.features, ["head"], "only features both sides know");
    const old = await connectRaw(s.url, { name: "old" });
    assert.deepEqual(old.welcome.features, []);
    for (const [raw, method] of [[modern, "HEAD"], [old, ""]] as const) {
      const res = proxyGet(s.port, `http://${raw === modern ? "modern" : "old"}/metrics`, {}, "HEAD");
      const order = await raw.next("order");
      assert.equal(order.method, method);
      raw.head(order.scrapeId, 200, { "content-type": "text/plain; version=0.0.4", "content-length": "5" });
      if (method === "") raw.chunk(order.scrapeId, "up 1\n");
      else raw.send({ frame: { case: "end", value: { scrapeId: order.scrapeId } } });
      if (method === "") raw.end(order.scrapeId);
      const r = await res;
      assert.equal(r.status, 200);
      assert.equal(r.body.length, 0);
    }
    modern.abort();
    old.abort();
    await Promise.all([modern.ended, old.ended]);
  } finally {
    await s.close();
  }
});

test("the Node client says goodbye on stop(): delisted at once; killed, it is listed as vanished", { timeout: 30_000 }, async () => {
  const s = await startServer({ vanishedRetentionMs: 60_000 });
  try {
    const polite = await startClient(s.url, "polite");
    await polite.stop();
    // Had stop() waited out its goodbye timeout, it would have cut the stream (a reset): listed as vanished.
    assert.deepEqual(await groups(s.url), [], "gone at once, not vanished: the server ended the stream after the goodbye");
    assert.equal((await proxyGet(s.port, "http://polite/metrics")).status, 404);
  } finally {
    await s.close();
  }
});
