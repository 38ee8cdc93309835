/**
 * A real Prometheus scrapes embedded clients through the server: proxy_url for
 * the scrapes, http_sd_configs on /clients for discovery.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { PromproxyClient } from "../../src/client/index.ts";
import { startClient, startServer, waitFor, type TestServer } from "../helpers.ts";
import { startPrometheus, type RunningPrometheus, type Sample } from "./prometheus.ts";

const clients = {
  "app-1": { team: "alpha", env: "e2e" },
  "app-2": { team: "beta", env: "e2e" },
};

function byInstanceName(samples: Sample[]): Map<string, Sample> {
  return new Map(samples.map((s) => [String(s.metric["instance"]).replace(/:\d+$/, ""), s]));
}

test("Prometheus scrapes two embedded clients through proxy_url, discovered by http_sd, and drops one that stops", { timeout: 180_000 }, async (t) => {
  let s: TestServer | undefined;
  let prom: RunningPrometheus | undefined;
  const started: PromproxyClient[] = [];
  try {
    s = await startServer();
    const server = s;
    for (const [name, labels] of Object.entries(clients)) started.push(await startClient(server.url, name, { labels }));
    const [app1, app2] = started as [PromproxyClient, PromproxyClient];
    prom = await startPrometheus({ serverUrl: server.url });
    const p = prom;
    const job = p.jobName;
    const why = () => `\nPrometheus log:\n${p.log()}`;

    await t.test("both targets are discovered and up == 1", async () => {
      const up = await waitFor<Sample[] | false>(
        "up == 1 for both clients",
        async () => {
          const r = await p.query(`up{job="${job}"} == 1`);
          return r.length === 2 ? r : false;
        },
        60_000,
        250,
      ).catch(async (e: Error) => {
        throw new Error(`${e.message}\ntargets: ${JSON.stringify(await p.targets())}${why()}`);
      });
      const got = byInstanceName(up || []);
      assert.deepEqual([...got.keys()].sort(), ["app-1", "app-2"]);
      for (const [name, labels] of Object.entries(clients)) {
        const m = got.get(name)?.metric;
        assert.equal(m?.["team"], labels.team, `up{instance=${name}} carries the client's labels: ${JSON.stringify(m)}`);
        assert.equal(m?.["env"], labels.env);
        assert.equal(m?.["__meta_promproxy_client"], undefined, "meta labels are dropped after relabelling");
      }
      const targets = (await p.targets()).filter((x) => x.scrapePool === job);
      assert.equal(targets.length, 2, JSON.stringify(targets));
      for (const x of targets) {
        assert.match(x.scrapeUrl, /^http:\/\/app-[12](:80)?\/metrics$/);
        assert.equal(x.discoveredLabels["__meta_promproxy_client"], x.scrapeUrl.replace(/^http:\/\/([^:/]+).*$/, "$1"));
      }
    });

    await t.test("the clients' own metric is queryable, with the labels each client announced", async () => {
      const samples = await waitFor<Sample[] | false>(
        "test_up_total from both clients",
        async () => {
          const r = await p.query(`test_up_total{job="${job}"}`);
          return r.length === 2 ? r : false;
        },
        30_000,
        250,
      );
      for (const smp of samples || []) {
        const name = smp.metric["name"] as keyof typeof clients;
        assert.ok(name in clients, JSON.stringify(smp.metric));
        assert.equal(smp.value, 1);
        assert.equal(smp.metric["team"], clients[name].team, JSON.stringify(smp.metric));
        assert.equal(smp.metric["env"], "e2e");
        assert.match(String(smp.metric["instance"]), new RegExp(`^${name}(:80)?$`));
      }
    });

    await t.test("a client that stops leaves /clients at once and its target goes away in Prometheus", async () => {
      await app2.stop();
      // "At once": no waiting for a timeout or heartbeat; the bound only absorbs the stream's teardown.
      await waitFor(
        "app-2 to leave /clients",
        async () => {
          const groups = (await (await fetch(`${server.url}/clients`)).json()) as { targets: string[] }[];
          return !groups.some((g) => g.targets.some((x) => x.startsWith("app-2")));
        },
        1_000,
        10,
      );
      assert.deepEqual(server.server.clients().map((c) => c.name), ["app-1"]);
      await waitFor(
        "app-2's target to leave Prometheus",
        async () => {
          const targets = (await p.targets()).filter((x) => x.scrapePool === job);
          const up = await p.query(`up{job="${job}",team="beta"} == 1`);
          return targets.length === 1 && targets[0]?.labels["team"] === "alpha" && up.length === 0;
        },
        60_000,
        250,
      ).catch((e: Error) => {
        throw new Error(`${e.message}${why()}`);
      });
      // The other client is untouched.
      await waitFor("app-1 still up", async () => (await p.query(`up{job="${job}",team="alpha"} == 1`)).length === 1, 30_000, 250);
      assert.equal(app1.state, "connected");
    });
  } finally {
    await prom?.stop();
    for (const c of started) await c.stop();
    await s?.close();
  }
});
