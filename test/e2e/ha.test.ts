/**
 * Several replicas: every client holds a stream to every replica,
 * so that Prometheus may scrape through any of them.
 *
 * Three `promproxy server` processes behind one haproxy (the configuration
 * docs/ha.md documents: a TCP frontend for the clients' streams checked on
 * /healthz, a TCP frontend for Prometheus checked on /readyz), five clients
 * that know only the load balancer's address (four embedded in this process,
 * one forwarder process), and a real Prometheus scraping through the load
 * balancer every second: a rolling restart loses no scrape, a replica killed
 * with SIGKILL costs each target at most one, a client killed with SIGKILL
 * turns `up == 0` and leaves after the retention. And a DNS name with several
 * addresses: a stream per address, following the addresses as they change.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { createClient, silentLogger, type PromproxyClient } from "../../src/client/index.ts";
import { createServer, type PromproxyServer } from "../../src/server/index.ts";
import { testRegistry, waitFor } from "../helpers.ts";
import { freePorts, listed, ready, startHaproxy, startReplica, stopReplica, type Haproxy, type Replica } from "./fixtures/ha/cluster.ts";
import { freePort, runCli, startPrometheus, type CliProcess, type RunningPrometheus } from "./prometheus.ts";

const replicaFlags = ["--replica-count=3", "--warmup=1s", "--warmup-settle=3s", "--drain-delay=2s", "--shutdown-grace=5s", "--vanished-retention=5s"];
const embeddedNames = ["app-1", "app-2", "app-3", "app-4"];
const forwarderName = "fwd-5";
const allNames = [...embeddedNames, forwarderName];

/** Seconds, rounded to 0.1, since `t` (performance.now()). */
const since = (t: number) => Math.round((performance.now() - t) / 100) / 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Samples of `up` per target over the last `seconds`, through a range selector (a matrix). */
async function upSamples(prom: RunningPrometheus, seconds: number): Promise<Map<string, [number, number][]>> {
  const r = await fetch(`${prom.url}/api/v1/query?${new URLSearchParams({ query: `up{job="${prom.jobName}"}[${seconds}s]` })}`, { signal: AbortSignal.timeout(10_000) });
  const body = (await r.json()) as { status: string; data: { resultType: string; result: { metric: Record<string, string>; values: [number, string][] }[] } };
  assert.equal(body.status, "success");
  return new Map(body.data.result.map((s) => [s.metric["instance"] as string, s.values.map(([t, v]) => [t, Number(v)] as [number, number])]));
}

describe("HA: three replicas behind haproxy, five clients, a real Prometheus", { timeout: 240_000 }, () => {
  const replicas: Replica[] = [];
  let lb: Haproxy;
  let prom: RunningPrometheus;
  let exporter: http.Server;
  let forwarder: CliProcess;
  const clients: PromproxyClient[] = [];
  /** Replica ids each embedded client holds a stream to now. */
  const held = new Map<string, Set<string>>();
  const figures: string[] = [];
  const streamsOnEveryReplica = async () => {
    for (const r of replicas) {
      const names = await listed(r.url);
      if (!allNames.every((n) => names.get(n) === true)) return false;
    }
    return true;
  };

  before(async () => {
    const ports = await freePorts(3);
    for (const [i, port] of ports.entries()) replicas.push(await startReplica(`r${i + 1}-a`, port, replicaFlags));
    lb = await startHaproxy(ports);
    exporter = http.createServer((_, res) => res.end("fwd_up 1\n"));
    await new Promise<void>((resolve) => exporter.listen(0, "127.0.0.1", resolve));
    const t0 = performance.now();
    for (const name of embeddedNames) {
      const replicasHeld = new Set<string>();
      held.set(name, replicasHeld);
      const c = createClient({
        name,
        serverUrl: lb.clientsUrl,
        registry: testRegistry(name),
        logger: silentLogger,
        onConnected: (i) => replicasHeld.add(i.replicaId),
        onDisconnected: (_, i) => replicasHeld.delete(i.replicaId),
      });
      clients.push(c);
      await c.start({ timeoutMs: 20_000 });
    }
    forwarder = runCli(["client", `--name=${forwarderName}`, `--server=${lb.clientsUrl}`, `--target=http://127.0.0.1:${(exporter.address() as AddressInfo).port}/metrics`, "--log-level=warn"]);
    await waitFor("every replica to hold every client", streamsOnEveryReplica, 30_000, 100);
    figures.push(`start: every replica held all 5 clients ${since(t0)} s after the first client started`);
    await waitFor("every replica to be ready", async () => (await Promise.all(replicas.map((r) => ready(r.url)))).every(Boolean), 30_000, 100);
    prom = await startPrometheus({ serverUrl: lb.prometheusUrl, scrapeIntervalS: 1, scrapeTimeoutS: 1, refreshIntervalS: 1 });
    await waitFor("Prometheus to scrape all five targets", async () => (await prom.query(`count(up{job="promproxy"} == 1)`))[0]?.value === 5, 30_000, 250);
  });

  after(async () => {
    await prom?.stop();
    await Promise.all(clients.map((c) => c.stop()));
    await forwarder?.kill();
    await Promise.all(replicas.map((r) => stopReplica(r)));
    await lb?.stop();
    await new Promise((r) => exporter?.close(r));
    if (figures.length) console.log(`HA figures:\n  ${figures.join("\n  ")}`);
  });

  test("clients that know only the load balancer hold a stream to every replica", async () => {
    for (const r of replicas) assert.deepEqual([...(await listed(r.url)).keys()].sort(), allNames, r.id);
    for (const [name, ids] of held) assert.deepEqual([...ids].sort(), replicas.map((r) => r.id).sort(), name);
  });

  test("a rolling restart loses no scrape and no target", async () => {
    const t0 = performance.now();
    let targetsSeen = Infinity;
    const errors = new Set<string>();
    const events: string[] = [];
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const active = (await prom.targets()).filter((t) => t.scrapePool === "promproxy");
        targetsSeen = Math.min(targetsSeen, active.length);
        for (const t of active) if (t.lastError) errors.add(`${t.labels["instance"]} at ${since(t0)} s: ${t.lastError}`);
        await sleep(250);
      }
    })();
    for (const [i, old] of [...replicas].entries()) {
      events.push(`SIGTERM ${old.id} at ${since(t0)} s`);
      await stopReplica(old);
      events.push(`${old.id} exited at ${since(t0)} s`);
      const next = await startReplica(`r${i + 1}-b`, old.port, replicaFlags);
      replicas[i] = next;
      // Watch it join its clients and turn ready: when it turns ready, it must hold every client.
      const joins = new Map<string, number>();
      let atReady: string[] | undefined;
      let readyAfter = 0;
      await waitFor(`${next.id} to hold every client and be ready`, async () => {
        const [names, isReady] = await Promise.all([listed(next.url), ready(next.url)]);
        for (const [n, up] of names) if (up && !joins.has(n)) joins.set(n, since(next.listeningAt));
        if (isReady && !atReady) {
          atReady = [...names].filter(([, up]) => up).map(([n]) => n);
          readyAfter = since(next.listeningAt);
        }
        return joins.size === allNames.length && atReady;
      }, 30_000, 50);
      figures.push(
        `rolling restart: ${next.id} met its clients ${[...joins.values()].join(", ")} s after it listened ` +
          `(all ${Math.max(...joins.values())} s), ready after ${readyAfter} s holding ${atReady?.length}`,
      );
      assert.deepEqual(atReady?.sort(), allNames, `${next.id} turned ready holding only these clients`);
    }
    await sleep(2_500);
    watching = false;
    await watch;
    const window = Math.ceil((performance.now() - t0) / 1000);
    const samples = await upSamples(prom, window);
    const lines = [...samples].map(([instance, s]) => `${instance}: ${s.length} samples, ${s.filter(([, v]) => v !== 1).length} not up`);
    figures.push(`rolling restart: ${window} s window, ${lines.join("; ")}; fewest targets seen ${targetsSeen}`);
    if (errors.size) figures.push(`rolling restart: scrape errors ${[...errors].join("; ")}; events ${events.join(", ")}`);
    assert.equal(samples.size, allNames.length, lines.join("\n"));
    for (const [instance, s] of samples) {
      assert.deepEqual(s.filter(([, v]) => v !== 1), [], `${instance} lost scrapes`);
      assert.ok(s.length >= window - 2, `${instance}: ${s.length} samples in ${window} s: it left discovery for a while`);
    }
    assert.equal(targetsSeen, allNames.length, "a target left discovery");
  });

  test("kill -9 of a replica costs each target at most one scrape", async () => {
    const victim = replicas[1] as Replica;
    const t0 = performance.now();
    const killedAt = Date.now() / 1000;
    await victim.proc.kill();
    await sleep(8_000);
    const window = Math.ceil((performance.now() - t0) / 1000) + 2;
    const samples = await upSamples(prom, window);
    const lines: string[] = [];
    for (const [instance, s] of samples) {
      const failed = s.filter(([, v]) => v !== 1);
      const lastFailed = failed.at(-1)?.[0];
      lines.push(`${instance}: ${failed.length} lost${lastFailed ? `, served again ${Math.max(0, Math.round((lastFailed - killedAt + 1) * 10) / 10)} s after the kill` : ""}`);
      assert.ok(failed.length <= 1, `${instance} lost ${failed.length} scrapes`);
      assert.ok(lastFailed === undefined || lastFailed - killedAt < 5, `${instance} was not served again within 5 s`);
      assert.ok(s.at(-1)?.[1] === 1);
    }
    figures.push(`kill -9 of ${victim.id}: ${lines.join("; ")}`);
    assert.equal(samples.size, allNames.length);

    const next = await startReplica("r2-c", victim.port, replicaFlags);
    replicas[1] = next;
    await waitFor(`${next.id} to hold every client`, async () => (await listed(next.url)).size === allNames.length, 30_000, 50);
    figures.push(`kill -9: the replacement ${next.id} held all 5 clients ${since(next.listeningAt)} s after it listened`);
    await waitFor(`${next.id} to be ready`, () => ready(next.url), 30_000, 50);
  });

  test("a client killed with SIGKILL turns up == 0 within two scrapes, and leaves after the retention", async () => {
    const killedAt = Date.now() / 1000;
    const t0 = performance.now();
    await forwarder.kill();
    const instance = await waitFor("up == 0 for the killed client", async () => {
      const s = await prom.query(`up{job="promproxy"} == 0`);
      return s[0]?.metric["instance"];
    }, 10_000, 100);
    assert.match(instance, new RegExp(`^${forwarderName}`));
    const first0 = (await upSamples(prom, 10)).get(instance)?.find(([t, v]) => v === 0 && t >= killedAt)?.[0] as number;
    figures.push(`SIGKILL of a client: first up == 0 sample ${Math.round((first0 - killedAt) * 10) / 10} s after the kill`);
    assert.ok(first0 - killedAt <= 2 + 1, `the first up == 0 came ${first0 - killedAt} s after the kill`);
    for (const r of replicas) assert.equal((await listed(r.url)).get(forwarderName), false, `${r.id} lists it as disconnected`);
    await waitFor("the killed client to leave every replica's /clients", async () => {
      for (const r of replicas) if ((await listed(r.url)).has(forwarderName)) return false;
      return true;
    }, 20_000, 100);
    figures.push(`SIGKILL of a client: gone from every /clients ${since(t0)} s after the kill (retention 5 s)`);
    assert.ok(since(t0) >= 4.5, "it stayed for the retention");
  });
});

describe("HA: a DNS name with several addresses", { timeout: 60_000 }, () => {
  test("a stream per address; a removed address is dropped cleanly, an added one dialled", async () => {
    const addresses = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    const servers: PromproxyServer[] = [];
    let port = 0;
    for (let attempt = 0; servers.length < addresses.length && attempt < 5; attempt++) {
      await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 0, drainDelayMs: 0 })));
      port = await freePort();
      try {
        for (const [i, host] of addresses.entries()) {
          const s = createServer({ logger: silentLogger, replicaId: `dns-${i + 1}` });
          servers.push(s);
          await s.listen({ host, port });
        }
      } catch {
        // that port was taken on one of the addresses: try another
      }
    }
    const resolved = [...addresses];
    const lookups: string[] = [];
    const servedBy = new Set<string>();
    const client = createClient({
      name: "dns-app",
      serverUrl: `http://promproxy.test:${port}`,
      registry: testRegistry("dns-app"),
      logger: silentLogger,
      resolve: async (host) => {
        lookups.push(host);
        return [...resolved];
      },
      resolveIntervalMs: 200,
      onConnected: (i) => servedBy.add(`${i.replicaId} ${i.server}`),
    });
    try {
      await client.start({ timeoutMs: 10_000 });
      const holds = (s: PromproxyServer) => s.clients().some((c) => c.name === "dns-app");
      await waitFor("a stream to every address", () => servers.every(holds) && servedBy.size === addresses.length);
      assert.equal(lookups[0], "promproxy.test");
      assert.deepEqual([...servedBy].sort(), addresses.map((a, i) => `dns-${i + 1} promproxy.test:${port} (${a})`));

      resolved.pop(); // 127.0.0.4 leaves the name
      await waitFor("the stream to the removed address to end", () => !holds(servers[2] as PromproxyServer));
      assert.equal((await listed(`http://127.0.0.4:${port}`)).size, 0, "it said goodbye: not listed as vanished");
      assert.ok(holds(servers[0] as PromproxyServer) && holds(servers[1] as PromproxyServer), "the others stay");

      resolved.push("127.0.0.4"); // and comes back
      await waitFor("the added address to be dialled", () => holds(servers[2] as PromproxyServer));
    } finally {
      await client.stop();
      await Promise.all(servers.map((s) => s.close({ graceMs: 0, drainDelayMs: 0 })));
    }
  });
});
