/**
 * The conformance kit as a user runs it (`promproxy conformance --client ...`,
 * a child process): the Node client passes every scenario (HEAD may be n/a,
 * when its hello does not name the feature), and a client that breaks the
 * rules fails the scenarios that check them, with exit code 1.
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

/** Runs the kit on a client command; asserts every scenario passes (HEAD may be "not offered") and returns the table. */
async function passesKit(client: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const kit = runCli(["conformance", "--client", client], env);
  const { code } = await kit.exited;
  const out = kit.stdout();
  const context = `\nstdout:\n${out}\nstderr:\n${kit.stderr()}`;
  assert.equal(code, 0, `exit code${context}`);
  for (const id of scenarioIds) {
    const r = row(out, id);
    assert.ok(r, `a row for ${id}${context}`);
    const want = id === "head" && r.result === "not offered" ? "not offered" : "pass";
    assert.equal(r.result, want, `${id}: ${r.detail}${context}`);
  }
  assert.match(out, /^\d+ passed, 0 failed, 0 n\/a, [01] not offered of \d+ scenarios in [\d.]+ s: PASS$/m);
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
    const python = process.env["PROMPROXY_PYTHON"] ?? "/usr/bin/python3";
    const stubs = path.join(dir, "py");
    await mkdir(stubs, { recursive: true });
    await run(python, ["-m", "grpc_tools.protoc", "-I", "proto", `--python_out=${stubs}`, `--grpc_python_out=${stubs}`, "proto/promproxy/v1/scrape.proto"], { cwd: repoRoot });
    const py = await passesKit(`${python} examples/python/client.py {server} {name} {size}`, { PYTHONPATH: stubs, PYTHONDONTWRITEBYTECODE: "1" });
    t.diagnostic(`Python: ${py.split("\n").filter((l) => / passed, /.test(l)).join("")}`);
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
