/**
 * Shutdown is a drain: a `promproxy server` process under Prometheus-like load
 * gets SIGTERM. Readiness fails at once while liveness holds; for the drain
 * delay scrapes are still served, each with `Connection: close`; then new
 * scrapes get 503 at once; scrapes in flight finish; the process exits 0 as
 * soon as nothing is in flight, long before its grace period ends. Not one
 * admitted scrape fails.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import { test } from "node:test";
import { Gauge, Registry } from "prom-client";
import type { PromproxyClient } from "../../src/client/index.ts";
import { startClient, waitFor } from "../helpers.ts";
import { runCli, type CliProcess } from "./prometheus.ts";

interface Outcome {
  at: number;
  status: number | "error";
  connection?: string;
  body: string;
  error?: string;
}

/**
 * One GET. Like Prometheus (Go's HTTP client), a request that meets a kept-alive connection the server closed just
 * as it was sent (ECONNRESET on a reused socket, nothing answered) is sent once more, on a new connection: the
 * drain closes idle keep-alive connections so that Prometheus dials again, through a load balancer elsewhere.
 */
async function get(port: number, path: string, agent: http.Agent, headers: Record<string, string> = {}): Promise<Outcome> {
  const first = await getOnce(port, path, agent, headers);
  return first.retry ? (await getOnce(port, path, agent, headers)).outcome : first.outcome;
}

function getOnce(port: number, path: string, agent: http.Agent, headers: Record<string, string>): Promise<{ outcome: Outcome; retry?: boolean }> {
  return new Promise((resolve) => {
    const at = Date.now();
    const req = http.request({ host: "127.0.0.1", port, path, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", (e) => resolve({ outcome: { at, status: "error", body: "", error: e.message } }));
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString();
        resolve({ outcome: { at, status: res.complete ? (res.statusCode ?? 0) : "error", connection: res.headers["connection"], body } });
      });
    });
    req.on("error", (e: NodeJS.ErrnoException) =>
      resolve({ outcome: { at, status: "error", body: "", error: e.code ?? e.message }, retry: e.code === "ECONNRESET" && req.reusedSocket }),
    );
    req.end();
  });
}

/** A registry whose collection takes `ms`: scrapes that are still in flight when the server stops admitting. */
function slowRegistry(ms: number): Registry {
  const registry = new Registry();
  new Gauge({
    name: "slow_up",
    help: "Takes a while.",
    registers: [registry],
    async collect() {
      await new Promise((r) => setTimeout(r, ms));
      this.set(1);
    },
  });
  return registry;
}

test("SIGTERM under load: ready fails at once, scrapes served through the drain delay, then 503, zero admitted scrapes fail, exit 0 early", { timeout: 120_000 }, async (t) => {
  const drainDelayMs = 2_000;
  const graceS = 30;
  let server: CliProcess | undefined;
  const clients: PromproxyClient[] = [];
  try {
    server = runCli(["server", "--listen", "127.0.0.1:0", "--drain-delay", `${drainDelayMs}ms`, "--shutdown-grace", `${graceS}s`, "--warmup", "0s", "--log-level", "info"]);
    await server.waitForOutput(/listening on 127\.0\.0\.1:\d+/);
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(server.stdout())?.[1]);
    const url = `http://127.0.0.1:${port}`;
    clients.push(await startClient(url, "fast"));
    clients.push(await startClient(url, "slow", { registry: slowRegistry(1_500) }));
    const probes = new http.Agent({ keepAlive: false });
    assert.equal((await get(port, "/readyz", probes)).status, 200);

    // Prometheus-like load: keep-alive connections (as Prometheus keeps them), scraping back to back.
    const results: Outcome[] = [];
    let loading = true;
    const loop = async (name: string) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      while (loading) {
        results.push(await get(port, `http://${name}/metrics`, agent, { "x-prometheus-scrape-timeout-seconds": "10" }));
        if (results.at(-1)?.error === "ECONNREFUSED") await new Promise((r) => setTimeout(r, 20));
      }
      agent.destroy();
    };
    const loops = [loop("fast"), loop("fast"), loop("slow"), loop("slow")];
    await waitFor("load is flowing", () => results.filter((r) => r.status === 200).length >= 20, 20_000);

    const t0 = Date.now();
    server.child.kill("SIGTERM");
    await waitFor("readiness fails", async () => (await get(port, "/readyz", probes)).status === 503, 5_000, 20);
    const readyFailedAfter = Date.now() - t0;
    assert.equal((await get(port, "/healthz", probes)).status, 200, "liveness holds while draining");
    const exited = await server.exited;
    const exitedAfter = Date.now() - t0;
    loading = false;
    await Promise.all(loops);

    assert.equal(exited.code, 0, server.stderr());
    assert.ok(readyFailedAfter < drainDelayMs, `readiness failed after ${readyFailedAfter} ms, within the drain delay`);
    assert.ok(exitedAfter < drainDelayMs + 15_000, `exited ${exitedAfter} ms after SIGTERM, long before the ${graceS} s grace ended`);

    const after = results.filter((r) => r.at >= t0);
    const served = after.filter((r) => r.status === 200);
    const refused = after.filter((r) => r.status === 503);
    // Once new scrapes are refused, the port closes: a connection then is refused, or reset before any request
    // was read (accepted by the kernel, not yet by the server). Neither admitted a scrape.
    const refusing = t0 + drainDelayMs;
    const notConnected = after.filter((r) => r.status === "error" && r.at >= refusing && (r.error === "ECONNREFUSED" || r.error === "ECONNRESET"));
    const failed = after.filter((r) => !served.includes(r) && !refused.includes(r) && !notConnected.includes(r));
    t.diagnostic(`after SIGTERM: ready failed in ${readyFailedAfter} ms; ${served.length} served, ${refused.length} refused with 503, ${notConnected.length} not connected, ${failed.length} failed; exit 0 after ${exitedAfter} ms (drain delay ${drainDelayMs} ms, grace ${graceS} s)`);
    assert.deepEqual(failed, [], "every admitted scrape succeeded");
    assert.ok(served.length > 10, `scrapes were served during the drain delay (${served.length})`);
    assert.ok(served.some((r) => r.body.includes("slow_up 1")), "slow scrapes in flight finished");
    for (const r of served.filter((x) => x.at >= t0 + readyFailedAfter)) assert.equal(r.connection, "close", "answers while draining say Connection: close");
    for (const r of refused) assert.equal(r.body, "promproxy: server is shutting down\n");
    assert.ok(refused.every((r) => r.at >= t0 + drainDelayMs - 100), "nothing refused before the drain delay ended");
    assert.match(server.stdout() + server.stderr(), /draining/);
  } finally {
    for (const c of clients) await c.stop();
    await server?.kill();
  }
});
