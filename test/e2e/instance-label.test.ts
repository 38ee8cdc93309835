/**
 * What a real Prometheus shows for a client that /clients lists without a port: `NAME:80` in Prometheus 2 (it adds
 * the scheme's default port to the address, and `instance` is the address), `NAME` in Prometheus 3 (which stopped
 * adding it). The README says both; deploy/prometheus/alerts.yml's promproxy:client_up takes the client's name
 * back out of either, checked here on the live series.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { parse as parseYaml } from "yaml";
import type { PromproxyClient } from "../../src/client/index.ts";
import { startClient, startServer, waitFor, type TestServer } from "../helpers.ts";
import { prometheusBinary, repoRoot, startPrometheus, type RunningPrometheus, type Sample } from "./prometheus.ts";

test("Prometheus shows a target without a port as NAME:80 (2.x) or NAME (3.x); promproxy:client_up names the client either way", { timeout: 120_000 }, async () => {
  const version = /version (\d+)\./.exec(execFileSync(prometheusBinary(), ["--version"], { encoding: "utf8" }))?.[1];
  assert.ok(version, "prometheus --version");
  const expected = Number(version) >= 3 ? "app-1" : "app-1:80";
  const rules = (parseYaml(fs.readFileSync(path.join(repoRoot, "deploy/prometheus/alerts.yml"), "utf8")) as { groups: { rules: { record?: string; expr: string }[] }[] }).groups.flatMap((g) => g.rules);
  const clientUp = rules.find((r) => r.record === "promproxy:client_up")!.expr;

  let s: TestServer | undefined;
  let client: PromproxyClient | undefined;
  let prom: RunningPrometheus | undefined;
  try {
    s = await startServer();
    client = await startClient(s.url, "app-1");
    const sd = (await (await fetch(`${s.url}/clients`)).json()) as { targets: string[] }[];
    assert.deepEqual(sd.flatMap((g) => g.targets), ["app-1"], "/clients lists the name without a port");
    prom = await startPrometheus({ serverUrl: s.url });
    const p = prom;
    const up = await waitFor<Sample[] | false>("up == 1", async () => ((await p.query('up{job="promproxy"} == 1')).length === 1 ? p.query('up{job="promproxy"}') : false), 60_000, 250);
    assert.equal((up as Sample[])[0]!.metric["instance"], expected, `Prometheus ${version}.x`);
    const recorded = await p.query(clientUp);
    assert.equal(recorded[0]?.metric["client"], "app-1", "the recording rule's client label");

    const readme = fs.readFileSync(path.join(repoRoot, "README.md"), "utf8");
    assert.ok(readme.includes("`NAME:80`") && /Prometheus 3[^.]*`NAME`/.test(readme), "the README names both forms");
  } finally {
    await prom?.stop();
    await client?.stop();
    await s?.close();
  }
});
