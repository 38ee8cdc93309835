/**
 * The standalone forwarder end to end: Debian's node_exporter and small Node
 * exporters behind one `promproxy client` process, scraped by a real
 * Prometheus through the server (proxy_url + http_sd_configs).
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { test } from "node:test";
import { gunzipSync, gzipSync } from "node:zlib";
import { proxyGet, startServer, waitFor, type TestServer } from "../helpers.ts";
import { freePort, runCli, startPrometheus, stopChild, type ActiveTarget, type CliProcess, type RunningPrometheus, type Sample } from "./prometheus.ts";

const nodeExporterHint = "install it with `apt-get install -y prometheus-node-exporter` (Debian/Ubuntu; `bash scripts/install-test-deps.sh` does this)";

/** Debian's node_exporter: $NODE_EXPORTER_BIN, or prometheus-node-exporter / node_exporter on the PATH. Throws how to install it. */
function nodeExporterBinary(): string {
  const explicit = process.env["NODE_EXPORTER_BIN"];
  const candidates = explicit
    ? [explicit]
    : (process.env["PATH"] ?? "").split(path.delimiter).filter(Boolean).flatMap((d) => [path.join(d, "prometheus-node-exporter"), path.join(d, "node_exporter")]);
  if (!explicit) candidates.push("/usr/bin/prometheus-node-exporter");
  for (const c of candidates) {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      if (fs.statSync(c).isFile()) return c;
    } catch {
      // next
    }
  }
  throw new Error(`the forwarder end-to-end test needs node_exporter, and ${explicit ? `NODE_EXPORTER_BIN=${explicit} is not executable` : "none is installed"}: ${nodeExporterHint}`);
}

/** node_exporter on a loopback port with a few cheap collectors; resolves once it serves /metrics. */
async function startNodeExporter(): Promise<{ port: number; child: ChildProcess; log(): string }> {
  const bin = nodeExporterBinary();
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn(
      bin,
      [`--web.listen-address=127.0.0.1:${port}`, "--collector.disable-defaults", "--collector.loadavg", "--collector.meminfo", "--collector.time"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let text = "";
    child.stdout?.on("data", (b: Buffer) => (text = (text + b.toString()).slice(-8000)));
    child.stderr?.on("data", (b: Buffer) => (text = (text + b.toString()).slice(-8000)));
    child.on("error", (e) => (text += String(e)));
    const ok = await waitFor(
      "node_exporter to serve /metrics",
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) return "exited";
        const r = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) });
        await r.arrayBuffer();
        return r.status === 200 ? "up" : false;
      },
      20_000,
      100,
    ).catch(async (e: Error) => {
      await stopChild(child, "SIGKILL");
      throw new Error(`${e.message}\n${text}`);
    });
    if (ok === "up") return { port, child, log: () => text };
    await stopChild(child, "SIGKILL");
    if (attempt >= 3 || !/address already in use/i.test(text)) throw new Error(`node_exporter exited: ${text}`);
  }
}

/** A small Node exporter: fixed gzip bytes when gzip is accepted, text otherwise; /hang never answers; /fail is a 500. */
const smallText = "# HELP small_exporter_up A second exporter behind the same client.\n# TYPE small_exporter_up gauge\nsmall_exporter_up 1\n";
const smallGzip = gzipSync(Buffer.from(smallText + "# padding\n".repeat(500)));

async function startSmallExporter(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith("/hang")) return; // never answers
    if (req.url?.startsWith("/fail")) {
      res.writeHead(500, { "content-type": "text/plain" });
      return void res.end("small exporter: collector broke\n");
    }
    if (/\bgzip\b/.test(String(req.headers["accept-encoding"]))) {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8", "content-encoding": "gzip", "content-length": smallGzip.length });
      return void res.end(smallGzip);
    }
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
    res.end(smallText);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

test("forwarder, end to end: node_exporter and a second exporter behind one forwarder, scraped by a real Prometheus", { timeout: 240_000 }, async (t) => {
  let s: TestServer | undefined;
  let ne: Awaited<ReturnType<typeof startNodeExporter>> | undefined;
  let small: Awaited<ReturnType<typeof startSmallExporter>> | undefined;
  let fwd: CliProcess | undefined;
  let prom: RunningPrometheus | undefined;
  try {
    ne = await startNodeExporter();
    small = await startSmallExporter();
    s = await startServer();
    const refused = await freePort();
    fwd = runCli([
      "client",
      "--name", "edge-1",
      "--server", s.url,
      "--target", `9100=http://127.0.0.1:${ne.port}/metrics`,
      "--target", `9200=http://127.0.0.1:${small.port}/metrics`,
      "--target", `9301=http://127.0.0.1:${refused}/metrics`,
      "--target", `9302=http://127.0.0.1:${small.port}/hang`,
      "--target", `9303=http://127.0.0.1:${small.port}/fail`,
      "--label", "site=e2e",
      "--metrics-listen", "127.0.0.1:0",
    ]);
    const f = fwd;
    await f.waitForOutput(/own metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/);
    const ownMetrics = `http://127.0.0.1:${/own metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(f.stdout())?.[1]}/metrics`;
    const server = s;
    await waitFor("the forwarder to connect", () => server.server.clients().some((c) => c.name === "edge-1"), 20_000).catch((e: Error) => {
      throw new Error(`${e.message}\nstdout:\n${f.stdout()}\nstderr:\n${f.stderr()}`);
    });

    await t.test("/clients announces NAME:PORT per target with the client's labels", async () => {
      const groups = (await (await fetch(`${server.url}/clients`)).json()) as { targets: string[]; labels: Record<string, string> }[];
      assert.deepEqual(groups.map((g) => g.targets[0]).sort(), ["edge-1:9100", "edge-1:9200", "edge-1:9301", "edge-1:9302", "edge-1:9303"]);
      for (const g of groups) assert.equal(g.labels["site"], "e2e");
      assert.equal(groups.find((g) => g.targets[0] === "edge-1:9302")?.labels["__metrics_path__"], "/hang");
    });

    await t.test("an unconfigured port is rejected with 404", async () => {
      const r = await proxyGet(server.port, "http://edge-1:9999/metrics");
      assert.equal(r.status, 404);
      assert.match(r.body.toString(), /^promproxy: client "edge-1" serves nothing at port 9999 path "\/metrics"/);
    });

    await t.test("gzip passes through byte for byte", async () => {
      const r = await proxyGet(server.port, "http://edge-1:9200/metrics", { "accept-encoding": "gzip" });
      assert.equal(r.status, 200);
      assert.equal(r.headers["content-encoding"], "gzip");
      assert.ok(r.body.equals(smallGzip), "the exporter's gzip bytes, untouched");
      const n = await proxyGet(server.port, "http://edge-1:9100/metrics", { "accept-encoding": "gzip" });
      assert.equal(n.status, 200);
      assert.equal(n.headers["content-encoding"], "gzip", "node_exporter's own gzip is relayed");
      assert.match(gunzipSync(n.body).toString(), /^node_exporter_build_info\{/m);
    });

    await t.test("a refusing exporter is a 502, a hanging one a 504, a failing one its own 500", async () => {
      const r1 = await proxyGet(server.port, "http://edge-1:9301/metrics");
      assert.equal(r1.status, 502);
      assert.match(r1.body.toString(), new RegExp(`^promproxy: client "edge-1": target http://127\\.0\\.0\\.1:${refused}/metrics: connection refused`));
      const r2 = await proxyGet(server.port, "http://edge-1:9302/hang", { "x-prometheus-scrape-timeout-seconds": "1" });
      assert.equal(r2.status, 504);
      assert.match(r2.body.toString(), new RegExp(`^promproxy: (scrape of "edge-1" timed out after 1s: )?client "edge-1": target http://127\\.0\\.0\\.1:${small?.port}/hang did not answer within`));
      const r3 = await proxyGet(server.port, "http://edge-1:9303/fail");
      assert.equal(r3.status, 500);
      assert.equal(r3.body.toString(), "small exporter: collector broke\n");
    });

    prom = await startPrometheus({ serverUrl: server.url });
    const p = prom;
    const why = async () => `\ntargets: ${JSON.stringify(await p.targets())}\nPrometheus log:\n${p.log()}\nforwarder stderr:\n${f.stderr()}`;

    await t.test("Prometheus: up == 1 for both exporters, node_exporter_build_info and the second exporter's metric queryable", async () => {
      const up = (await waitFor(
        "up == 1 for edge-1:9100 and edge-1:9200",
        async () => {
          const r = await p.query(`up{job="${p.jobName}"} == 1`);
          return r.length === 2 ? r : false;
        },
        60_000,
        250,
      ).catch(async (e: Error) => {
        throw new Error(`${e.message}${await why()}`);
      })) as Sample[];
      assert.deepEqual(up.map((x) => x.metric["instance"]).sort(), ["edge-1:9100", "edge-1:9200"]);
      for (const x of up) assert.equal(x.metric["site"], "e2e");
      const build = (await waitFor("node_exporter_build_info", async () => {
        const r = await p.query(`node_exporter_build_info{job="${p.jobName}"}`);
        return r.length === 1 ? r : false;
      }, 30_000, 250)) as Sample[];
      assert.equal(build[0]?.metric["instance"], "edge-1:9100");
      assert.equal(build[0]?.value, 1);
      const smallUp = await p.query(`small_exporter_up{job="${p.jobName}"}`);
      assert.equal(smallUp.length, 1);
      assert.equal(smallUp[0]?.metric["instance"], "edge-1:9200");
    });

    await t.test("Prometheus sees the failing targets down, each with the reason", async () => {
      const targets = (await waitFor(
        "the failing targets to be scraped",
        async () => {
          const ts = (await p.targets()).filter((x) => /:930\d$/.test(x.labels["instance"] ?? "") && x.health === "down");
          return ts.length === 3 ? ts : false;
        },
        60_000,
        250,
      ).catch(async (e: Error) => {
        throw new Error(`${e.message}${await why()}`);
      })) as ActiveTarget[];
      const err = (port: number) => targets.find((x) => x.labels["instance"] === `edge-1:${port}`)?.lastError ?? "";
      assert.match(err(9301), /502/);
      assert.match(err(9302), /504|deadline|timeout/i);
      assert.match(err(9303), /500/);
    });

    await t.test("the client's own metrics: scrapes served, failures by reason, connection state", async () => {
      const text = await (await fetch(ownMetrics)).text();
      const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
      assert.ok(value(new RegExp(`^promproxy_client_scrapes_total\\{target="http://127\\.0\\.0\\.1:${ne?.port}/metrics",code="200"\\} (\\d+)$`, "m")) >= 2, text);
      assert.ok(value(new RegExp(`^promproxy_client_scrape_failures_total\\{target="http://127\\.0\\.0\\.1:${refused}/metrics",reason="unreachable"\\} (\\d+)$`, "m")) >= 2, text);
      assert.ok(value(/^promproxy_client_scrape_failures_total\{target="[^"]+\/hang",reason="timeout"\} (\d+)$/m) >= 1, text);
      assert.ok(value(/^promproxy_client_scrapes_total\{target="[^"]+\/fail",code="500"\} (\d+)$/m) >= 2, text);
      assert.equal(value(/^promproxy_client_connected (\d+)$/m), 1);
      assert.equal(value(/^promproxy_client_reconnects_total (\d+)$/m), 0);
      assert.match(text, /^process_resident_memory_bytes /m);
    });

    await t.test("one log line per state change, not per scrape", () => {
      const log = f.stderr();
      assert.equal(log.match(/INFO promproxy: connected /g)?.length, 1, log);
      assert.equal(log.match(new RegExp(`target failing target="http://127\\.0\\.0\\.1:${refused}/metrics"`, "g"))?.length, 1, log);
      assert.equal(log.match(/target answers with an HTTP error target="[^"]+\/fail" status=500/g)?.length, 1, log);
      assert.equal(log.match(new RegExp(`target answering target="http://127\\.0\\.0\\.1:${ne?.port}/metrics"`, "g"))?.length, 1, log);
    });

    await t.test("SIGTERM stops the forwarder cleanly (exit 0) and it leaves /clients", async () => {
      f.child.kill("SIGTERM");
      const exit = await f.exited;
      assert.deepEqual(exit, { code: 0, signal: null }, f.stderr());
      await waitFor("edge-1 to leave /clients", () => !server.server.clients().some((c) => c.name === "edge-1"), 10_000);
    });
  } finally {
    await prom?.stop();
    await fwd?.kill();
    if (ne) await stopChild(ne.child);
    await small?.close();
    await s?.close();
  }
});
