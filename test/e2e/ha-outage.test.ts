/**
 * A replica lost for a while (a rescheduled pod): killed with SIGKILL, its
 * replacement (a new process, a new replica id) listening again after an
 * outage. Every client must hold it within 10 s of it listening (the search
 * rule, PROTOCOL.md "Several replicas"), and it must not turn ready before
 * it holds them: not one failed scrape once it listens.
 *
 * Three `promproxy server` processes with `--replica-count 3` and the CLI's
 * default warm-up, behind haproxy: TCP on the clients' side, L7 (mode http,
 * each request balanced on its own, as an ingress does) on Prometheus' side,
 * where a ready replica that does not hold a client fails its scrapes at once.
 * Five embedded clients know only the balancer; a real Prometheus scrapes
 * every second. Failed scrapes are counted twice: Prometheus' `up` samples and
 * the replacement's own `promproxy_scrapes_total` by outcome.
 *
 * The CI case is a 20 s outage. Longer ones are a manual command:
 *   PROMPROXY_HA_OUTAGES=20,60 npx node --test test/e2e/ha-outage.test.ts
 * and PROMPROXY_HA_OUTAGES_WITH_PEERS=1 runs the replicas with `--peers` (the replica set, forwarding).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { createClient, silentLogger, type PromproxyClient } from "../../src/client/index.ts";
import { testRegistry, waitFor } from "../helpers.ts";
import { freePorts, listed, ready, startHaproxy, startReplica, stopReplica, type Haproxy, type Replica } from "./fixtures/ha/cluster.ts";
import { startPrometheus, type RunningPrometheus } from "./prometheus.ts";

let replicaFlags = ["--replica-count=3", "--drain-delay=1s", "--shutdown-grace=3s"];
const withPeers = process.env["PROMPROXY_HA_OUTAGES_WITH_PEERS"] === "1";
let secretDir: string | undefined;
const names = ["app-1", "app-2", "app-3", "app-4", "app-5"];
/** The issue's bound is 10 s; the assertion leaves room for a loaded 2-core machine. */
const heldWithinS = 15;
const outages = (process.env["PROMPROXY_HA_OUTAGES"] ?? "20")
  .split(",")
  .map(Number)
  .filter((n) => Number.isFinite(n) && n >= 0 && n <= 600);

const since = (t: number) => Math.round((performance.now() - t) / 100) / 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `up` samples per target over the last `seconds`. */
async function upSamples(prom: RunningPrometheus, seconds: number): Promise<Map<string, [number, number][]>> {
  const r = await fetch(`${prom.url}/api/v1/query?${new URLSearchParams({ query: `up{job="${prom.jobName}"}[${seconds}s]` })}`, { signal: AbortSignal.timeout(10_000) });
  const body = (await r.json()) as { status: string; data: { result: { metric: Record<string, string>; values: [number, string][] }[] } };
  assert.equal(body.status, "success");
  return new Map(body.data.result.map((s) => [s.metric["instance"] as string, s.values.map(([t, v]) => [t, Number(v)] as [number, number])]));
}

/** The clients a replica holds itself, all connected. */
async function heldHere(url: string): Promise<Map<string, boolean>> {
  const s = (await (await fetch(`${url}/status.json`, { signal: AbortSignal.timeout(5_000) })).json()) as { clients: { name: string }[] };
  return new Map(s.clients.map((c) => [c.name, true]));
}

/** A replica's `promproxy_scrapes_total` by outcome. */
async function scrapeOutcomes(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^promproxy_scrapes_total\{outcome="([^"]+)"\} (\S+)$/gm)) out.set(m[1] as string, Number(m[2]));
  return out;
}

describe("HA: a replica replaced after an outage, L7 balancer on Prometheus' side", { timeout: 120_000 + outages.reduce((a, b) => a + b, 0) * 2_000 }, () => {
  const replicas: Replica[] = [];
  let lb: Haproxy;
  let prom: RunningPrometheus;
  const clients: PromproxyClient[] = [];
  const figures: string[] = [];

  before(async () => {
    const ports = await freePorts(3);
    if (withPeers) {
      secretDir = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-ha-outage-"));
      const secretFile = path.join(secretDir, "peer-secret");
      fs.writeFileSync(secretFile, `${randomBytes(32).toString("hex")}\n`);
      replicaFlags = [...replicaFlags, `--peers=${ports.map((p) => `http://127.0.0.1:${p}`).join(",")}`, `--peer-secret-file=${secretFile}`];
    }
    for (const [i, port] of ports.entries()) replicas.push(await startReplica(`r${i + 1}-a`, port, replicaFlags));
    lb = await startHaproxy(ports, { prometheusMode: "http" });
    for (const name of names) {
      const c = createClient({ name, serverUrl: lb.clientsUrl, registry: testRegistry(name), logger: silentLogger });
      clients.push(c);
      await c.start({ timeoutMs: 20_000 });
    }
    await waitFor("every replica to hold every client", async () => {
      for (const r of replicas) if ((await listed(r.url)).size !== names.length) return false;
      return true;
    }, 30_000, 100);
    await waitFor("every replica to be ready", async () => (await Promise.all(replicas.map((r) => ready(r.url)))).every(Boolean), 60_000, 100);
    prom = await startPrometheus({ serverUrl: lb.prometheusUrl, scrapeIntervalS: 1, scrapeTimeoutS: 1, refreshIntervalS: 1 });
    await waitFor("Prometheus to scrape all five targets", async () => (await prom.query(`count(up{job="promproxy"} == 1)`))[0]?.value === 5, 30_000, 250);
  });

  after(async () => {
    await prom?.stop();
    await Promise.all(clients.map((c) => c.stop()));
    await Promise.all(replicas.map((r) => stopReplica(r)));
    await lb?.stop();
    if (secretDir) fs.rmSync(secretDir, { recursive: true, force: true });
    if (figures.length) console.log(`HA outage figures${withPeers ? " (with --peers)" : ""}:\n  ${figures.join("\n  ")}`);
  });

  for (const [n, outageS] of outages.entries()) {
    test(`kill -9, replacement after ${outageS} s: held by every client within ${heldWithinS} s of listening, 0 failed scrapes since`, async () => {
      const i = n % replicas.length;
      const victim = replicas[i] as Replica;
      const t0 = performance.now();
      await victim.proc.kill();
      await sleep(outageS * 1_000);
      const next = await startReplica(`r${i + 1}-after-${outageS}s-${n}`, victim.port, replicaFlags);
      replicas[i] = next;
      const joins = new Map<string, number>();
      let readyAfter = -1;
      let heldAtReady: string[] = [];
      await waitFor(`${next.id} to hold every client and be ready`, async () => {
        // With peers /clients lists the whole fleet everywhere: what the replica holds itself is in /status.json.
        const [held, isReady] = await Promise.all([withPeers ? heldHere(next.url) : listed(next.url), ready(next.url)]);
        for (const [name, up] of held) if (up && !joins.has(name)) joins.set(name, since(next.listeningAt));
        if (isReady && readyAfter < 0) {
          readyAfter = since(next.listeningAt);
          heldAtReady = [...held].filter(([, up]) => up).map(([name]) => name);
        }
        return joins.size === names.length && readyAfter >= 0;
      }, 120_000, 100);
      await sleep(8_000); // scrapes through the replacement, now ready
      const window = Math.ceil((performance.now() - t0) / 1000) + 2;
      const samples = await upSamples(prom, window);
      const outcomes = await scrapeOutcomes(next.url);
      const served = [...outcomes.values()].reduce((a, b) => a + b, 0);
      const failedThere = served - (outcomes.get("success") ?? 0);
      const lines: string[] = [];
      let failedSince = 0;
      for (const [instance, s] of samples) {
        const failed = s.filter(([, v]) => v !== 1);
        const after = failed.filter(([t]) => t >= next.listeningAtS).length;
        failedSince += after;
        lines.push(`${instance} ${failed.length - after}+${after}`);
      }
      figures.push(
        `outage ${outageS} s: ${next.id} held ${[...joins.values()].sort((a, b) => a - b).join(", ")} s after it listened; ` +
          `ready after ${readyAfter} s holding ${heldAtReady.length}; failed scrapes (at the kill + since it listened) ${lines.join(", ")}; ` +
          `it served ${served} scrapes, ${failedThere} failed (${[...outcomes].map(([k, v]) => `${k} ${v}`).join(", ")})`,
      );
      assert.equal(samples.size, names.length);
      // With peers a replica is ready once it heard from every peer, holding its clients or not (it forwards).
      if (!withPeers) assert.deepEqual(heldAtReady.sort(), names, `${next.id} turned ready holding only these clients`);
      for (const [name, s] of joins) assert.ok(s <= heldWithinS, `${name} was held ${s} s after ${next.id} listened`);
      assert.equal(failedSince, 0, `failed scrapes once ${next.id} listened: ${lines.join(", ")}`);
      assert.equal(failedThere, 0, `scrapes that failed on ${next.id}`);
      assert.ok(served > 0, `${next.id} served no scrape: the L7 balancer never sent it one`);
    });
  }
});
