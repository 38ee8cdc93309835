/**
 * The server's typed events and its status snapshot: what an application (or
 * the status page) learns about clients coming and going and scrapes ending.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ScrapeEvent } from "../../src/server/index.ts";
import { proxyGet, startClient, startServer, waitFor } from "../helpers.ts";
import { connectRaw } from "./raw-client.ts";

test("events: connected, scrape finished (with outcome), refused, vanished, disconnected; a throwing listener is harmless", { timeout: 30_000 }, async () => {
  const s = await startServer({ vanishedRetentionMs: 60_000 });
  const seen: string[] = [];
  const scrapes: ScrapeEvent[] = [];
  s.server
    .on("clientConnected", (c) => seen.push(`connected ${c.name}`))
    .on("clientDisconnected", (c, reason) => seen.push(`disconnected ${c.name}: ${reason}`))
    .on("clientVanished", (v) => seen.push(`vanished ${v.info.name}`))
    .on("clientRefused", (r) => seen.push(`refused ${r.name} ${r.code}`))
    .on("scrapeFinished", (e) => scrapes.push(e))
    .on("scrapeFinished", () => {
      throw new Error("a broken listener");
    });
  try {
    const app = await startClient(s.url, "app-1");
    assert.equal((await proxyGet(s.port, "http://app-1/metrics")).status, 200, "a throwing listener breaks nothing");
    assert.equal((await proxyGet(s.port, "http://nobody/metrics")).status, 404);
    const refused = await connectRaw(s.url, { name: "bad name!" }).catch((e: unknown) => ConnectError.from(e));
    assert.equal((refused as ConnectError).code, Code.InvalidArgument);
    const raw = await connectRaw(s.url, { name: "crasher" });
    raw.abort();
    await raw.ended;
    await app.stop();
    await waitFor("all events", () => seen.length >= 5);
    assert.deepEqual(seen.sort(), [
      "connected app-1",
      "connected crasher",
      "disconnected app-1: stream ended",
      "refused bad name! InvalidArgument",
      "vanished crasher",
    ]);
    assert.deepEqual(scrapes.map((e) => [e.name, e.outcome]), [["app-1", "success"], ["nobody", "unknown_client"]]);
    assert.ok((scrapes[0]?.bytes ?? 0) > 0 && (scrapes[0]?.durationMs ?? -1) >= 0);

    const status = s.server.status();
    assert.equal(status.ready, true);
    assert.deepEqual(status.clients, []);
    assert.deepEqual(status.vanished.map((v) => v.info.name), ["crasher"]);
    assert.equal(status.recentErrors[0]?.outcome, "unknown_client");
    assert.match(status.recentErrors[0]?.message ?? "", /no client "nobody"/);
  } finally {
    await s.close();
  }
});

test("status(): a connected client with its address, identity-free, and its last scrape", { timeout: 30_000 }, async () => {
  const s = await startServer();
  const app = await startClient(s.url, "app-2", { labels: { team: "a" } });
  try {
    await proxyGet(s.port, "http://app-2/metrics");
    const st = s.server.status();
    const c = st.clients[0];
    assert.equal(c?.name, "app-2");
    assert.equal(c?.labels["team"], "a");
    assert.match(c?.address ?? "", /127\.0\.0\.1/);
    assert.equal(c?.lastScrape?.outcome, "success");
    assert.equal(st.limits.maxClients, 10_000);
    assert.equal(st.phase, "serving");
  } finally {
    await app.stop();
    await s.close();
  }
});
