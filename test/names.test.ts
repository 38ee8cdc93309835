import assert from "node:assert/strict";
import { test } from "node:test";
import { checkLabels, checkName } from "../src/shared/names.ts";
import { pathMatches } from "../src/shared/paths.ts";

test("names are DNS host names, compared in lower case", () => {
  assert.deepEqual(checkName("App-1"), { name: "app-1" });
  assert.deepEqual(checkName("node-7.eu-west.example"), { name: "node-7.eu-west.example" });
  assert.deepEqual(checkName("a".repeat(63)), { name: "a".repeat(63) });
  for (const bad of ["", "-app", "app-", "a..b", "a_b", "app 1", "app/1", "a".repeat(64), `${"a".repeat(63)}.`.repeat(4) + "a", "ä"]) {
    assert.ok("error" in checkName(bad), `expected ${JSON.stringify(bad)} to be refused`);
  }
  const long = checkName(Array(64).fill("abc").join("."));
  assert.ok("error" in long && /253/.test(long.error));
});

test("labels follow Prometheus' rules and limits", () => {
  const limits = { maxLabels: 2, maxLabelValueLength: 5 };
  assert.equal(checkLabels({ env: "prod", team: "a" }, limits), undefined);
  assert.match(checkLabels({ a: "1", b: "2", c: "3" }, limits) ?? "", /3 labels, the maximum is 2/);
  assert.match(checkLabels({ "1x": "v" }, limits) ?? "", /not a valid label name/);
  assert.match(checkLabels({ "a-b": "v" }, limits) ?? "", /not a valid label name/);
  assert.match(checkLabels({ __address__: "v" }, limits) ?? "", /reserved/);
  assert.match(checkLabels({ env: "toolong" }, limits) ?? "", /maximum is 5/);
});

test("target paths: empty means /metrics, / means any, else a segment prefix", () => {
  assert.ok(pathMatches("", "/metrics"));
  assert.ok(pathMatches("", "/metrics?x=1"));
  assert.ok(!pathMatches("", "/metrics/x"));
  assert.ok(!pathMatches("", "/other"));
  assert.ok(pathMatches("/", "/anything/at/all"));
  assert.ok(pathMatches("/probe", "/probe?target=x"));
  assert.ok(pathMatches("/probe", "/probe/sub"));
  assert.ok(!pathMatches("/probe", "/prober"));
  assert.ok(pathMatches("/a/", "/a/b"));
});
