/**
 * The secure setup end to end, with a real Prometheus (Debian's 2.42): TLS on
 * the server's one port, clients authenticated by bearer tokens bound to
 * names, Prometheus authenticated by basic auth, both for proxied scrapes
 * (`proxy_url: https://user:pass@...`, sent as Proxy-Authorization on an
 * absolute-URI GET, no CONNECT) and for http_sd (`basic_auth`).
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { bearerToken, type PromproxyClient } from "../../src/client/index.ts";
import { bearerAuth, createServer, hashPassword, silentLogger, type PromproxyServer } from "../../src/server/index.ts";
import { tempDir, testPki, type Ca } from "../auth-certs.ts";
import { startClient, waitFor } from "../helpers.ts";
import { startPrometheus, type ActiveTarget, type RunningPrometheus } from "./prometheus.ts";

const tmp = tempDir();
let ca: Ca;
let server: PromproxyServer;
let port: number;
let client: PromproxyClient;

before(async () => {
  const pki = await testPki(tmp.dir);
  ca = pki.ca;
  const usersFile = path.join(tmp.dir, "prometheus-users");
  fs.writeFileSync(usersFile, `prometheus:${await hashPassword("scrape-pass-1")}\n`);
  const tokenFile = path.join(tmp.dir, "client-tokens");
  fs.writeFileSync(tokenFile, "client-token-app-star app-* apps\n");
  server = createServer({
    logger: silentLogger,
    interceptors: [bearerAuth({ tokenFile })],
    promAuth: { usersFile },
  });
  ({ port } = await server.listen({ host: "127.0.0.1", port: 0, tls: { certFile: pki.server.certFile, keyFile: pki.server.keyFile } }));
  client = await startClient(`https://127.0.0.1:${port}`, "app-1", {
    tls: { ca: ca.cert },
    interceptors: [bearerToken("client-token-app-star")],
  });
});

after(async () => {
  await client?.stop();
  await server?.close({ graceMs: 500 });
  tmp.remove();
});

test("a real Prometheus scrapes through proxy_url https://user:pass@ with tls_config and http_sd with basic_auth: up == 1", { timeout: 90_000 }, async () => {
  const base = `https://127.0.0.1:${port}`;
  const scrapeConfigs = `scrape_configs:
  - job_name: secure
    proxy_url: https://prometheus:scrape-pass-1@127.0.0.1:${port}
    tls_config:
      ca_file: ${ca.certFile}
    http_sd_configs:
      - url: ${base}/clients
        refresh_interval: 1s
        basic_auth:
          username: prometheus
          password: scrape-pass-1
        tls_config:
          ca_file: ${ca.certFile}
  - job_name: wrong-password
    proxy_url: https://prometheus:not-the-password@127.0.0.1:${port}
    tls_config:
      ca_file: ${ca.certFile}
    static_configs:
      - targets: [app-1]
`;
  let prom: RunningPrometheus | undefined;
  try {
    prom = await startPrometheus({ serverUrl: base, scrapeConfigs });
    const p = prom;
    try {
      await waitFor(
        "up == 1 and the client's own metric in Prometheus",
        async () => {
          const up = await p.query('up{job="secure"}');
          const own = await p.query('test_up_total{job="secure", name="app-1"}');
          return up.length === 1 && up[0]?.value === 1 && up[0]?.metric["instance"] === "app-1:80" && own[0]?.value === 1;
        },
        45_000,
        250,
      );
      let wrong: ActiveTarget | undefined;
      await waitFor("the wrong-password job to be scraped", async () => {
        wrong = (await p.targets()).find((x) => x.scrapePool === "wrong-password");
        return wrong !== undefined && wrong.health !== "unknown";
      }, 30_000, 250);
      assert.equal(wrong?.health, "down");
      assert.match(wrong?.lastError ?? "", /403/);
    } catch (e) {
      throw new Error(`${(e as Error).message}\ntargets: ${JSON.stringify(await p.targets().catch(() => "?"))}\nPrometheus log:\n${p.log()}`);
    }
  } finally {
    await prom?.stop();
  }
});
