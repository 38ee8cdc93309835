import assert from "node:assert/strict";
import { test } from "node:test";
import { checkLabels, checkName, labelBytes, reservedLabelNames, utf8Bytes } from "../src/shared/names.ts";
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

test("label names Prometheus gives meaning to are refused, naming the label", () => {
  const limits = { maxLabels: 8, maxLabelValueLength: 64 };
  const reserved = [
    "job", "instance", "le", "quantile",
    "__address__", "__scheme__", "__metrics_path__", "__param_target", "__scrape_interval__", "__scrape_timeout__",
    "__name__", "__meta_promproxy_client", "__meta_promproxy_session_id", "__meta_anything", "__tmp_x", "__",
  ];
  for (const n of reserved) {
    const e = checkLabels({ env: "prod", [n]: "app-1:80" }, limits, "target labels");
    assert.match(e ?? "", new RegExp(`^target labels: the label name "${n}" is reserved: `), n);
  }
  assert.match(checkLabels({ job: "x" }, limits) ?? "", /job and instance .* identity/);
  assert.match(checkLabels({ le: "x" }, limits) ?? "", /histogram/);
  assert.match(checkLabels({ __address__: "x" }, limits) ?? "", /"__" belong to Prometheus/);
  assert.deepEqual([...reservedLabelNames].sort(), ["instance", "job", "le", "quantile"]);
  // Label names are case-sensitive in Prometheus: these are ordinary labels.
  for (const n of ["Job", "INSTANCE", "_job", "job_", "exported_instance", "instance_name", "_"]) {
    assert.equal(checkLabels({ [n]: "v" }, limits), undefined, n);
  }
});

test("label values are limited in UTF-8 bytes, at and over the limit, and must be well-formed", () => {
  const limits = { maxLabels: 4, maxLabelValueLength: 8 };
  assert.equal(checkLabels({ v: "12345678" }, limits), undefined, "8 ASCII bytes: at the limit");
  assert.match(checkLabels({ v: "123456789" }, limits) ?? "", /9 bytes long \(UTF-8\), the maximum is 8/);
  assert.equal(checkLabels({ v: "éééé" }, limits), undefined, "4 characters, 8 bytes");
  assert.match(checkLabels({ v: "ééééé" }, limits) ?? "", /10 bytes long/, "5 characters, 10 bytes");
  assert.equal(checkLabels({ v: "😀😀" }, limits), undefined, "2 emoji, 4 UTF-16 units, 8 bytes");
  assert.match(checkLabels({ v: "€€€" }, limits) ?? "", /9 bytes long/, "3 characters, 9 bytes");
  assert.match(checkLabels({ v: "a\ud800b" }, limits) ?? "", /not well-formed Unicode/);
  assert.match(checkLabels({ v: "\udc00" }, limits) ?? "", /not well-formed Unicode/);
  assert.equal(checkLabels({ v: "" }, limits), undefined);
  assert.equal(checkLabels({ a: "1", b: "2", c: "3", d: "4" }, limits), undefined, "4 labels: at the count limit");
  assert.match(checkLabels({ a: "1", b: "2", c: "3", d: "4", e: "5" }, limits) ?? "", /5 labels, the maximum is 4/);
  assert.equal(utf8Bytes("aé€😀"), 1 + 2 + 3 + 4);
  assert.equal(labelBytes({ a: "é", bb: "€" }), 1 + 2 + 2 + 3);
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
