/**
 * Installing and starting promproxy the ways a newcomer does: the published tarball (`npm pack`, built by the
 * `prepack` script) installed into an empty project runs no install script, `promproxy --version` prints the
 * package's version, and an older Node gets one clear line instead of a stack trace; a fresh clone starts with
 * `npm start` without a build (the sources run on the node@22 devDependency, even under an older machine npm).
 *
 * As in package.test.ts, the work tree is copied without node_modules, dist and .git (node_modules linked), so that
 * packing never rewrites the dist/ other tests run from.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { minimumNode, olderThanMinimumNode, packageVersion } from "../../src/shared/version.ts";
import { waitFor } from "../helpers.ts";
import { freePort } from "./prometheus.ts";

const repo = fileURLToPath(new URL("../../", import.meta.url));
const node22 = fs.realpathSync(path.join(repo, "node_modules/.bin/node"));
const pkg = JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")) as { version: string; engines: { node: string } };
const exec = promisify(execFile);
const withPath = (dir: string) => ({ ...process.env, PATH: `${dir}${path.delimiter}${process.env["PATH"] ?? ""}`, npm_config_update_notifier: "false" });
const env22 = withPath(path.dirname(node22));

/** A `node` on this machine's PATH older than the minimum, if there is one (`which -a node`). */
const olderNode = (() => {
  for (const dir of (process.env["PATH"] ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, "node");
    if (!dir || !fs.existsSync(candidate) || fs.realpathSync(candidate) === node22) continue;
    try {
      const version = String(execFileSync(candidate, ["--version"])).trim();
      if (olderThanMinimumNode(version)) return { dir, version };
    } catch {
      // not runnable: look further
    }
  }
  return undefined;
})();

let tmp = "";
let stage = "";
let app = "";
let installLog = "";

async function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = env22) {
  try {
    return await exec(cmd, args, { cwd, env, maxBuffer: 64 * 1024 * 1024, timeout: 240_000 });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")} failed: ${err.message}\nstdout:\n${err.stdout}\nstderr:\n${err.stderr}`);
  }
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-install-"));
  stage = path.join(tmp, "stage");
  const skip = new Set(["node_modules", ".git", "dist", ".scratch", "tmp"]);
  fs.cpSync(repo, stage, { recursive: true, filter: (src) => !(path.dirname(path.resolve(src)) === path.resolve(repo) && skip.has(path.basename(src))) });
  fs.symlinkSync(path.join(repo, "node_modules"), path.join(stage, "node_modules"), "dir");
  const out = path.join(tmp, "out");
  fs.mkdirSync(out);
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", out], stage);
  const info = (JSON.parse(stdout.slice(stdout.indexOf("["))) as { filename: string }[])[0]!;
  fs.rmSync(path.join(stage, "dist"), { recursive: true, force: true }); // a fresh clone has no dist/
  app = path.join(tmp, "app");
  fs.mkdirSync(app);
  await run("npm", ["init", "-y"], app);
  const installed = await run("npm", ["install", path.join(out, info.filename), "--no-audit", "--no-fund", "--prefer-offline"], app);
  installLog = installed.stdout + installed.stderr;
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test("install: the published package runs no install script, and npm says nothing about one", () => {
  const installed = JSON.parse(fs.readFileSync(path.join(app, "node_modules/promproxy/package.json"), "utf8")) as { scripts?: Record<string, string> };
  const lifecycle = ["preinstall", "install", "postinstall", "prepublish", "preprepare", "prepare", "postprepare"];
  assert.deepEqual(Object.keys(installed.scripts ?? {}).filter((s) => lifecycle.includes(s)), [], "no script npm runs on install");
  assert.ok(fs.existsSync(path.join(app, "node_modules/promproxy/dist/src/cli/main.js")), "the tarball holds dist/ (built by prepack)");
  assert.doesNotMatch(installLog, /install-scripts|promproxy@[^ ]* \((pre|post)?(install|prepare)/, installLog);
});

test("install: the version is package.json's, and the engines field states the Node the CLI checks", () => {
  assert.equal(packageVersion, pkg.version);
  assert.equal(pkg.engines.node, `>=${minimumNode}`);
  const installed = JSON.parse(fs.readFileSync(path.join(app, "node_modules/promproxy/package.json"), "utf8")) as { engines?: { node?: string } };
  assert.equal(installed.engines?.node, `>=${minimumNode}`, "npm warns (EBADENGINE) when an older Node installs it");
});

test("install: promproxy --version and -v print the version, from the tarball and from the sources", async () => {
  const bin = path.join(app, "node_modules/.bin/promproxy");
  for (const flag of ["--version", "-v"]) {
    const installed = await run(bin, [flag], app);
    assert.equal(installed.stdout, `${pkg.version}\n`);
    assert.equal(installed.stderr, "");
    const source = await run(node22, [path.join(repo, "src/cli/main.ts"), flag], repo);
    assert.equal(source.stdout, `${pkg.version}\n`);
  }
  assert.match((await run(bin, ["--help"], app)).stdout, /-v, --version/);
});

test(`install: an older Node (${olderNode?.version ?? "none on PATH"}) gets one line and exit code 1, whatever the command`, { skip: !olderNode && "no node older than the minimum on PATH" }, async () => {
  const bin = path.join(app, "node_modules/.bin/promproxy");
  const line = `promproxy needs Node ${minimumNode} or newer (this is ${olderNode!.version})\n`;
  for (const args of [["--version"], ["--help"], ["server", "--listen", "127.0.0.1:0"], ["client", "--name", "x"], []]) {
    // The bin's `#!/usr/bin/env node` finds the older node first on PATH, as on a machine with only that one.
    const r = await exec(bin, args, { cwd: app, env: withPath(olderNode!.dir), timeout: 30_000 }).then(
      (ok) => ({ code: 0, ...ok }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    assert.deepEqual({ code: r.code, stdout: r.stdout, stderr: r.stderr }, { code: 1, stdout: "", stderr: line }, `promproxy ${args.join(" ")}`);
  }
});

test("install: a fresh clone runs `npm start` without a build, also from an older Node's npm", { timeout: 60_000 }, async () => {
  assert.ok(!fs.existsSync(path.join(stage, "dist")));
  const port = await freePort();
  // npm puts node_modules/.bin first on the script's PATH: the node@22 devDependency runs the sources.
  const env = olderNode ? withPath(olderNode.dir) : env22;
  const child = spawn("npm", ["start", "--", "--listen", `127.0.0.1:${port}`], { cwd: stage, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = once(child, "exit");
  try {
    await waitFor("the demo to start", () => out.includes("Ctrl-C stops") || child.exitCode !== null, 30_000);
    assert.match(out, /Ctrl-C stops/, out);
    const r = await fetch(`http://127.0.0.1:${port}/clients`);
    assert.equal(r.status, 200);
    assert.match(await r.text(), /"demo"/);
  } finally {
    process.kill(-child.pid!, "SIGINT"); // the process group: npm, its shell and node, as Ctrl-C does
  }
  await exited;
  assert.ok(!fs.existsSync(path.join(stage, "dist")), "npm start built nothing");
  assert.doesNotMatch(out, /needs Node/);
});
