/**
 * Side by side, one run: a second replica that holds no client (its client holds only the first), without and
 * with --peers: when it turns ready, whether a scrape of that client through it works, what its /clients lists.
 * `npx node bench/peers-side-by-side.ts`.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { runCli, freePort } from "../test/e2e/prometheus.ts";
import { startClient, proxyGet } from "../test/helpers.ts";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-side-"));
const secretFile = path.join(dir, "secret");
fs.writeFileSync(secretFile, "side-by-side-secret-0123456789\n");
for (const peers of [false, true]) {
  const [p1, p2] = [await freePort(), await freePort()];
  const extra = (p: number[]) => (peers ? [`--peers=${p.map((x) => `http://127.0.0.1:${x}`).join(",")}`, `--peer-secret-file=${secretFile}`] : []);
  const r1 = runCli(["server", `--listen=127.0.0.1:${p1}`, "--warmup=5s", "--log-level=error", ...extra([p1, p2])]);
  await r1.waitForOutput(/listening/);
  const c = await startClient(`http://127.0.0.1:${p1}`, "app");
  const r2 = runCli(["server", `--listen=127.0.0.1:${p2}`, "--warmup=5s", "--log-level=error", ...extra([p1, p2])]);
  await r2.waitForOutput(/listening/);
  const t0 = performance.now();
  let readyAt = 0;
  while (!readyAt) {
    const r = await fetch(`http://127.0.0.1:${p2}/readyz`);
    await r.text();
    if (r.status === 200) readyAt = performance.now() - t0;
    else await sleep(50);
  }
  const s = await proxyGet(p2, "http://app/metrics");
  const listed = ((await (await fetch(`http://127.0.0.1:${p2}/clients`)).json()) as unknown[]).length;
  console.log(`${peers ? "with --peers" : "without    "}: r2 ready ${(readyAt / 1000).toFixed(2)} s after listening (--warmup 5s); scrape of app (held by r1 only) through r2: ${s.status} ${s.body.toString().split("\n")[0]!.slice(0, 60)}; r2's /clients lists ${listed} group(s)`);
  await c.stop();
  await r1.kill();
  await r2.kill();
}
fs.rmSync(dir, { recursive: true, force: true });
