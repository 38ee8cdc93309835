import assert from "node:assert/strict";
import { test } from "node:test";
import { onceLog, sparseLog } from "../src/client/fleet-limits.ts";
import { resolveClientOptions, type ClientOptions } from "../src/client/options.ts";
import type { Logger } from "../src/shared/logger.ts";

function recorder() {
  const lines: string[] = [];
  const log: Logger = { debug: () => {}, info: () => {}, warn: (m) => void lines.push(m), error: (m) => void lines.push(m) };
  return { log, lines };
}

test("fleet limits: defaults 64 and 64; whole numbers >= 1 taken; anything else refused with the option's name", () => {
  const limits = (more: Partial<ClientOptions>) => {
    const r = resolveClientOptions({ name: "app-1", serverUrl: "http://127.0.0.1:1", ...more });
    return { maxReplicas: r.maxReplicas, maxServerAddresses: r.maxServerAddresses };
  };
  assert.deepEqual(limits({}), { maxReplicas: 64, maxServerAddresses: 64 });
  assert.deepEqual(limits({ maxReplicas: 1, maxServerAddresses: 200 }), { maxReplicas: 1, maxServerAddresses: 200 });
  for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, "3" as unknown as number, null as unknown as number]) {
    assert.throws(() => limits({ maxReplicas: bad }), /option maxReplicas must be a whole number from 1 to 1024/);
    assert.throws(() => limits({ maxServerAddresses: bad }), /option maxServerAddresses must be a whole number >= 1/);
  }
  // A hello lists the replicas held, and a server refuses one listing more than 1,024 (PROTOCOL.md).
  assert.equal(limits({ maxReplicas: 1024 }).maxReplicas, 1024);
  assert.throws(() => limits({ maxReplicas: 1025 }), /option maxReplicas must be a whole number from 1 to 1024, got 1025/);
});

test("a cap that bites is logged once; a repeated warning at most once per interval, counting the rest", async () => {
  const once = recorder();
  const say = onceLog(once.log);
  for (let i = 0; i < 100; i++) say("capped", {});
  assert.deepEqual(once.lines, ["capped"]);

  const sparse = recorder();
  const warn = sparseLog(sparse.log, 60_000);
  for (let i = 0; i < 100; i++) warn("double claim", {});
  assert.deepEqual(sparse.lines, ["double claim"]);
  const fast = recorder();
  const every = sparseLog(fast.log, 20);
  every("a", {});
  every("a", {});
  every("a", {});
  await new Promise((r) => setTimeout(r, 40));
  every("b", {});
  assert.deepEqual(fast.lines, ["a", "b (and 2 more times since the last such line)"]);
  const infos: string[] = [];
  const quiet = sparseLog({ ...sparse.log, info: (m) => void infos.push(m) }, 60_000, "info");
  for (let i = 0; i < 100; i++) quiet("replaced", {});
  assert.deepEqual(infos, ["replaced"]);
  // A burst: "connected" 16 times a minute at most (a server changing its replica set every second).
  const burst = recorder();
  const connected = sparseLog({ ...burst.log, info: (m) => void burst.lines.push(m) }, 30, "info", 3);
  for (let i = 0; i < 10; i++) connected("connected", {});
  await new Promise((r) => setTimeout(r, 50));
  connected("connected", {});
  assert.deepEqual(burst.lines, ["connected", "connected", "connected", "connected (and 7 more times since the last such line)"]);
});

test("createClient refuses a bad cap at once, naming the option", async () => {
  const { createClient } = await import("../src/client/index.ts");
  const { Registry } = await import("prom-client");
  for (const [k, v] of [["maxReplicas", 0], ["maxServerAddresses", 1.5]] as const) {
    assert.throws(() => createClient({ name: "app-1", serverUrl: "http://127.0.0.1:1", registry: new Registry(), [k]: v }), new RegExp(`option ${k} must be a whole number`));
  }
});
