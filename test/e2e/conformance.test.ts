/**
 * The conformance kit as a user runs it (`promproxy conformance --client ...`,
 * a child process): the Node, Go and Python clients pass every scenario, and
 * a client that breaks one rule (test/e2e/fixtures/broken-clients/client.ts
 * with one flag) fails the scenario that checks it, with exit code 1; the same
 * client without flags passes those scenarios, so each failure is the flag's.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { scenarioIds } from "../../src/conformance/run-conformance.ts";
import { node22, repoRoot, runCli } from "./prometheus.ts";

/** The table's row for a scenario: its result and detail. */
function row(table: string, id: string): { result: string; detail: string } | undefined {
  const m = new RegExp(`^\\| ${id} \\| ([^|]+) \\| [^|]+ \\| (.*) \\|$`, "m").exec(table);
  return m ? { result: (m[1] ?? "").trim(), detail: m[2] ?? "" } : undefined;
}

/** Runs the kit on a client command; asserts every scenario passes (the optional features may be "not offered") and returns the table. */
async function passesKit(client: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const kit = runCli(["conformance", "--client", client], env);
  const { code } = await kit.exited;
  const out = kit.stdout();
  const context = `\nstdout:\n${out}\nstderr:\n${kit.stderr()}`;
  assert.equal(code, 0, `exit code${context}`);
  for (const id of scenarioIds) {
    const r = row(out, id);
    assert.ok(r, `a row for ${id}${context}`);
    const optional = id === "head" || id === "single-result" || id === "replica-set"; // optional features
    const want = optional && r.result === "not offered" ? "not offered" : "pass";
    assert.equal(r.result, want, `${id}: ${r.detail}${context}`);
  }
  assert.match(out, /^\d+ passed, 0 failed, 0 n\/a, [0-3] not offered of \d+ scenarios in [\d.]+ s: PASS$/m);
  return out;
}

test("the Node client passes the conformance kit", { timeout: 150_000 }, async (t) => {
  const out = await passesKit(`${node22} examples/conformance/node-client.ts {server} {name}`);
  t.diagnostic(out.split("\n").filter((l) => / passed, /.test(l)).join(""));
});

test("the Go and Python example clients pass the conformance kit", { timeout: 300_000 }, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "promproxy-polyglot-"));
  const run = promisify(execFile);
  try {
    await run("bash", [path.join(repoRoot, "examples/go/build.sh"), path.join(dir, "go")], { maxBuffer: 16 << 20 });
    const go = await passesKit(`${path.join(dir, "go", "promproxy-go-example")} {server} {name} {size}`);
    t.diagnostic(`Go: ${go.split("\n").filter((l) => / passed, /.test(l)).join("")}`);
    assert.equal(row(go, "replica-set")?.result, "pass", "the Go client offers the feature replica-set");
    const python = process.env["PROMPROXY_PYTHON"] ?? "/usr/bin/python3";
    const stubs = path.join(dir, "py");
    await mkdir(stubs, { recursive: true });
    await run(python, ["-m", "grpc_tools.protoc", "-I", "proto", `--python_out=${stubs}`, `--grpc_python_out=${stubs}`, "proto/promproxy/v1/scrape.proto"], { cwd: repoRoot });
    const py = await passesKit(`${python} examples/python/client.py {server} {name} {size}`, { PYTHONPATH: stubs, PYTHONDONTWRITEBYTECODE: "1" });
    t.diagnostic(`Python: ${py.split("\n").filter((l) => / passed, /.test(l)).join("")}`);
    assert.equal(row(py, "replica-set")?.result, "pass", "the Python client offers the feature replica-set");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a client that ignores credit and chunk limits and never pongs fails, exit code 1", { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "promproxy-conformance-"));
  try {
    const rawClient = pathToFileURL(path.join(repoRoot, "test/e2e/raw-client.ts")).href;
    const bad = path.join(dir, "bad-client.mts");
    await writeFile(
      bad,
      `import { connectRaw } from ${JSON.stringify(rawClient)};
const [url, name] = process.argv.slice(2);
const body = Buffer.from("# TYPE x gauge\\n" + Array.from({ length: 500 }, (_, i) => \`x{i="\${i}"} \${i}\\n\`).join(""));
const c = await connectRaw(url, { name }, { autoPong: false });
const served = new Set();
const timer = setInterval(() => {
  for (const f of c.received) {
    if (f.frame.case !== "order" || served.has(f.frame.value.scrapeId)) continue;
    const id = f.frame.value.scrapeId;
    served.add(id);
    c.head(id, 200, { "content-type": "text/plain; version=0.0.4" });
    for (let o = 0; o < body.length; o += 4096) c.chunk(id, body.subarray(o, o + 4096));
    c.end(id);
  }
}, 20);
process.once("SIGTERM", () => { clearInterval(timer); c.abort(); });
await c.ended;
clearInterval(timer);
`,
    );
    const kit = runCli(["conformance", "--only", "credit,ping-pong", "--client", `${node22} ${bad} {server} {name}`]);
    const { code } = await kit.exited;
    const out = kit.stdout();
    const context = `\nstdout:\n${out}\nstderr:\n${kit.stderr()}`;
    assert.equal(code, 1, `exit code${context}`);
    assert.match(row(out, "credit")?.detail ?? "", /a chunk of 4096 bytes, over max_chunk_bytes 1024/, context);
    assert.equal(row(out, "credit")?.result, "**FAIL**", context);
    assert.match(row(out, "ping-pong")?.detail ?? "", /no pong for ping/, context);
    assert.match(out, /^0 passed, 2 failed, 0 n\/a, 0 not offered of 2 scenarios/m, context);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** The test client on the raw frames; without flags it follows every rule. */
const fixture = `${node22} test/e2e/fixtures/broken-clients/client.ts {server} {name} {size}`;

/** Each broken variant, the scenarios that must catch it, and what their detail must say. */
const variants: { flag: string; caughtBy: string[]; detail: RegExp; verdict?: string }[] = [
  { flag: "no-watchdog", caughtBy: ["silence"], detail: /still up .* into a silence: no watchdog/ },
  { flag: "no-welcome-timeout", caughtBy: ["welcome-timeout"], detail: /still waiting for a welcome .*: no welcome timeout/ },
  {
    flag: "retry-fatal",
    caughtBy: ["fatal-unauthenticated", "fatal-permission-denied", "fatal-invalid-argument"],
    detail: /attempts: the client retried after [A-Z_]+, which retrying cannot fix/,
  },
  { flag: "exit-zero-on-fatal", caughtBy: ["fatal-unauthenticated"], detail: /exited with code 0 after UNAUTHENTICATED; want a non-zero exit code/ },
  { flag: "no-half-close", caughtBy: ["leave"], detail: /the stream broke instead of a half-close/ },
  { flag: "wait-forever-on-leave", caughtBy: ["leave-unanswered"], detail: /still waits for the server .* after its half-close/ },
  // A loaded machine may stretch 100 ms to 0.2 s; the growth check catches it then.
  { flag: "constant-retry", caughtBy: ["backoff"], detail: /retried after 0\.1\ds|the delays grew from \d\.\d+s to only/ },
  { flag: "no-jitter", caughtBy: ["reset"], detail: /no redial came before the full length of its backoff step .*: no jitter/ },
  { flag: "redial-at-once", caughtBy: ["reset"], detail: /redial 1 after a stream reset just after its welcome came 0\.\d\ds after the reset, under/ },
  { flag: "restart-backoff-on-welcome", caughtBy: ["reset"], detail: /redial [23] after a stream reset just after its welcome came \d\.\d\ds after the reset, under .* the backoff grows/ },
  { flag: "never-restart-backoff", caughtBy: ["reset"], detail: /redialled as late as \d\.\d\ds after the reset of a stream that lived 1\d\.\d\ds/ },
  { flag: "big-chunks", caughtBy: ["credit", "chunk-default"], detail: /a chunk of \d+ bytes, over max_chunk_bytes (1024|65536)/ },
  { flag: "unknown-first-fails", caughtBy: ["unknown-first"], detail: /the client ended the stream after a frame of an unknown kind/ },
  { flag: "no-pong", caughtBy: ["ping-pong", "duplicate-name"], detail: /no pong for ping|the second client took the name/ },
  { flag: "ignore-cancel", caughtBy: ["cancel-mid-body"], detail: /sent \d+ chunks .* after the Cancel/ },
  { flag: "no-order-timeout", caughtBy: ["timeout"], detail: /sent \d+ chunks after its timeout/ },
  { flag: "serve-any-path", caughtBy: ["not-found"], detail: /answered with a head \(status 200\); want an End with NOT_FOUND/ },
  { flag: "unknown-frames-fail", caughtBy: ["unknown-frames"], detail: /the stream ended|no pong|did not end/ },
  { flag: "ignore-credit", caughtBy: ["credit"], detail: /bytes of credit left/ },
  { flag: "dial-by-address", caughtBy: ["server-name"], detail: /:authority "127\.0\.0\.1:\d+", want "localhost:\d+"/ },
  { flag: "early-watchdog", caughtBy: ["silence"], detail: /dropped the stream after \d\.\ds of silence, before 3 heartbeat intervals/ },
  { flag: "pong-before-welcome", caughtBy: ["hello"], detail: /sent a pong before the welcome/ },
  { flag: "wrong-content-length", caughtBy: ["scrape"], detail: /content-length \d+, but \d+ body bytes/ },
  { flag: "body-on-head", caughtBy: ["head"], detail: /chunks \(\d+ bytes\) for a HEAD order/ },
  { flag: "keep-unknown-credit", caughtBy: ["unknown-ids"], detail: /bytes of credit left|the body was larger/ },
  { flag: "end-on-any-cancel", caughtBy: ["cancel-after-end"], detail: /an end after its end|never ordered/ },
  { flag: "exit-on-clean-end", caughtBy: ["reconnect-end"], detail: /the client exited/ },
  { flag: "exit-on-refused-connection", caughtBy: ["reconnect-restart"], detail: /the client exited/ },
  { flag: "ignore-retry-hint", caughtBy: ["retry-hint"], detail: /retry 1 came \d\.\d\ds after a refusal hinting 2\.50s/ },
  { flag: "trust-retry-hint", caughtBy: ["retry-hint-hostile"], detail: /retried 0\.\d\ds after a hint of "0"/ },
  { flag: "fixed-welcome-timeout", caughtBy: ["welcome-patience"], detail: /the client gave up after \d+\.\d\ds, then after \d+\.\d\ds: the wait for a welcome doubles/ },
  { flag: "small-body", caughtBy: ["credit", "chunk-default"], detail: /the rule was not exercised: serve at least \{size\} bytes/, verdict: "**n/a**" },
];

/** Runs `jobs` at most `n` at a time, each to its end (a failed one does not leave the others running). */
async function pool<T>(n: number, jobs: (() => Promise<T>)[]): Promise<PromiseSettledResult<T>[]> {
  const results: PromiseSettledResult<T>[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    for (let i = next++; i < jobs.length; i = next++) {
      const job = jobs[i] as () => Promise<T>;
      results[i] = await job().then((value) => ({ status: "fulfilled", value }) as const, (reason: unknown) => ({ status: "rejected", reason }) as const);
    }
  }));
  return results;
}

test("each broken client fails the scenario that checks its rule, exit code 1; unbroken, it passes them", { timeout: 240_000 }, async (t) => {
  const caught = [...new Set(variants.flatMap((v) => v.caughtBy))];
  const runs = [
    async () => {
      const kit = runCli(["conformance", "--concurrency", "6", "--only", caught.join(","), "--client", fixture]);
      const { code } = await kit.exited;
      const out = kit.stdout();
      const context = `\nstdout:\n${out}\nstderr:\n${kit.stderr()}`;
      assert.equal(code, 0, `the unbroken client: exit code${context}`);
      for (const id of caught) assert.equal(row(out, id)?.result, "pass", `the unbroken client: ${id}${context}`);
      return "unbroken: all pass";
    },
    ...variants.map((v) => async () => {
      const kit = runCli(["conformance", "--only", v.caughtBy.join(","), "--client", `${fixture} --${v.flag}`]);
      const { code } = await kit.exited;
      const out = kit.stdout();
      const context = `\n--${v.flag}\nstdout:\n${out}\nstderr:\n${kit.stderr()}`;
      assert.equal(code, 1, `--${v.flag}: exit code${context}`);
      assert.match(out, /: FAIL$/m, context);
      for (const id of v.caughtBy) {
        const r = row(out, id);
        assert.equal(r?.result, v.verdict ?? "**FAIL**", `--${v.flag}: ${id}${context}`);
        assert.match(r?.detail ?? "", v.detail, `--${v.flag}: ${id}${context}`);
      }
      return `--${v.flag}: ${v.caughtBy.map((id) => `${id} ${row(out, id)?.result}: ${row(out, id)?.detail}`).join("; ")}`;
    }),
  ];
  const results = await pool(6, runs);
  for (const r of results) if (r.status === "fulfilled") t.diagnostic(r.value);
  for (const r of results) if (r.status === "rejected") throw r.reason;
});
