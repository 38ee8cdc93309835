/**
 * Scenarios against our real server: the client is listed in `/clients` and
 * scrapeable through the proxy; a second client with the same name is refused
 * (ALREADY_EXISTS), retries with backoff, and the first keeps serving.
 *
 * @internal
 */
import { lastLine } from "../harness.ts";
import { startRealServer, type RealServer } from "../real-server.ts";
import { checkExposition, formatBytes } from "../result-check.ts";
import { check, pass, sleep, waitUntil, type Scenario } from "../scenario.ts";

/** How long a freshly launched client may take to be listed. */
const listedWithinMs = 20_000;

async function proxiedScrapeOk(server: RealServer, name: string): Promise<number> {
  const r = await server.proxyGet(`http://${name}/metrics`, { accept: "text/plain;version=0.0.4" });
  check(r.status === 200, () => `the proxied scrape answered ${r.status}: ${r.body.toString("utf8").slice(0, 160).trim()}`);
  check(r.headers["content-type"], "the proxied scrape has no content-type");
  const problem = checkExposition(r.body.toString("utf8"), "the proxied scrape");
  check(!problem, () => problem ?? "");
  return r.body.byteLength;
}

export const helloLabels: Scenario = {
  id: "hello-labels",
  title: "hello and labels: listed in /clients, scrapeable through the real server",
  timeoutMs: 40_000,
  async run(ctx) {
    const server = await startRealServer(ctx);
    const client = ctx.launch(server.url);
    const group = await waitUntil(
      () => `the client in /clients (client output: ${lastLine(client)})`,
      async () => {
        check(!client.done, () => `the client exited: ${lastLine(client)}`);
        return (await server.discovery()).find((g) => g.labels["__meta_promproxy_client"] === ctx.name);
      },
      listedWithinMs,
    );
    const own = Object.entries(group.labels).filter(([k]) => !k.startsWith("__"));
    const bytes = await proxiedScrapeOk(server, ctx.name);
    const labels = own.length ? own.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(",") : "no labels";
    return pass(`listed as ${group.targets.join(",")} with ${labels}; proxied scrape 200, ${formatBytes(bytes)} (1 KiB chunks, 4 KiB credit)`);
  },
};

export const duplicateName: Scenario = {
  id: "duplicate-name",
  title: "duplicate name: ALREADY_EXISTS, retried with backoff; the first keeps serving",
  timeoutMs: 50_000,
  slow: true,
  async run(ctx) {
    const server = await startRealServer(ctx);
    const first = ctx.launch(server.url);
    const held = await waitUntil(
      () => `the first client to connect (client output: ${lastLine(first)})`,
      () => {
        check(!first.done, () => `the client exited: ${lastLine(first)}`);
        return server.clients().find((c) => c.name === ctx.name);
      },
      listedWithinMs,
    );
    const second = ctx.launch(server.url);
    const watchMs = 6_000;
    // The second client's first refusal, then how it retries over the next seconds.
    const firstRefusal = await waitUntil(
      () => `the server to refuse the second client (its output: ${lastLine(second)})`,
      () => {
        const holder = server.clients().find((c) => c.name === ctx.name);
        check(holder?.sessionId === held.sessionId, "the second client took the name: the first did not answer the server's probe (a Ping)");
        return server.refusals.find((r) => r.code === "AlreadyExists");
      },
      listedWithinMs,
    );
    await sleep(watchMs);
    const refused = server.refusals.filter((r) => r.code === "AlreadyExists" && r.at >= firstRefusal.at && r.at <= firstRefusal.at + watchMs);
    const gaps = refused.slice(1).map((r, i) => r.at - (refused[i]?.at ?? r.at));
    check(server.refusals.every((r) => r.code === "AlreadyExists"), () => `a refusal other than AlreadyExists: ${server.refusals.map((r) => r.code).join(", ")}`);
    check(refused.length >= 2, `the second client did not retry within ${watchMs / 1000}s of its ALREADY_EXISTS (process ${second.done ? "exited" : "running"})`);
    const meanGap = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    check(meanGap >= 100, () => `the second client retried ${refused.length} times in ${watchMs / 1000}s (every ${Math.round(meanGap)} ms): no backoff`);
    const holder = server.clients().find((c) => c.name === ctx.name);
    check(holder?.sessionId === held.sessionId, "the first client lost its name");
    const bytes = await proxiedScrapeOk(server, ctx.name);
    check(!first.done, () => `the first client exited: ${lastLine(first)}`);
    return pass(`${refused.length} ALREADY_EXISTS in ${watchMs / 1000}s, gaps ${gaps.map((g) => `${(g / 1000).toFixed(1)}s`).join(" ")}; first still serves (${formatBytes(bytes)})`);
  },
};
