/**
 * A forwarded scrape takes a stalled answer's place, as a direct one does (src/server/flights.ts,
 * src/server/stalled-places.ts): two replicas with `peers` and `replicasPerClient` 1; a stranger's connections ask
 * the big target through the replica that does NOT hold the client and read nothing. Every forwarded scrape got
 * `503 client "app" has N scrapes in flight` for as long as they stalled, nothing logged (outside review 17b): a
 * forwarded scrape never waits, and was refused before a stalled place was tried; and the holder saw every
 * forward come from its peer's address, so it could not tell the stranger from Prometheus. Now the forwarding
 * replica signs the asker's address into the forward (`x-promproxy-for`), and a forwarded scrape from another
 * address takes the place of an answer stalled for `stalledAnswerMs`, logged as the local path logs it.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { Registry } from "prom-client";
import { createServer } from "../../src/server/index.ts";
import { startClient, waitFor, type TestServer } from "../helpers.ts";
import { freePorts, ready } from "./fixtures/ha/cluster.ts";
import { rawHttp } from "./raw-client.ts";
import { appScrape, bigExporter, placeGivenUp, scrapeCounts, startHogs, warningLogger } from "./fixtures/stalled-answers.ts";

const stalledPlaceMs = 2_000;
const bodyBytes = 20 * 1024 * 1024;
const secret = randomBytes(32).toString("hex");

test("a forwarded scrape from another address takes a stalled answer's place at the holder, logged", { timeout: 120_000 }, async () => {
  const exporter = await bigExporter(bodyBytes);
  const { logger, warnings } = warningLogger();
  const ports = await freePorts(2);
  const peers = ports.map((p) => `http://127.0.0.1:${p}`);
  const replicas: TestServer[] = [];
  const registries: Registry[] = [];
  for (const [i, port] of ports.entries()) {
    const registry = new Registry();
    registries.push(registry);
    const server = createServer({ logger, registry, replicaId: `r${i + 1}`, peers, peerSecret: secret, replicasPerClient: 1, vanishedRetentionMs: 0, stalledAnswerMs: stalledPlaceMs, maxScrapesInFlight: 3 });
    await server.listen({ host: "127.0.0.1", port });
    replicas.push({ server, port, url: `http://127.0.0.1:${port}`, close: () => server.close({ graceMs: 500, drainDelayMs: 0 }) });
  }
  for (const r of replicas) await waitFor("replica ready", () => ready(r.url), 15_000, 100);
  const clients = await Promise.all(replicas.map((r) => startClient(r.url, "app", { registry: undefined, targets: [`9100=http://127.0.0.1:${exporter.port}/metrics`], maxScrapesInFlight: 4 }).catch(() => undefined)));
  let hogging: { stop(): void } | undefined;
  try {
    const holderAt = (await waitFor("one replica holds app", () => {
      const i = replicas.findIndex((r) => r.server.clients().some((c) => c.name === "app"));
      return i >= 0 ? i : undefined;
    }, 20_000)) as number;
    const other = replicas[1 - holderAt]!;
    await waitFor("app through the other replica", async () => (await rawHttp(other.port, "GET http://app:9100/metrics HTTP/1.1\r\nHost: app:9100\r\nConnection: close\r\n\r\n", 30_000)).startsWith("HTTP/1.1 200"), 20_000, 200);
    const { cancelled, inFlight } = scrapeCounts(registries[holderAt]!);
    hogging = startHogs(other.port, 6); // through the replica that does not hold app
    await waitFor("the hogs to hold app's places at the holder", async () => (await inFlight()) >= 3, 20_000);
    await new Promise((r) => setTimeout(r, stalledPlaceMs + 2_000)); // their answers stall, for longer than stalledAnswerMs
    assert.equal(await cancelled(), 0);
    const answer = await rawHttp(other.port, appScrape(30), 60_000, "127.0.0.51");
    assert.match(answer.slice(0, 200), /^HTTP\/1.1 200 /, answer.slice(0, 300));
    assert.equal(answer.length - answer.indexOf("\r\n\r\n") - 4, bodyBytes);
    assert.ok((await cancelled()) >= 1, "a stalled hog's scrape was cancelled at the holder");
    assert.ok(warnings.some((w) => placeGivenUp.test(w)), warnings.join("\n"));
  } finally {
    hogging?.stop();
    await Promise.all(clients.map((c) => c?.stop()));
    await Promise.all(replicas.map((r) => r.close()));
    await exporter.close();
  }
});

test("the asker's address in a forward counts only when signed over that forward's nonce", async () => {
  const { createPeerAuth } = await import("../../src/server/peers/peer-auth.ts");
  const { silentLogger } = await import("../../src/server/index.ts");
  const a = createPeerAuth({ secret, replicaId: "a", clockSkewMs: 10_000, maxNonces: 100, logger: silentLogger });
  const stranger = createPeerAuth({ secret: randomBytes(32).toString("hex"), replicaId: "a", clockSkewMs: 10_000, maxNonces: 100, logger: silentLogger });
  const header = a.signFor("00ff00ff", "10.0.0.7");
  assert.equal(a.verifyFor("00ff00ff", header), "10.0.0.7");
  assert.equal(a.verifyFor("00ff00fe", header), undefined, "another forward's nonce");
  assert.equal(a.verifyFor("00ff00ff", header.replace("10.0.0.7", "10.0.0.8")), undefined, "another address");
  assert.equal(a.verifyFor("00ff00ff", stranger.signFor("00ff00ff", "10.0.0.7")), undefined, "another secret");
  for (const bad of [undefined, "", "10.0.0.7", ["10.0.0.7 x"], "x".repeat(300)]) assert.equal(a.verifyFor("00ff00ff", bad), undefined, String(bad));
});
