/**
 * What users install is what we test: the package is packed with `npm pack`
 * (which builds dist/ through the `prepack` script) from a copy
 * of this work tree, the tarball is installed into an empty project with
 * `npm install` (its dependencies come from the npm registry, or npm's cache),
 * and the installed `promproxy` command, the installed `promproxy/client` and
 * the installed bcrypt worker are run from there.
 *
 * Node: the package needs Node 22.19 (`engines`), and its `bin` is
 * dist/src/cli/main.js with `#!/usr/bin/env node`, so it runs on whatever
 * `node` comes first on PATH. This machine's `node` is 20, so every command
 * here runs with this repository's Node 22 (the `node@22` devDependency's
 * real binary) first on PATH, as a user with Node 22 would.
 *
 * The work tree is copied (without node_modules, dist and .git; node_modules
 * is linked) so that packing never rewrites the dist/ other tests run from.
 */
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import bcrypt from "bcryptjs";
import { proxyGet, waitFor } from "../helpers.ts";

const repo = fileURLToPath(new URL("../../", import.meta.url));
const node22 = fs.realpathSync(path.join(repo, "node_modules/.bin/node"));
const env = { ...process.env, PATH: `${path.dirname(node22)}${path.delimiter}${process.env["PATH"] ?? ""}`, npm_config_update_notifier: "false" };
const exec = promisify(execFile);

/** Largest acceptable tarball (gzipped) and unpacked size. */
const MAX_PACKED = 1024 * 1024;
const MAX_UNPACKED = 4 * 1024 * 1024;

const pkg = JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")) as {
  version: string;
  bin: Record<string, string>;
  exports: Record<string, string | { types: string; default: string }>;
  engines: { node: string };
};

let tmp = "";
let tarball = "";
let app = "";
let packedFiles: { path: string; size: number }[] = [];
let packedSize = 0;
let unpackedSize = 0;
const children: ChildProcess[] = [];

async function run(cmd: string, args: string[], cwd: string, input?: string): Promise<string> {
  const p = exec(cmd, args, { cwd, env, maxBuffer: 64 * 1024 * 1024, timeout: 240_000 });
  if (input !== undefined) {
    p.child.stdin?.end(input);
  }
  try {
    return (await p).stdout;
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")} failed: ${err.message}\nstdout:\n${err.stdout}\nstderr:\n${err.stderr}`);
  }
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-package-"));
  // A copy of the work tree as a fresh clone would have it, built by npm pack's own scripts.
  const stage = path.join(tmp, "stage");
  const skip = new Set(["node_modules", ".git", "dist", ".scratch", "tmp"]);
  fs.cpSync(repo, stage, { recursive: true, filter: (src) => !(path.dirname(path.resolve(src)) === path.resolve(repo) && skip.has(path.basename(src))) });
  fs.symlinkSync(path.join(repo, "node_modules"), path.join(stage, "node_modules"), "dir");
  const out = path.join(tmp, "out");
  fs.mkdirSync(out);
  const json = await run("npm", ["pack", "--json", "--pack-destination", out], stage);
  const info = (JSON.parse(json.slice(json.indexOf("["))) as { filename: string; size: number; unpackedSize: number; files: { path: string; size: number }[] }[])[0]!;
  tarball = path.join(out, info.filename);
  packedFiles = info.files;
  packedSize = info.size;
  unpackedSize = info.unpackedSize;

  // An empty project that installs the tarball the way a user installs the package.
  app = path.join(tmp, "app");
  fs.mkdirSync(app);
  await run("npm", ["init", "-y"], app);
  await run("npm", ["install", tarball, "--no-audit", "--no-fund", "--prefer-offline"], app);
});

after(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      const exited = once(c, "exit");
      c.kill("SIGTERM");
      const t = setTimeout(() => c.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(t);
    }
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test("the tarball holds the built package and nothing else", () => {
  const paths = packedFiles.map((f) => f.path);
  const stray = paths.filter((p) => !(p.startsWith("dist/") || p.startsWith("proto/") || ["package.json", "README.md", "LICENSE"].includes(p)));
  assert.deepEqual(stray, [], "only dist/, proto/, package.json, README and LICENSE are shipped");
  assert.deepEqual(paths.filter((p) => /\.ts$/.test(p) && !p.endsWith(".d.ts")), [], "no TypeScript sources (dist/ has the JavaScript)");
  assert.deepEqual(paths.filter((p) => p.endsWith(".map")), [], "no source maps (they point at src/, which is not shipped)");
  assert.deepEqual(paths.filter((p) => /(^|\/)(test|bench|soak|examples|deploy|scripts)\//.test(p)), [], "no tests, benchmarks or examples");
  assert.deepEqual(paths.filter((p) => /\.(pem|key|crt|p12|pfx)$|(^|\/)\.env|\.npmrc$|(^|\/)\.|token|secret|passw/i.test(p) && !/^dist\/src\/auth\/((client\/)?bearer-token|secrets|(prometheus\/)?passwords)\.(js|d\.ts)$/.test(p)), [], "no keys, certificates, tokens or dotfiles");
  assert.ok(packedSize < MAX_PACKED, `tarball ${packedSize} bytes < ${MAX_PACKED}`);
  assert.ok(unpackedSize < MAX_UNPACKED, `unpacked ${unpackedSize} bytes < ${MAX_UNPACKED}`);

  // What runs: the command, every export (code and types), the bcrypt worker, the generated protocol code.
  const needed = [
    ...Object.values(pkg.bin),
    ...Object.values(pkg.exports).flatMap((e) => (typeof e === "string" ? [e] : [e.types, e.default])),
    "./dist/src/auth/prometheus/hash-worker.js",
    "./dist/gen/promproxy/v1/scrape_pb.js",
    "./proto/promproxy/v1/scrape.proto",
  ].map((p) => p.replace(/^\.\//, ""));
  for (const p of needed) assert.ok(paths.includes(p), `${p} is shipped`);
  const bin = fs.readFileSync(path.join(app, "node_modules/promproxy", Object.values(pkg.bin)[0]!), "utf8");
  assert.match(bin, /^#!\/usr\/bin\/env node\n/, "the command starts with a node shebang");

  // No stale build output: every module in dist/ comes from a source file of this tree.
  for (const p of paths.filter((q) => q.endsWith(".js"))) {
    const source = p.replace(/^dist\//, "").replace(/\.js$/, ".ts");
    assert.ok(fs.existsSync(path.join(repo, source)), `${p} has a source (${source}): a stale file in dist/ would ship`);
  }
});

test("the installed package has one prom-client, shared with the application", () => {
  assert.ok(fs.existsSync(path.join(app, "node_modules/prom-client/package.json")), "prom-client is installed next to promproxy");
  assert.ok(!fs.existsSync(path.join(app, "node_modules/promproxy/node_modules/prom-client")), "promproxy has no prom-client of its own");
  const installed = JSON.parse(fs.readFileSync(path.join(app, "node_modules/promproxy/package.json"), "utf8")) as { version: string };
  assert.equal(installed.version, pkg.version);
});

test("npx promproxy --help runs the installed command", async () => {
  const out = await run("npx", ["--no-install", "promproxy", "--help"], app);
  assert.match(out, /^usage: promproxy <command>/);
  assert.match(await run("npx", ["--no-install", "promproxy", "server", "--help"], app), /--prom-users-file FILE/);
});

test("every export resolves from the installed package, with its types", async () => {
  fs.writeFileSync(
    path.join(app, "exports.mjs"),
    `import * as root from "promproxy";
import * as server from "promproxy/server";
import * as client from "promproxy/client";
console.log(JSON.stringify({ root: typeof root.createServer + "," + typeof root.createClient, server: typeof server.createServer, client: typeof client.createClient }));
`,
  );
  const out = JSON.parse(await run(node22, ["exports.mjs"], app)) as Record<string, string>;
  assert.deepEqual(out, { root: "function,function", server: "function", client: "function" });
  // A TypeScript user's type-check against the shipped .d.ts files (this repository's tsc and @types/node).
  fs.writeFileSync(
    path.join(app, "check.ts"),
    `import { Registry } from "prom-client";
import { createServer } from "promproxy/server";
import { createClient, type ClientOptions, type MetricsRegistry } from "promproxy/client";
import { createClient as rootClient } from "promproxy";
const registry: MetricsRegistry = new Registry();
const options: ClientOptions = { name: "app-1", serverUrl: "http://127.0.0.1:8080", registry };
export const c = createClient(options);
export const r = rootClient === createClient;
export const s = createServer({});
`,
  );
  fs.writeFileSync(
    path.join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { module: "nodenext", moduleResolution: "nodenext", target: "es2022", strict: true, noEmit: true, types: ["node"], typeRoots: [path.join(repo, "node_modules/@types")] },
      files: ["check.ts"],
    }),
  );
  await run(node22, [path.join(repo, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], app);
});

interface Cli {
  child: ChildProcess;
  output: () => string;
}

function startInstalled(args: string[]): Cli {
  let out = "";
  const child = spawn(path.join(app, "node_modules/.bin/promproxy"), args, { cwd: app, env, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}

function startAppScript(serverUrl: string, name: string): Cli {
  let out = "";
  const child = spawn(node22, ["client.mjs", serverUrl, name], { cwd: app, env, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}

async function stop(p: Cli): Promise<number | null> {
  if (p.child.exitCode !== null) return p.child.exitCode;
  const exited = once(p.child, "exit");
  p.child.kill("SIGTERM");
  const [code] = (await exited) as [number | null];
  return code;
}

async function listening(p: Cli): Promise<number> {
  return Number(await waitFor("the installed server's port", () => /listening on 127\.0\.0\.1:(\d+)/.exec(p.output())?.[1], 20_000));
}

/** An application as a user writes it: its own prom-client registry, served by the installed promproxy/client. */
const clientScript = `import { Counter, Registry } from "prom-client";
import { createClient } from "promproxy/client";

const registry = new Registry();
new Counter({ name: "packaged_jobs_total", help: "Jobs done by the packaged app.", registers: [registry] }).inc(7);
const [serverUrl, name] = process.argv.slice(2);
const client = createClient({ name, serverUrl, registry, backoff: { initialMs: 50, maxMs: 500 } });
await client.start({ timeoutMs: 20000 });
console.log("connected");
process.once("SIGTERM", () => void client.stop());
`;

function get(port: number, p: string, headers: Record<string, string> = {}) {
  return proxyGet(port, p, headers);
}

test("the installed server and client: /healthz, /clients, a scrape through the proxy in both formats", { timeout: 120_000 }, async () => {
  fs.writeFileSync(path.join(app, "client.mjs"), clientScript);
  const server = startInstalled(["server", "--listen", "127.0.0.1:0", "--warmup", "0s", "--log-level", "warn"]);
  const port = await listening(server);
  assert.equal((await get(port, "/healthz")).status, 200);
  const client = startAppScript(`http://127.0.0.1:${port}`, "pkg-app");
  await waitFor("the packaged client to connect", () => client.output().includes("connected"), 20_000);
  const clients = await get(port, "/clients");
  assert.equal(clients.status, 200);
  const sd = JSON.parse(clients.body.toString()) as { targets: string[] }[];
  assert.deepEqual(sd.flatMap((g) => g.targets), ["pkg-app"]);

  const text = await get(port, "http://pkg-app/metrics");
  assert.equal(text.status, 200, text.body.toString());
  assert.match(String(text.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
  assert.match(text.body.toString(), /^packaged_jobs_total 7$/m);
  // OpenMetrics needs promproxy to recognise the application's Registry: one prom-client for both.
  const om = await get(port, "http://pkg-app/metrics", { accept: "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5" });
  assert.equal(om.status, 200);
  assert.match(String(om.headers["content-type"]), /^application\/openmetrics-text/);
  assert.match(om.body.toString(), /^packaged_jobs_total 7$/m);
  assert.match(om.body.toString(), /# EOF\n$/);

  assert.equal(await stop(client), 0, client.output());
  assert.equal(await stop(server), 0, server.output());
});

test("the installed server checks bcrypt (on its worker thread, from dist/) and scrypt passwords", { timeout: 120_000 }, async () => {
  // bcrypt as `htpasswd -nbB` writes it; scrypt from the installed `promproxy server --hash-password`.
  const bcryptLine = `prom:${bcrypt.hashSync("bcrypt-secret", 10)}`;
  const scryptHash = (await run(path.join(app, "node_modules/.bin/promproxy"), ["server", "--hash-password"], app, "scrypt-secret")).trim();
  assert.match(scryptHash, /^\$scrypt\$|^scrypt/, scryptHash);
  const users = path.join(tmp, "users");
  fs.writeFileSync(users, `${bcryptLine}\nsd:${scryptHash}\n`);
  fs.writeFileSync(path.join(app, "client.mjs"), clientScript);

  const server = startInstalled(["server", "--listen", "127.0.0.1:0", "--warmup", "0s", "--log-level", "warn", "--prom-users-file", users]);
  const port = await listening(server);
  assert.equal((await get(port, "/healthz")).status, 200, "/healthz stays open");
  const client = startAppScript(`http://127.0.0.1:${port}`, "pkg-auth");
  await waitFor("the packaged client to connect", () => client.output().includes("connected"), 20_000);

  const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}` });
  assert.equal((await get(port, "http://pkg-auth/metrics")).status, 407, "no credentials");
  assert.notEqual((await get(port, "http://pkg-auth/metrics", basic("prom", "wrong"))).status, 200, "a wrong bcrypt password");
  const ok = await get(port, "http://pkg-auth/metrics", basic("prom", "bcrypt-secret"));
  assert.equal(ok.status, 200, `a bcrypt user scrapes: ${ok.body.toString()}\n${server.output()}`);
  assert.match(ok.body.toString(), /^packaged_jobs_total 7$/m);
  assert.equal((await get(port, "/clients")).status, 401);
  const sd = await get(port, "/clients", basic("sd", "scrypt-secret"));
  assert.equal(sd.status, 200, "a scrypt user reads /clients");
  assert.match(sd.body.toString(), /pkg-auth/);
  assert.doesNotMatch(server.output(), /bcrypt worker|hash-worker|ERR_MODULE_NOT_FOUND/);

  assert.equal(await stop(client), 0, client.output());
  assert.equal(await stop(server), 0, server.output());
});
