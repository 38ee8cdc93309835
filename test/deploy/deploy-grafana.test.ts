/**
 * The monitoring kit in deploy/: the Grafana dashboard (deploy/grafana/) and the Prometheus alert rules
 * (deploy/prometheus/). promtool checks the rules, the example configuration and every dashboard
 * expression, and runs the rules' unit tests, which must make every alert fire; and every PromQL
 * expression may only name metrics, labels and label values that a real server exports.
 *
 * Needs `promtool` (Debian's `prometheus` package; scripts/install-test-deps.sh installs it).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Code } from "@connectrpc/connect";
import { parse as parseYaml } from "yaml";
import { createClient, type PromproxyClient } from "../../src/client/index.ts";
import { createServer } from "../../src/server/server.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { proxyGet, testRegistry } from "../helpers.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const dashboardFile = path.join(root, "deploy/grafana/promproxy-server.json");
const rulesDir = path.join(root, "deploy/prometheus");
const rulesFile = path.join(rulesDir, "alerts.yml");
const rulesTestFile = path.join(rulesDir, "alerts.test.yml");
const exampleConfig = path.join(rulesDir, "prometheus.yml");

/**
 * Series that Prometheus makes itself, with the labels they may be selected by. Target labels
 * (`job`, `instance`) are allowed on every series.
 */
const prometheusSeries: Record<string, string[]> = {
  up: [],
  ALERTS: ["alertname", "alertstate", "severity"],
};
const targetLabels = ["job", "instance"];

// ---------------------------------------------------------------------------------------------------------
// PromQL, just enough to find metric names, label names and label values.

type Token = { kind: "ident" | "string" | "number" | "punct"; text: string };

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s+|#[^\n]*|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)|([a-zA-Z_:][a-zA-Z0-9_:]*)|((?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[a-zA-Z0-9]*)|(=~|!~|!=|==|<=|>=|[-+*/%^=<>(){}[\],@])/y;
  let at = 0;
  while (at < expr.length) {
    re.lastIndex = at;
    const m = re.exec(expr);
    if (!m) throw new Error(`cannot tokenize PromQL at ${JSON.stringify(expr.slice(at, at + 20))} in: ${expr}`);
    at = re.lastIndex;
    if (m[1] !== undefined) tokens.push({ kind: "string", text: unquote(m[1]) });
    else if (m[2] !== undefined) tokens.push({ kind: "ident", text: m[2] });
    else if (m[3] !== undefined) tokens.push({ kind: "number", text: m[3] });
    else if (m[4] !== undefined) tokens.push({ kind: "punct", text: m[4] });
  }
  return tokens;
}

function unquote(s: string): string {
  if (s.startsWith("`")) return s.slice(1, -1);
  return s.slice(1, -1).replace(/\\(.)/g, "$1");
}

const aggregators = new Set(["sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile"]);
const grouping = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);
const otherKeywords = new Set(["and", "or", "unless", "offset", "bool", "atan2", "inf", "nan"]);
const functions = new Set(
  (
    "abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp clamp_max clamp_min cos cosh " +
    "count_over_time days_in_month day_of_month day_of_week day_of_year deg delta deriv end exp floor histogram_quantile " +
    "holt_winters hour idelta increase irate label_join label_replace last_over_time ln log10 log2 max_over_time min_over_time " +
    "minute month pi predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_desc " +
    "sqrt start stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp vector year"
  ).split(" "),
);

interface Matcher {
  label: string;
  op: string;
  value: string;
}
interface Selector {
  metric: string;
  matchers: Matcher[];
}
interface ParsedExpr {
  selectors: Selector[];
  /** Label names in by/without/on/ignoring/group_left/group_right. */
  groupingLabels: string[];
}

function parsePromQL(expr: string): ParsedExpr {
  const t = tokenize(expr);
  const selectors: Selector[] = [];
  const groupingLabels: string[] = [];
  const isPunct = (i: number, p: string) => t[i]?.kind === "punct" && t[i]?.text === p;
  const readMatchers = (i: number): [Matcher[], number] => {
    // t[i] is "{"
    const matchers: Matcher[] = [];
    i++;
    while (!isPunct(i, "}")) {
      const label = t[i];
      const op = t[i + 1];
      const value = t[i + 2];
      if (label?.kind !== "ident" || op?.kind !== "punct" || value?.kind !== "string") {
        throw new Error(`bad label matcher near token ${i} in: ${expr}`);
      }
      matchers.push({ label: label.text, op: op.text, value: value.text });
      i += 3;
      if (isPunct(i, ",")) i++;
    }
    return [matchers, i + 1];
  };
  for (let i = 0; i < t.length; ) {
    const tok = t[i]!;
    if (tok.kind === "punct" && tok.text === "[") {
      while (i < t.length && !isPunct(i, "]")) i++; // a range or subquery: durations only
      i++;
    } else if (tok.kind === "punct" && tok.text === "{") {
      const [matchers, next] = readMatchers(i);
      const name = matchers.find((m) => m.label === "__name__" && m.op === "=");
      if (!name) throw new Error(`a selector without a metric name in: ${expr}`);
      selectors.push({ metric: name.value, matchers: matchers.filter((m) => m !== name) });
      i = next;
    } else if (tok.kind === "ident") {
      const word = tok.text;
      if (grouping.has(word)) {
        i++;
        if (isPunct(i, "(")) {
          for (i++; !isPunct(i, ")"); i++) if (t[i]!.kind === "ident") groupingLabels.push(t[i]!.text);
          i++;
        }
      } else if (aggregators.has(word) || otherKeywords.has(word.toLowerCase())) {
        i++;
      } else if (isPunct(i + 1, "(")) {
        if (!functions.has(word)) throw new Error(`unknown PromQL function ${word}() in: ${expr}`);
        i++;
      } else if (isPunct(i + 1, "{")) {
        const [matchers, next] = readMatchers(i + 1);
        selectors.push({ metric: word, matchers });
        i = next;
      } else {
        selectors.push({ metric: word, matchers: [] });
        i++;
      }
    } else {
      i++;
    }
  }
  return { selectors, groupingLabels };
}

// ---------------------------------------------------------------------------------------------------------
// What the checks read: the expressions of the dashboard and the rules, and what a real server exports.

/** Grafana's variables, replaced by what a user would see; also makes the expressions valid PromQL. */
function substituteGrafanaVariables(expr: string): string {
  return expr
    .replace(/\$__rate_interval|\$__interval|\$__range/g, "5m")
    .replace(/\$proxied_job\b/g, "promproxy")
    .replace(/\$job\b/g, "promproxy-server")
    .replace(/\$instance\b/g, ".*");
}

interface Expression {
  where: string;
  expr: string;
  /** A recording rule that may list constants (`vector(1)`) instead of selecting a metric. */
  constant?: boolean;
  /** A label that a `label_values(expr, label)` variable lists. */
  listsLabel?: string;
}

function dashboardExpressions(): Expression[] {
  const dashboard = JSON.parse(fs.readFileSync(dashboardFile, "utf8")) as Record<string, any>;
  const out: Expression[] = [];
  const walk = (panels: any[]) => {
    for (const p of panels ?? []) {
      for (const target of p.targets ?? []) {
        if (typeof target.expr === "string") out.push({ where: `panel "${p.title}" ${target.refId}`, expr: substituteGrafanaVariables(target.expr) });
      }
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  for (const a of dashboard.annotations?.list ?? []) {
    if (typeof a.expr === "string") out.push({ where: `annotation "${a.name}"`, expr: substituteGrafanaVariables(a.expr) });
  }
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type !== "query") continue;
    const q: string = typeof v.query === "string" ? v.query : v.query.query;
    const m = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/.exec(q.trim());
    assert.ok(m, `variable ${v.name}: want label_values(SELECTOR, LABEL), got ${q}`);
    out.push({ where: `variable $${v.name}`, expr: substituteGrafanaVariables(m[1]!), listsLabel: m[2]! });
  }
  return out;
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
}

function rules(): Rule[] {
  const doc = parseYaml(fs.readFileSync(rulesFile, "utf8")) as { groups: { rules: Rule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

function ruleExpressions(): Expression[] {
  return rules().map((r) => ({ where: `rule ${r.alert ?? r.record}`, expr: r.expr, constant: r.record !== undefined && /\bvector\(/.test(r.expr) }));
}

/**
 * The series the recording rules make, with the labels they carry: those of the metrics they select, and those
 * label_replace() sets (the first of its four strings).
 */
function recordedSeries(exported: Exported): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const r of rules()) {
    if (!r.record) continue;
    const labels = new Set<string>(targetLabels);
    for (const s of parsePromQL(r.expr).selectors) for (const l of exported.labels.get(s.metric) ?? out.get(s.metric) ?? []) labels.add(l);
    for (const m of r.expr.matchAll(/"([a-zA-Z_][a-zA-Z0-9_]*)",\s*"[^"]*",\s*"[^"]*",\s*"[^"]*"\s*\)/g)) labels.add(m[1]!); // label_replace(v, DST, ...)
    out.set(r.record, labels);
  }
  return out;
}

interface Exported {
  /** Sample name (with _bucket, _sum, _count) → label names seen on it. */
  labels: Map<string, Set<string>>;
  /** Label → the values a selector may ask for. */
  values: Map<string, Set<string>>;
}

/** Parses the text exposition format (0.0.4) into sample names and their label names. */
function parseExposition(text: string): Map<string, Set<string>> {
  const labels = new Map<string, Set<string>>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const set = labels.get(m[1]!) ?? new Set<string>();
    for (const l of (m[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g)) set.add(l[1]!);
    labels.set(m[1]!, set);
  }
  return labels;
}

/** Starts a real server with an embedded client, scrapes through it, and reads its /metrics. */
async function exportedByARealServer(): Promise<Exported> {
  const server = createServer({ logger: silentLogger });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  let client: PromproxyClient | undefined;
  try {
    client = createClient({
      name: "app-1",
      serverUrl: `http://127.0.0.1:${port}`,
      registry: testRegistry("app-1"),
      logger: silentLogger,
      backoff: { initialMs: 50, maxMs: 500 },
    });
    await client.start({ timeoutMs: 10_000 });
    for (const uri of ["http://app-1/metrics", "http://app-1/metrics", "http://nobody/metrics", "http://app-1/not-served"]) {
      await proxyGet(port, uri);
    }
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    const labels = parseExposition(text);
    // The outcomes a scrape can end with, as the counter's help lists them.
    const help = /^# HELP promproxy_scrapes_total (.*)$/m.exec(text);
    assert.ok(help, "promproxy_scrapes_total has a HELP line");
    const outcomes = new Set([...help[1]!.matchAll(/\b[a-z]+(?:_[a-z]+)*\b/g)].map((m) => m[0]));
    for (const seen of ["success", "unknown_client", "not_found"]) assert.ok(outcomes.has(seen), `the help lists the outcome ${seen}`);
    assert.match(text, /^promproxy_scrapes_total\{outcome="success"\} 2$/m);
    // A client stream's result: accepted, or the name of the Connect code it was refused with.
    const results = new Set(["accepted", "unknown", ...Object.values(Code).filter((v): v is string => typeof v === "string")]);
    assert.match(text, /^promproxy_client_streams_total\{result="accepted"\} 1$/m);
    return { labels, values: new Map([["outcome", outcomes], ["result", results]]) };
  } finally {
    await client?.stop();
    await server.close({ graceMs: 500 });
  }
}

/** Every problem with one expression: metrics the server does not export, labels they do not carry, values never set. */
function problems(e: Expression, exported: Exported): string[] {
  const out: string[] = [];
  let parsed: ParsedExpr;
  try {
    parsed = parsePromQL(e.expr);
  } catch (err) {
    return [`${e.where}: ${(err as Error).message}`];
  }
  if (parsed.selectors.length === 0 && !e.constant) out.push(`${e.where}: selects no metric: ${e.expr}`);
  const recorded = recordedSeries(exported);
  const labelsOf = (metric: string): Set<string> | undefined => {
    const own = exported.labels.get(metric) ?? recorded.get(metric) ?? (metric in prometheusSeries ? new Set(prometheusSeries[metric]) : undefined);
    return own && new Set([...own, ...targetLabels]);
  };
  const inExpr = new Set<string>();
  for (const s of parsed.selectors) {
    const labels = labelsOf(s.metric);
    if (!labels) {
      out.push(`${e.where}: the metric ${s.metric} is not exported by the server (nor made by Prometheus)`);
      continue;
    }
    for (const l of labels) inExpr.add(l);
    for (const m of s.matchers) {
      if (!labels.has(m.label)) out.push(`${e.where}: ${s.metric} has no label ${m.label}`);
      const known = exported.values.get(m.label);
      if (known && /^[\w-]+(\|[\w-]+)*$/.test(m.value)) { // alternatives without regex syntax
        for (const v of m.value.split("|")) if (!known.has(v)) out.push(`${e.where}: ${m.label}="${v}" is never set by the server`);
      }
    }
  }
  for (const l of [...parsed.groupingLabels, ...(e.listsLabel ? [e.listsLabel] : [])]) {
    if (!inExpr.has(l) && l !== "le") out.push(`${e.where}: groups by or lists ${l}, a label none of its metrics has`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// promtool

function promtoolBinary(): string {
  for (const dir of (process.env["PATH"] ?? "").split(path.delimiter)) {
    const p = path.join(dir, "promtool");
    if (dir && fs.existsSync(p)) return p;
  }
  throw new Error("these tests need promtool on the PATH: install it with `apt-get install -y prometheus` (scripts/install-test-deps.sh does)");
}

async function promtool(args: string[], cwd = rulesDir): Promise<string> {
  try {
    const { stdout, stderr } = await promisify(execFile)(promtoolBinary(), args, { cwd });
    return stdout + stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`promtool ${args.join(" ")} failed:\n${e.stdout ?? ""}${e.stderr ?? e.message}`);
  }
}

// ---------------------------------------------------------------------------------------------------------

describe("deploy: Prometheus rules and their unit tests", () => {
  test("promtool check rules accepts alerts.yml", async () => {
    const out = await promtool(["check", "rules", "alerts.yml"]);
    assert.match(out, /SUCCESS: \d+ rules found/);
  });

  test("promtool check config accepts the example prometheus.yml (and the rules it loads)", async () => {
    const out = await promtool(["check", "config", "prometheus.yml"]);
    assert.match(out, /SUCCESS/);
    assert.ok(fs.existsSync(exampleConfig));
  });

  test("promtool test rules passes, and every alert fires in some test", async () => {
    const out = await promtool(["test", "rules", "alerts.test.yml"]);
    assert.match(out, /SUCCESS/);
    const tests = parseYaml(fs.readFileSync(rulesTestFile, "utf8")) as {
      rule_files: string[];
      tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
    };
    assert.deepEqual(tests.rule_files, ["alerts.yml"]);
    const fired = new Set(tests.tests.flatMap((t) => (t.alert_rule_test ?? []).filter((a) => (a.exp_alerts ?? []).length > 0).map((a) => a.alertname)));
    const alerts = rules().flatMap((r) => (r.alert ? [r.alert] : []));
    assert.ok(alerts.length >= 10, "the rule file holds the alerts");
    assert.deepEqual(alerts.filter((a) => !fired.has(a)), [], "alerts that no unit test makes fire");
    assert.deepEqual([...fired].filter((a) => !alerts.includes(a)), [], "unit tests for alerts that do not exist");
  });

  test("every alert links its runbook section in deploy/grafana/README.md (runbook_url, under one base URL)", () => {
    const readme = fs.readFileSync(path.join(root, "deploy/grafana/README.md"), "utf8");
    const doc = parseYaml(fs.readFileSync(rulesFile, "utf8")) as { groups: { rules: (Rule & { annotations?: Record<string, string> })[] }[] };
    for (const r of doc.groups.flatMap((g) => g.rules)) {
      if (!r.alert) continue;
      assert.deepEqual(Object.keys(r.annotations ?? {}).sort(), ["description", "runbook_url", "summary"], r.alert);
      assert.equal(r.annotations?.["runbook_url"], `https://promproxy.invalid/runbook#${r.alert.toLowerCase()}`, r.alert);
      assert.match(readme, new RegExp(`^#+ ${r.alert}$`, "m"), `README.md has a section for ${r.alert}`);
    }
  });
});

describe("deploy: Grafana dashboard", () => {
  test("the dashboard takes its datasource as the ${DS_PROMETHEUS} input and has $job and $instance variables", () => {
    const d = JSON.parse(fs.readFileSync(dashboardFile, "utf8")) as Record<string, any>;
    assert.deepEqual(
      d.__inputs.map((i: any) => [i.name, i.type, i.pluginId]),
      [["DS_PROMETHEUS", "datasource", "prometheus"]],
    );
    const names = d.templating.list.map((v: any) => v.name);
    for (const n of ["job", "instance"]) assert.ok(names.includes(n), `variable $${n}`);
    const ids = new Set<number>();
    const walk = (panels: any[]) => {
      for (const p of panels ?? []) {
        assert.ok(!ids.has(p.id), `panel id ${p.id} is unique`);
        ids.add(p.id);
        if (p.type !== "row") assert.deepEqual(p.datasource, { type: "prometheus", uid: "${DS_PROMETHEUS}" }, `panel "${p.title}"`);
        for (const t of p.targets ?? []) {
          assert.deepEqual(t.datasource, { type: "prometheus", uid: "${DS_PROMETHEUS}" }, `panel "${p.title}"`);
          if (/promproxy_/.test(t.expr)) assert.match(t.expr, /job=~"\$job", instance=~"\$instance"/, `panel "${p.title}" is filtered by $job and $instance`);
        }
        walk(p.panels);
      }
    };
    walk(d.panels);
  });

  test("promtool check rules accepts every dashboard expression (each wrapped in a recording rule)", async () => {
    const exprs = dashboardExpressions();
    assert.ok(exprs.length >= 15);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-dashboard-"));
    try {
      const file = path.join(dir, "dashboard-exprs.yml");
      const doc = { groups: [{ name: "dashboard", rules: exprs.map((e, i) => ({ record: `dashboard:expr_${i}:check`, expr: e.expr })) }] };
      fs.writeFileSync(file, JSON.stringify(doc, null, 2)); // JSON is YAML
      try {
        await promtool(["check", "rules", file], dir);
      } catch (err) {
        const listing = exprs.map((e, i) => `  expr_${i} (${e.where}): ${e.expr}`).join("\n");
        throw new Error(`${(err as Error).message}\n${listing}`);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("deploy: every expression refers only to what a real server exports", () => {
  let exported: Exported;
  before(async () => {
    exported = await exportedByARealServer();
  });

  test("the checker itself catches a wrong metric, a wrong label and a wrong outcome", () => {
    const check = (expr: string) => problems({ where: "t", expr }, exported);
    assert.deepEqual(check('sum by (instance, outcome) (rate(promproxy_scrapes_total{job=~"x", outcome=~"success|timeout"}[5m]))'), []);
    assert.match(check("rate(promproxy_scrape_total[5m])").join(), /promproxy_scrape_total is not exported/);
    assert.match(check('promproxy_clients_connected{outcome="success"}').join(), /has no label outcome/);
    assert.match(check('rate(promproxy_scrapes_total{outcome=~"success|auth-busy"}[5m])').join(), /outcome="auth-busy" is never set/);
    assert.match(check('rate(promproxy_client_streams_total{result="Unauthorized"}[5m])').join(), /result="Unauthorized" is never set/);
    assert.match(check("sum by (replica) (promproxy_ready)").join(), /groups by or lists replica/);
    assert.match(check("sum(frobnicate(promproxy_ready))").join(), /unknown PromQL function frobnicate/);
    assert.deepEqual(check('histogram_quantile(0.99, sum by (le) (rate(promproxy_scrape_duration_seconds_bucket{outcome="success"}[5m])))'), []);
    assert.match(check("promproxy_scrape_duration_seconds{quantile=\"0.99\"}").join(), /promproxy_scrape_duration_seconds is not exported/);
  });

  test("the server exports every metric the kit relies on", () => {
    for (const name of [
      "promproxy_ready",
      "promproxy_clients_connected",
      "promproxy_client_streams_total",
      "promproxy_scrapes_total",
      "promproxy_scrapes_in_flight",
      "promproxy_scrape_duration_seconds_bucket",
      "promproxy_relayed_bytes_total",
    ]) {
      assert.ok(exported.labels.has(name), `${name} in /metrics`);
    }
  });

  test("dashboard expressions", () => {
    assert.deepEqual(dashboardExpressions().flatMap((e) => problems(e, exported)), []);
  });

  test("alert rule expressions", () => {
    assert.deepEqual(ruleExpressions().flatMap((e) => problems(e, exported)), []);
  });
});
