import assert from "node:assert/strict";
import { test } from "node:test";
import { Gauge, Registry } from "prom-client";
import { curl, proxyGet, startClient, startServer } from "../helpers.ts";

test("curl -x scrapes an embedded client through the server", async () => {
  const s = await startServer();
  const c = await startClient(s.url, "app-1");
  try {
    const r = await curl(["-x", s.url, "http://app-1/metrics"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^test_up_total\{name="app-1"\} 1$/m);
    const unknown = await proxyGet(s.port, "http://nobody:80/metrics");
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.toString(), 'promproxy: no client "nobody" connected\n');
  } finally {
    await c.stop();
    await s.close();
  }
});

test("a server chunk limit under 1 KiB is honoured by the embedded client", async () => {
  const s = await startServer({ maxChunkBytes: 512, creditBytes: 4096 });
  const registry = new Registry();
  const g = new Gauge({ name: "wide", help: "Many series.", labelNames: ["i"], registers: [registry] });
  for (let i = 0; i < 300; i++) g.set({ i: String(i) }, i);
  const c = await startClient(s.url, "small-chunks", { registry });
  try {
    const direct = await registry.metrics();
    assert.ok(direct.length > 8 * 512, "the body spans many chunks and credit grants");
    const r = await proxyGet(s.port, "http://small-chunks/metrics");
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), direct);
  } finally {
    await c.stop();
    await s.close();
  }
});
