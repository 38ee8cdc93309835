/**
 * The client's welcome timeout grows after attempts that timed out: real
 * processes, a server whose front accepts every stream and never welcomes
 * (fixtures/survival/faulty-server.ts, PINGs answered) and applications
 * embedding a client (fixtures/survival/client-app.ts) that print each failed
 * attempt. Each attempt that gave up waits twice as long as the last, up to
 * maxWelcomeTimeoutMs (at the bound: never grows); once the server heals, the
 * clients are welcomed and scrapeable. Asserts the waits the clients report
 * and counts, never how long anything took.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { proxyGet, waitFor } from "../helpers.ts";
import { runScript, type Script } from "./fixtures/faults/util.ts";

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures/survival");

/** The waits (seconds, as printed) of the attempts that gave up waiting for a welcome. */
const waits = (app: Script) => app.lines().flatMap((l) => /^error DeadlineExceeded no welcome from the server within ([\d.]+)s$/.exec(l)?.[1] ?? []);

test("the welcome timeout doubles after each attempt that timed out, up to maxWelcomeTimeoutMs; at the bound it never grows", { timeout: 120_000 }, async () => {
  const server = runScript(path.join(fixtures, "faulty-server.ts"), ["never-welcome"]);
  const apps: Script[] = [];
  try {
    const clientPort = Number((await server.waitLine(/^client-port \d+$/)).split(" ")[1]);
    const scrapePort = Number((await server.waitLine(/^scrape-port \d+$/)).split(" ")[1]);
    const url = `http://127.0.0.1:${clientPort}`;
    const backoff = { initialMs: 50, maxMs: 100 };
    const growing = runScript(path.join(fixtures, "client-app.ts"), [url, "app-growing", JSON.stringify({ welcomeTimeoutMs: 300, maxWelcomeTimeoutMs: 1_200, backoff })]);
    const fixed = runScript(path.join(fixtures, "client-app.ts"), [url, "app-fixed", JSON.stringify({ welcomeTimeoutMs: 300, maxWelcomeTimeoutMs: 300, backoff })]);
    apps.push(growing, fixed);
    await waitFor("five timed-out attempts of each client", () => waits(growing).length >= 5 && waits(fixed).length >= 5, 60_000, 100);
    assert.deepEqual(waits(growing).slice(0, 5), ["0.3", "0.6", "1.2", "1.2", "1.2"], growing.lines().join("\n"));
    assert.deepEqual(waits(fixed).slice(0, 5), ["0.3", "0.3", "0.3", "0.3", "0.3"], fixed.lines().join("\n"));
    for (const app of apps) assert.equal(app.lines().filter((l) => l.startsWith("connected ")).length, 0);

    server.send("heal");
    await server.waitLine(/^healed/);
    for (const [app, name] of [[growing, "app-growing"], [fixed, "app-fixed"]] as const) {
      await app.waitLine(/^connected /, 30_000);
      const r = await proxyGet(scrapePort, `http://${name}/metrics`);
      assert.equal(r.status, 200);
      assert.match(r.body.toString(), new RegExp(`^survival_app_up\\{name="${name}"\\} 1$`, "m"));
      assert.equal(app.stderr(), "", "nothing escaped to the host's stderr");
    }
  } finally {
    for (const app of apps) await app.kill();
    await server.kill();
  }
});
