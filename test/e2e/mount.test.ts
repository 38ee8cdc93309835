/**
 * Issue 12, mounting: the Connect service (`connectOptions`) and the Prometheus front (`frontHandler`)
 * mounted in an Express app, a Fastify app and bare node:http2 + node:http servers. Each example runs
 * as published (a child process importing `promproxy` through the package self-reference, i.e. dist/),
 * the embedded-client example connects to it, curl -x and a real Prometheus scrape through it, and
 * SIGTERM ends it cleanly with the client still connected. The bare example also runs with TLS on one
 * port (ALPN preferring HTTP/1.1, which Prometheus needs).
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { test } from "node:test";
import { testPki, tempDir } from "../auth-certs.ts";
import { curl as curlRaw, waitFor } from "../helpers.ts";
import { node22, repoRoot, startPrometheus, stopChild, type RunningPrometheus } from "./prometheus.ts";

interface Example {
  child: ChildProcess;
  output: () => string;
}

function run(file: string, env: Record<string, string>): Example {
  let out = "";
  const child = spawn(node22, [`${repoRoot}/examples/${file}`], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  child.on("error", (e) => (out += String(e)));
  return { child, output: () => out };
}

async function portFrom(ex: Example, what: string, re: RegExp): Promise<number> {
  const m = await waitFor(what, () => {
    if (ex.child.exitCode !== null) throw new Error(`exited ${ex.child.exitCode}: ${ex.output()}`);
    return re.exec(ex.output())?.[1];
  }, 20_000);
  return Number(m);
}

interface Case {
  name: string;
  file: string;
  /** Where the front's own paths are (what the app mounted them under). */
  frontPrefix: string;
  /** Whether the client streams have their own port. */
  streamPort: boolean;
  /** Whether the app serves routes of its own next to promproxy. */
  appRoutes: boolean;
  /** TLS on one port (the example's TLS_CERT_FILE/TLS_KEY_FILE). */
  tls?: boolean;
}

const cases: Case[] = [
  { name: "Express", file: "express/server.ts", frontPrefix: "/promproxy", streamPort: true, appRoutes: true },
  { name: "Fastify (one port: HTTP/1.1 + h2c)", file: "fastify/server.ts", frontPrefix: "/promproxy", streamPort: false, appRoutes: true },
  { name: "bare node:http2 + node:http", file: "http2/server.ts", frontPrefix: "", streamPort: true, appRoutes: false },
  { name: "bare node:http2 with TLS (one port, ALPN preferring HTTP/1.1)", file: "http2/server.ts", frontPrefix: "", streamPort: false, appRoutes: false, tls: true },
];

for (const c of cases) {
  test(`mounted in ${c.name}: an embedded client connects, curl -x and Prometheus scrape through`, async () => {
    const clientName = `mount-${c.file.split("/")[0]}${c.tls ? "-tls" : ""}`;
    const tmp = tempDir("promproxy-mount-");
    const pki = c.tls ? await testPki(tmp.dir) : undefined;
    const tlsEnv: Record<string, string> = pki ? { TLS_CERT_FILE: pki.server.certFile, TLS_KEY_FILE: pki.server.keyFile } : {};
    const server = run(c.file, { PORT: "0", STREAM_PORT: "0", ...tlsEnv });
    let client: Example | undefined;
    let prometheus: RunningPrometheus | undefined;
    try {
      const port = await portFrom(server, "the example's port", /listening on (\d+)/);
      const streamPort = c.streamPort ? await portFrom(server, "the example's stream port", /client streams on (\d+)/) : port;
      const scheme = pki ? "https" : "http";
      const url = `${scheme}://127.0.0.1:${port}`;
      // The embedded client trusts the test CA through NODE_EXTRA_CA_CERTS: the example is unchanged.
      client = run("embedded-client.ts", {
        PROMPROXY_SERVER: `${scheme}://127.0.0.1:${streamPort}`,
        PROMPROXY_NAME: clientName,
        ...(pki ? { NODE_EXTRA_CA_CERTS: pki.ca.certFile } : {}),
      });
      await waitFor("the example client to connect", () => client!.output().includes("connected;"), 20_000);
      const curl = (args: string[]) => curlRaw(pki ? ["--cacert", pki.ca.certFile, "--proxy-cacert", pki.ca.certFile, ...args] : args);

      // curl as Prometheus would: the proxy request reaches the client, not the app's own /metrics.
      const scrape = await curl(["-x", url, `http://${clientName}/metrics`]);
      assert.equal(scrape.code, 0, scrape.stderr);
      assert.match(scrape.stdout, /^# TYPE example_jobs_total counter$/m);
      const unknown = await curl(["-o", "/dev/null", "-w", "%{http_code}", "-x", url, "http://no-such-client/metrics"]);
      assert.equal(unknown.stdout, "404", "an unknown client: 404 from promproxy");

      // Discovery and the front's own paths.
      const sd = await curl([`${url}${c.frontPrefix}/clients`]);
      assert.equal(sd.code, 0, sd.stderr);
      const groups = JSON.parse(sd.stdout) as { targets: string[]; labels: Record<string, string> }[];
      assert.deepEqual(groups.map((g) => g.targets), [[clientName]]);
      assert.equal(groups[0]!.labels["__meta_promproxy_client"], clientName);
      const healthz = await curl([`${url}${c.frontPrefix}/healthz`]);
      assert.equal(healthz.stdout, "ok\n");
      const metrics = await curl([`${url}${c.frontPrefix}/metrics`]);
      assert.match(metrics.stdout, /^promproxy_/m, "the server's own metrics");

      if (c.appRoutes) {
        // The app's routes still work next to promproxy.
        assert.equal((await curl([`${url}/`])).stdout, "the app's home page\n");
        assert.equal((await curl([`${url}/metrics`])).stdout, "# the app's own /metrics route\n");
      }

      // A real Prometheus: proxy_url + http_sd_configs.
      // With TLS, the scrape config's tls_config verifies the proxy's certificate; Prometheus keeps HTTP/2
      // enabled (its default): it offers h2 and http/1.1, and the example's ALPN callback picks http/1.1.
      const caLine = pki ? `\n    tls_config: { ca_file: ${pki.ca.certFile} }` : "";
      prometheus = await startPrometheus({
        serverUrl: url,
        scrapeConfigs: `scrape_configs:
  - job_name: mounted
    proxy_url: ${url}${caLine}
    http_sd_configs:
      - url: ${url}${c.frontPrefix}/clients
        refresh_interval: 1s${caLine.replace("\n    ", "\n        ")}
`,
      });
      const p = prometheus;
      let lastError = "";
      await waitFor(
        "Prometheus to scrape the client through the mounted server",
        async () => {
          const [target] = await p.targets();
          if (target?.health === "down") lastError = target.lastError;
          // Prometheus 2.x adds the scheme's default port to the instance.
          const s = await p.query(`up{job="mounted",instance=~"${clientName}(:80)?"} == 1`);
          const jobs = await p.query(`example_jobs_total{job="mounted",instance=~"${clientName}(:80)?"}`);
          return s.length === 1 && jobs.length === 1 ? s : false;
        },
        30_000,
        250,
      ).catch((e: Error) => {
        throw new Error(`${e.message} (last scrape error: ${lastError || "none"})\nprometheus:\n${p.log()}\nserver:\n${server.output()}`);
      });

      // SIGTERM with a client connected and Prometheus scraping: the server drains, tells the client to
      // go, closes its own servers (HTTP/2 sessions included) and exits; then the client exits too.
      const serverExit = await stopChild(server.child, "SIGTERM", 10_000);
      assert.deepEqual(serverExit, { code: 0, signal: null }, `the example server exits cleanly: ${server.output()}`);
      const clientExit = await stopChild(client.child);
      assert.deepEqual(clientExit, { code: 0, signal: null }, `the example client exits cleanly: ${client.output()}`);
    } finally {
      await prometheus?.stop();
      if (client) await stopChild(client.child, "SIGKILL");
      await stopChild(server.child, "SIGKILL");
      tmp.remove();
    }
  });
}
