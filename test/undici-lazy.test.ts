/**
 * undici is loaded only by the first exporter pool: an application that
 * embeds the client with its own registry (no URL target) never pays for it
 * (about 100 ms, 5 MiB of JS heap and 29 MiB of RSS). Checked in a fresh
 * process, where nothing else has loaded it.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";

const client = new URL("../src/client/index.ts", import.meta.url).href;
const pools = new URL("../src/client/targets/exporter-pool.ts", import.meta.url).href;

/** Runs `body` as an ES module in a fresh Node and returns what it printed. */
async function fresh(body: string): Promise<string> {
  const script = `import { createRequire } from "node:module";
const undiciLoaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes("/node_modules/undici/"));
${body}`;
  const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], { timeout: 60_000 });
  return stdout.trim();
}

test("undici: an embedded client (registry target) never loads it; the first exporter pool does", async () => {
  const embedded = await fresh(`
const { createClient } = await import(${JSON.stringify(client)});
const { Registry } = await import("prom-client");
createClient({ name: "a", serverUrl: "http://127.0.0.1:1", registry: new Registry() });
console.log(undiciLoaded());`);
  assert.equal(embedded, "false", "creating an embedded client loaded undici");

  const forwarder = await fresh(`
const { createExporterPools } = await import(${JSON.stringify(pools)});
const p = createExporterPools("127.0.0.1:9", {});
const before = undiciLoaded();
p.get(false);
console.log(before, undiciLoaded());
p.close();`);
  assert.equal(forwarder, "false true", "made pools but no pool yet (false), then the first pool (true)");
});
