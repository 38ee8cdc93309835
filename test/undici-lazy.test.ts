/**
 * undici is loaded only by the first exporter pool: an application that
 * embeds the client with its own registry (no URL target) never pays for it
 * (about 100 ms, 5 MiB of JS heap and 29 MiB of RSS). The forwarder CLI, which
 * always has URL targets, loads it at start, before its first scrape. Checked
 * in a fresh process, where nothing else has loaded it.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";

const client = new URL("../src/client/index.ts", import.meta.url).href;
const pools = new URL("../src/client/targets/exporter-pool.ts", import.meta.url).href;
const clientCommand = new URL("../src/cli/client-command.ts", import.meta.url).href;

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

test("undici: the forwarder CLI loads it at start, not with its first scrape", async () => {
  // No server listens at port 1: the forwarder only starts (and retries), no scrape ever comes.
  const out = await fresh(`
const { runClient } = await import(${JSON.stringify(clientCommand)});
const run = runClient(["--server", "http://127.0.0.1:1", "--name", "a", "--target", "http://127.0.0.1:9/", "--log-level", "error"], {});
await new Promise((r) => setTimeout(r, 200));
console.log("loaded", undiciLoaded());
process.kill(process.pid, "SIGTERM");
console.log("exit", await run);`);
  assert.match(out, /^loaded true$/m, out);
  assert.match(out, /^exit 0$/m, out);
});
