import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { test } from "node:test";
import { curl, waitFor } from "../helpers.ts";

const node = new URL("../../node_modules/.bin/node", import.meta.url).pathname;

function run(file: string, env: Record<string, string>): { child: ChildProcess; output: () => string } {
  let out = "";
  const child = spawn(node, [new URL(`../../examples/${file}`, import.meta.url).pathname], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}

async function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
  const [code] = (await exited) as [number | null];
  clearTimeout(t);
  return code;
}

test("the examples run as published (package self-reference to dist/) and are scrapeable", async () => {
  const server = run("server.ts", { PORT: "0" });
  let client: ReturnType<typeof run> | undefined;
  try {
    const port = await waitFor("the example server's port", () => /listening on (\d+)/.exec(server.output())?.[1], 15_000);
    const url = `http://127.0.0.1:${port}`;
    client = run("embedded-client.ts", { PROMPROXY_SERVER: url, PROMPROXY_NAME: "example-app" });
    await waitFor("the example client to connect", () => client!.output().includes("connected;"), 15_000);
    const r = await curl(["-x", url, "http://example-app/metrics"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^# TYPE example_jobs_total counter$/m);
    assert.equal(await stop(client.child), 0, `the example client exits cleanly: ${client.output()}`);
    assert.equal(await stop(server.child), 0, `the example server exits cleanly: ${server.output()}`);
  } finally {
    if (client) await stop(client.child);
    await stop(server.child);
  }
});
