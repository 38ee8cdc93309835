/**
 * The three things deploy/grafana/README.md ("Before use") tells a user to set in deploy/prometheus/alerts.yml,
 * done as written there on a copy and checked with promtool: the job names (named once each), the clients that
 * must always be present, and the runbook address. The rules as shipped are tested in test/deploy/deploy-grafana.test.ts.
 *
 * Needs `promtool` (Debian's `prometheus` package; scripts/install-test-deps.sh installs it).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { parse as parseYaml, stringify } from "yaml";

const root = fileURLToPath(new URL("../../", import.meta.url));
const rulesDir = path.join(root, "deploy/prometheus");
const readme = fs.readFileSync(path.join(root, "deploy/grafana/README.md"), "utf8");
const exec = promisify(execFile);

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  annotations?: Record<string, string>;
}

const rulesOf = (file: string): Rule[] => (parseYaml(fs.readFileSync(file, "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

/** The README's "Before use" section, and its fenced blocks of one language. */
const beforeUse = (() => {
  const start = readme.indexOf("## Before use");
  assert.ok(start >= 0, 'deploy/grafana/README.md has a "Before use" section');
  const end = readme.indexOf("\n## ", start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
})();
function blocks(lang: string): string[] {
  return [...beforeUse.matchAll(new RegExp("```" + lang + "\\n([^]*?)```", "g"))].map((m) => m[1]!);
}
/** The `sed` lines of the section's shell block that mentions `needle`. */
function sedLines(needle: string): string[] {
  const block = blocks("sh").find((b) => b.includes(needle));
  assert.ok(block, `a shell block in "Before use" for ${needle}`);
  const lines = block.split("\n").filter((l) => l.startsWith("sed "));
  assert.ok(lines.length > 0);
  return lines;
}

let tmp = "";
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-alerts-"));
});
after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** A fresh copy of deploy/prometheus/ to change. */
function copy(name: string): string {
  const dir = path.join(tmp, name);
  fs.cpSync(rulesDir, dir, { recursive: true });
  return dir;
}

async function sh(line: string, cwd: string): Promise<void> {
  await exec("sh", ["-c", line], { cwd });
}

async function promtool(args: string[], cwd: string): Promise<string> {
  try {
    const { stdout, stderr } = await exec("promtool", args, { cwd });
    return stdout + stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`promtool ${args.join(" ")} failed:\n${e.stdout ?? ""}${e.stderr ?? e.message}`);
  }
}

/**
 * Runs unit tests (the `tests:` of a promtool test file) against alerts.yml in `dir`, its annotations left out
 * (promtool compares them whole; the rules as shipped are tested with theirs in alerts.test.yml).
 */
async function unitTest(dir: string, tests: unknown[]): Promise<void> {
  const doc = parseYaml(fs.readFileSync(path.join(dir, "alerts.yml"), "utf8")) as { groups: { rules: Rule[] }[] };
  for (const r of doc.groups.flatMap((g) => g.rules)) delete r.annotations;
  fs.writeFileSync(path.join(dir, "bare.yml"), stringify(doc));
  const file = path.join(dir, "extra.test.yml");
  fs.writeFileSync(file, stringify({ rule_files: ["bare.yml"], evaluation_interval: "1m", tests }));
  assert.match(await promtool(["test", "rules", "extra.test.yml"], dir), /SUCCESS/);
}

/** An alert_rule_test entry that expects these label sets. */
const expect = (alertname: string, at: string, labels: Record<string, string>[]) => ({
  eval_time: at,
  alertname,
  exp_alerts: labels.map((l) => ({ exp_labels: l })),
});

test("alerts: the job names appear once each, in the recording rules every other rule reads", () => {
  const rules = rulesOf(path.join(rulesDir, "alerts.yml"));
  const naming = rules.filter((r) => /\bjob\s*=/.test(r.expr)).map((r) => [r.record ?? r.alert, r.expr]);
  assert.deepEqual(naming, [
    ["promproxy:server_up", 'up{job="promproxy-server"}'],
    ["promproxy:client_up", 'label_replace(up{job="promproxy"}, "client", "$1", "instance", "([^:]+)(?::[0-9]+)?")'],
  ]);
  for (const r of rules.filter((x) => x.alert)) assert.doesNotMatch(r.expr, /(?<![\w:])up(?![\w:])/, `${r.alert} reads promproxy:*_up, not up itself`);
});

test("alerts: renamed jobs, with the README's line: the rules follow, the old names are ignored", async () => {
  const dir = copy("jobs");
  for (const line of sedLines("my-proxy")) await sh(line, dir);
  assert.match(await promtool(["check", "rules", "alerts.yml"], dir), /SUCCESS/);
  const text = fs.readFileSync(path.join(dir, "alerts.yml"), "utf8");
  assert.deepEqual([...text.matchAll(/job="([^"]+)"/g)].map((m) => m[1]), ["my-proxy", "my-clients"]);
  await unitTest(dir, [
    {
      interval: "1m",
      input_series: [
        { series: 'up{job="my-proxy", instance="a:8080"}', values: "0x10" },
        { series: 'up{job="my-clients", instance="app-1"}', values: "0x10" },
        { series: 'up{job="promproxy-server", instance="z:8080"}', values: "0x10" },
        { series: 'up{job="promproxy", instance="old-1"}', values: "0x10" },
      ],
      alert_rule_test: [
        expect("PromproxyServerDown", "5m", [{ severity: "warning", job: "my-proxy", instance: "a:8080" }]),
        expect("PromproxyClientDown", "5m", [{ severity: "warning", job: "my-clients", instance: "app-1", client: "app-1" }]),
        expect("PromproxyServerAbsent", "15m", []),
      ],
    },
  ]);
});

test("alerts: a client listed as expected alerts for as long as it is missing, after the vanished retention too", async () => {
  const dir = copy("expected");
  const listed = blocks("yaml").find((b) => b.includes("promproxy:client_expected"));
  assert.ok(listed, "the README shows the list");
  const expr = /^\s+expr: (.*)$/m.exec(listed)![1]!;
  const file = path.join(dir, "alerts.yml");
  const text = fs.readFileSync(file, "utf8");
  const shipped = /(- record: promproxy:client_expected\n\s+expr: )(.*)\n/.exec(text);
  assert.ok(shipped, "alerts.yml has the record promproxy:client_expected");
  assert.equal(shipped[2], "vector(1) == 0", "empty as shipped");
  fs.writeFileSync(file, text.replace(shipped[0], `${shipped[1]}${expr}\n`));
  assert.match(await promtool(["check", "rules", "alerts.yml"], dir), /SUCCESS/);
  // billing-1 vanishes at 2m and leaves discovery at 12m (the retention); billing-2 is up as NAME:80
  // (Prometheus 2's view of a target without a port); other-1 is not listed and vanishes.
  await unitTest(dir, [
    {
      interval: "1m",
      input_series: [
        { series: 'up{job="promproxy", instance="billing-1"}', values: "1 1 0x10 stale" },
        { series: 'up{job="promproxy", instance="billing-2:80"}', values: "1x60" },
        { series: 'up{job="promproxy", instance="other-1"}', values: "1 1 0x10 stale" },
      ],
      alert_rule_test: [
        expect("PromproxyExpectedClientMissing", "6m", []),
        expect("PromproxyExpectedClientMissing", "7m", [{ severity: "warning", client: "billing-1" }]),
        expect("PromproxyClientDown", "60m", []),
        expect("PromproxyExpectedClientMissing", "60m", [{ severity: "warning", client: "billing-1" }]),
      ],
    },
  ]);
  // Shipped, the list is empty: the same clients raise no such alert.
  await unitTest(copy("shipped"), [
    {
      interval: "1m",
      input_series: [{ series: 'up{job="promproxy", instance="billing-1"}', values: "1 1 0x10 stale" }],
      alert_rule_test: [expect("PromproxyExpectedClientMissing", "60m", [])],
    },
  ]);
});

test("alerts: the runbook address, set with the README's line, keeps the rules and their unit tests green", async () => {
  const dir = copy("runbook");
  const [line] = sedLines("promproxy.invalid");
  const base = /s\|https:\/\/promproxy\.invalid\/runbook\|([^|]+)\|/.exec(line!)?.[1];
  assert.ok(base, `the line replaces the placeholder: ${line}`);
  await sh(line!, dir);
  for (const f of ["alerts.yml", "alerts.test.yml"]) assert.doesNotMatch(fs.readFileSync(path.join(dir, f), "utf8"), /promproxy\.invalid/, f);
  for (const r of rulesOf(path.join(dir, "alerts.yml")).filter((x) => x.alert)) {
    assert.equal(r.annotations?.["runbook_url"], `${base}#${r.alert!.toLowerCase()}`);
  }
  assert.match(await promtool(["test", "rules", "alerts.test.yml"], dir), /SUCCESS/);
});
