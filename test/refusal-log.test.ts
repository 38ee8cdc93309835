/**
 * Refusals logged once per interval (src/shared/refusal-log.ts): a flood is one line, then a count; other kinds
 * are still said at once, and a flood of distinct kinds past the cap shares one line.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createRefusalLogs } from "../src/shared/refusal-log.ts";

function recording() {
  const lines: { level: string; message: string; fields: Record<string, unknown> }[] = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => void lines.push({ level, message, fields: fields ?? {} });
  return { lines, logger: { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") } };
}

test("a flood of one kind is one line and a count; another kind is still said at once", () => {
  const { lines, logger } = recording();
  const logs = createRefusalLogs(logger, 60_000, "info");
  for (let i = 0; i < 1_000; i++) logs.refused("InvalidArgument 10.0.0.66", "client refused", { name: `bad-${i}` });
  logs.refused("InvalidArgument 10.0.0.7", "client refused", { name: "legit-misconfig" });
  assert.deepEqual(lines.map((l) => l.fields["name"]), ["bad-0", "legit-misconfig"], "the stranger's first, and the other address's at once");
  logs.close();
  assert.equal(lines.length, 3);
  assert.equal(lines[2]!.message, "client refused (999 more refused in the last 60s)");
  assert.deepEqual(new Set(lines.map((l) => l.level)), new Set(["info"]));
});

test("past the cap of kinds, the rest share one log: distinct kinds cannot make a line each", () => {
  const { lines, logger } = recording();
  const logs = createRefusalLogs(logger, 60_000, "warn", 4);
  for (let i = 0; i < 100; i++) logs.refused(`kind-${i}`, "refused", { i });
  assert.equal(lines.length, 5, "4 kinds of their own, then one line for all the others");
  logs.close();
  assert.equal(lines.length, 6);
  assert.equal(lines[5]!.message, "refused (95 more refused in the last 60s)");
});

test("a kind unseen for an interval gives its place up: new kinds are said at once again after a flood of distinct ones", (t) => {
  t.mock.timers.enable({ apis: ["Date", "setTimeout"], now: 1_000_000 });
  const { lines, logger } = recording();
  const logs = createRefusalLogs(logger, 60_000, "info", 4);
  for (let i = 0; i < 10; i++) logs.refused(`stranger-${i}`, "refused", { i });
  assert.equal(lines.length, 5, "4 of their own, one shared");
  t.mock.timers.tick(61_000);
  const before = lines.length;
  logs.refused("legit", "refused", { who: "legit" });
  assert.deepEqual(lines.slice(before).map((l) => l.fields["who"] ?? l.message), ["legit"], "said at once");
  logs.close();
});
