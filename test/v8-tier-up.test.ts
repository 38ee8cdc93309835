/**
 * V8's tier-up as the CLI sets it (src/cli/v8-tier-up.ts): in a fresh process, TurboFan optimizes a
 * function within 1,200 calls with it and not without it (V8's default waits for 3,000); a flag of the
 * user's own wins; V8's flags frozen after start are left alone.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { tuneTierUp, turbofanInvocations } from "../src/cli/v8-tier-up.ts";

const moduleUrl = new URL("../src/cli/v8-tier-up.ts", import.meta.url).href;
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Runs a fresh Node that calls a small function up to 1,200 times; answers whether TurboFan optimized it. */
function optimizedWithin1200Calls(tune: boolean, nodeArgs: string[] = []): { optimized: boolean; set: string | undefined } {
  const script = `
    import { tuneTierUp } from ${JSON.stringify(moduleUrl)};
    const set = ${tune} ? tuneTierUp() : undefined;
    function f(x) { const y = x * 2 + 1; return y > 10 ? y - 3 : y + 3; }
    const status = new Function("f", "return %GetOptimizationStatus(f)");
    // One call per turn of the event loop, as a scrape's functions run (a tight loop would be OSR-compiled
    // with f inlined into it); TurboFan compiles on a helper thread, so the calls go on past the 300th, a
    // millisecond apart: on a loaded machine that thread may wait its turn (the count of calls, not the time,
    // decides whether V8 asks for TurboFan at all).
    let s = 0;
    let optimized = false;
    for (let i = 0; i < 1200 && !optimized; i++) {
      s += f(i);
      optimized = (status(f) & 16) !== 0;
      await new Promise((r) => setTimeout(r, 1));
    }
    process.stdout.write(JSON.stringify({ optimized, set, s: s > 0 }));
  `;
  const env = { ...process.env };
  delete env["NODE_OPTIONS"];
  const out = execFileSync(process.execPath, ["--allow-natives-syntax", ...nodeArgs, "--input-type=module", "-e", script], { cwd: root, env, encoding: "utf8", timeout: 60_000 });
  return JSON.parse(out) as { optimized: boolean; set: string | undefined };
}

test("with tuneTierUp, a function is optimized within 1,200 calls; without it, not (V8 waits for 3,000)", () => {
  const tuned = optimizedWithin1200Calls(true);
  assert.equal(tuned.set, `--invocation-count-for-turbofan=${turbofanInvocations}`);
  assert.equal(tuned.optimized, true);
  assert.equal(optimizedWithin1200Calls(false).optimized, false);
});

test("a --invocation-count-for-turbofan of the user's own on node's command line wins, however spelt", () => {
  const own = optimizedWithin1200Calls(true, ["--invocation-count-for-turbofan=3000"]);
  assert.equal(own.set, undefined);
  assert.equal(own.optimized, false);
  for (const a of ["--invocation_count_for_turbofan=5000", "-invocation-count-for-turbofan=500", "--invocation-count-for-turbofan"]) {
    assert.equal(tuneTierUp([a], "22.23.3"), undefined, a);
  }
});

test("with V8's flags frozen after start (--freeze-flags-after-init), nothing is set and the process lives", () => {
  // Changing a flag then aborts the process (V8's "Check failed: !IsFrozen()").
  assert.equal(optimizedWithin1200Calls(true, ["--freeze-flags-after-init"]).set, undefined);
  assert.equal(tuneTierUp(["--freeze_flags_after_init"], "22.23.3"), undefined);
  // The last word wins.
  const thawed = optimizedWithin1200Calls(true, ["--freeze-flags-after-init", "--no-freeze-flags-after-init"]);
  assert.equal(thawed.set, `--invocation-count-for-turbofan=${turbofanInvocations}`);
});

test("only on Node 22 (V8 without Maglev); later Nodes keep V8's defaults", () => {
  for (const v of ["23.11.1", "24.22.3", "25.9.0", "20.20.2"]) assert.equal(tuneTierUp([], v), undefined, v);
  assert.equal(tuneTierUp([], "22.23.3"), `--invocation-count-for-turbofan=${turbofanInvocations}`);
});
