/**
 * The Dockerfile, without Docker (there is no daemon here, and base images cannot be pulled): a small parser reads
 * its instructions, and they are replayed into one folder per stage, the folder standing for the stage's root file
 * system. COPY copies from the repository through .dockerignore (or from an earlier stage's folder); RUN runs the
 * few commands this test knows (`npm ci` with npm's cache, the TypeScript compiler), any other RUN fails the test
 * until it is taught; the final stage's ENTRYPOINT and CMD run from its folder as its USER (65532), with this
 * repository's Node 22 standing for the base image's. Checked: the image holds production dependencies and built
 * JavaScript only; it serves (a forwarder from the image connects, `curl -x` scrapes through the server, the
 * HEALTHCHECK command passes) and drains on SIGTERM (/readyz 503 while scrapes are still served, exit 0); nothing is
 * written inside it (Kubernetes runs it on a read-only root); deploy/kubernetes/ runs this image with the
 * Dockerfile's user, port and /healthz.
 *
 * Not covered: the base image itself (Debian slim's node:22), and `docker build` (layer caching, the daemon).
 */
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { shippedNodeFlags } from "../../bench/server-flags.ts";
import { minimumNodeMajor } from "../../src/shared/version.ts";
import { curl, waitFor } from "../helpers.ts";
import { freePort } from "../e2e/prometheus.ts";

const repo = fileURLToPath(new URL("../../", import.meta.url));
const node22 = fs.realpathSync(path.join(repo, "node_modules/.bin/node"));
/** The node the image's processes run: a copy of `node22` that the image's user can reach (set in before()). */
let imageNode = node22;
const pkg = JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")) as {
  version: string;
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const dockerfileText = fs.readFileSync(path.join(repo, "Dockerfile"), "utf8");
const run = promisify(execFile);

// ---------------------------------------------------------------------------------------------------------
// The parser: instructions, with line continuations and comments as Docker reads them.

interface Instruction {
  op: string;
  /** The text after the keyword, continuation lines joined. */
  args: string;
  line: number;
}

function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i]!.trim();
    if (first === "" || first.startsWith("#")) continue;
    const start = i;
    let joined = "";
    let cur = lines[i]!;
    // A trailing backslash continues the instruction; comment lines inside it are dropped, as Docker does.
    while (/\\\s*$/.test(cur) && i + 1 < lines.length) {
      joined += cur.replace(/\\\s*$/, " ");
      do i++;
      while (i < lines.length && lines[i]!.trim().startsWith("#"));
      cur = lines[i] ?? "";
    }
    joined += cur;
    const m = /^\s*([A-Za-z]+)\s+(.*)$/s.exec(joined);
    assert.ok(m, `Dockerfile line ${start + 1}: not an instruction: ${joined}`);
    out.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim().replace(/\s+/g, " "), line: start + 1 });
  }
  return out;
}

interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

function stagesOf(instructions: Instruction[]): Stage[] {
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.op === "FROM") {
      const m = /^(\S+)(?: AS (\S+))?$/i.exec(ins.args);
      assert.ok(m, `line ${ins.line}: FROM IMAGE [AS NAME]`);
      stages.push({ from: m[1]!, name: m[2], instructions: [] });
    } else {
      assert.ok(stages.length > 0, `line ${ins.line}: ${ins.op} before FROM`);
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return stages;
}

/** An instruction's exec form (a JSON array), or undefined for the shell form. */
function execForm(args: string): string[] | undefined {
  if (!args.startsWith("[")) return undefined;
  const v = JSON.parse(args) as unknown;
  assert.ok(Array.isArray(v) && v.every((s) => typeof s === "string"), `exec form: a JSON array of strings: ${args}`);
  return v as string[];
}

/** The last value of an instruction in a stage, e.g. USER or ENTRYPOINT. */
function last(stage: Stage, op: string): Instruction | undefined {
  return stage.instructions.filter((i) => i.op === op).at(-1);
}

interface Healthcheck {
  options: Record<string, string>;
  command: string[];
}

function healthcheckOf(stage: Stage): Healthcheck | undefined {
  const ins = last(stage, "HEALTHCHECK");
  if (!ins || ins.args === "NONE") return undefined;
  const m = /^((?:--[a-z-]+=\S+ )*)CMD (.*)$/.exec(ins.args);
  assert.ok(m, `line ${ins.line}: HEALTHCHECK [--option=value ...] CMD [...]`);
  const options = Object.fromEntries((m[1] ?? "").trim().split(" ").filter(Boolean).map((o) => o.slice(2).split("=") as [string, string]));
  const command = execForm(m[2]!);
  assert.ok(command, `line ${ins.line}: HEALTHCHECK CMD in exec form`);
  return { options, command };
}

/** The URL a `node -e "fetch('URL' ...)"` health check asks. */
function healthcheckUrl(h: Healthcheck): URL {
  const m = /fetch\('([^']+)'/.exec(h.command.join(" "));
  assert.ok(m, `the health check fetches a URL: ${h.command.join(" ")}`);
  return new URL(m[1]!);
}

// ---------------------------------------------------------------------------------------------------------
// The checks on the Dockerfile itself (also run against broken variants, to show that they catch them).

function dockerfileProblems(text: string): string[] {
  const problems: string[] = [];
  const stages = stagesOf(parseDockerfile(text));
  const final = stages.at(-1);
  if (!final) return ["no FROM"];
  for (const s of stages) {
    const m = /^node:(\d+)-[a-z]+-slim$/.exec(s.from);
    if (!m || Number(m[1]) !== minimumNodeMajor) problems.push(`FROM ${s.from}: want the official node:${minimumNodeMajor}-<debian>-slim image`);
  }
  if (stages.length < 2) problems.push("not multi-stage: the compiler and dev dependencies would ship");
  const user = last(final, "USER")?.args;
  if (!user || !/^[1-9]\d*(:[1-9]\d*)?$/.test(user)) problems.push(`USER ${user ?? "(none)"}: want a numeric non-root uid[:gid] (runAsNonRoot checks numbers only)`);
  const entry = last(final, "ENTRYPOINT");
  const entryArgv = entry && execForm(entry.args);
  if (!entryArgv) problems.push("ENTRYPOINT: want the exec form, or a shell stands between SIGTERM and Node");
  else if (entryArgv[0] !== "node") problems.push(`ENTRYPOINT ${entry!.args}: want node itself (npm or a shell would not pass SIGTERM on)`);
  else {
    const rest = entryArgv.slice(1);
    const flags = rest.slice(0, Math.max(0, rest.findIndex((a) => !a.startsWith("-"))));
    for (const f of shippedNodeFlags) {
      if (!flags.includes(f)) problems.push(`ENTRYPOINT ${entry!.args}: want node ${f} before the script, as the bench runs the server (bench/server-flags.ts)`);
    }
  }
  const stop = last(final, "STOPSIGNAL")?.args;
  if (stop && stop !== "SIGTERM") problems.push(`STOPSIGNAL ${stop}: the server drains on SIGTERM`);
  const h = healthcheckOf(final);
  if (!h) problems.push("no HEALTHCHECK");
  else {
    if (h.command[0] !== "node") problems.push("HEALTHCHECK: the slim image has no curl or wget: use node");
    else if (healthcheckUrl(h).pathname !== "/healthz") problems.push(`HEALTHCHECK asks ${healthcheckUrl(h).pathname}, want /healthz (liveness holds while draining)`);
  }
  if (!last(final, "EXPOSE")) problems.push("no EXPOSE");
  return problems;
}

// ---------------------------------------------------------------------------------------------------------
// .dockerignore, as Docker reads it: the last pattern matching a path or one of its parents decides.

const ignorePatterns = fs
  .readFileSync(path.join(repo, ".dockerignore"), "utf8")
  .split("\n")
  .map((l) => l.trim())
  .filter((l) => l !== "" && !l.startsWith("#"))
  .map((l) => {
    const negate = l.startsWith("!");
    const p = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, "");
    const re = new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*\*/g, "\0").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]").replace(/\0/g, ".*")}$`);
    return { negate, re };
  });

function ignored(rel: string): boolean {
  const parts = rel.split("/");
  let out = false;
  for (const { negate, re } of ignorePatterns) {
    for (let n = 1; n <= parts.length; n++) if (re.test(parts.slice(0, n).join("/"))) out = !negate;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// The replay.

let tmp = "";
const stageRoots = new Map<string, string>();
let finalRoot = "";
let finalStage: Stage;
const replayLog: string[] = [];
const children: ChildProcess[] = [];

/** A path inside a stage's folder, for a path inside the image. */
const inRoot = (root: string, p: string) => path.join(root, p);

function resolveIn(workdir: string, p: string): string {
  return path.posix.isAbsolute(p) ? p : path.posix.join(workdir, p);
}

/** Copies like Docker's COPY: a directory's contents into the destination, a file into it or as it. */
function copyInto(src: string, dest: string, destIsDir: boolean, filter: (abs: string) => boolean): void {
  if (fs.statSync(src).isDirectory()) {
    fs.mkdirSync(dest, { recursive: true });
    fs.cpSync(src, dest, { recursive: true, filter, dereference: false });
  } else {
    const target = destIsDir ? path.join(dest, path.basename(src)) : dest;
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.copyFileSync(src, target);
  }
}

const npmEnv = { ...process.env, PATH: `${path.dirname(node22)}${path.delimiter}${process.env["PATH"] ?? ""}`, npm_config_update_notifier: "false", npm_config_prefer_offline: "true" };

/** Runs one `&&`-joined part of a RUN instruction, if it is one this replay knows. */
async function runStep(cmd: string, cwd: string, env: Record<string, string>, where: string): Promise<void> {
  const argv = cmd.split(" ");
  if (argv[0] === "npm" && argv[1] === "ci" && argv.slice(2).every((a) => /^--[a-z-]+(=[a-z]+)?$/.test(a))) {
    // From npm's cache where it has the packages (npm_config_prefer_offline), else from the registry.
    await run("npm", argv.slice(1), { cwd, env: { ...npmEnv, ...env }, timeout: 300_000, maxBuffer: 16 * 1024 * 1024 });
  } else if (cmd === "npm cache clean --force") {
    // Inside the image it drops the cache from the layer; here it would empty this machine's cache: skipped.
  } else if (argv[0] === "node" && argv[1] === "node_modules/typescript/bin/tsc") {
    await run(node22, argv.slice(1), { cwd, env: { ...npmEnv, ...env }, timeout: 300_000 });
  } else {
    assert.fail(`${where}: RUN ${cmd}: a step this replay does not know; teach runStep() what it does`);
  }
}

async function replay(stage: Stage, root: string): Promise<void> {
  let workdir = "/";
  const env: Record<string, string> = {};
  for (const ins of stage.instructions) {
    const where = `Dockerfile line ${ins.line}`;
    switch (ins.op) {
      case "WORKDIR":
        workdir = resolveIn(workdir, ins.args);
        fs.mkdirSync(inRoot(root, workdir), { recursive: true });
        break;
      case "ENV":
        for (const m of ins.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(\S+)/g)) env[m[1]!] = m[2]!;
        break;
      case "COPY": {
        const words = ins.args.split(" ");
        const flags = words.filter((w) => w.startsWith("--"));
        const paths = words.filter((w) => !w.startsWith("--"));
        const from = flags.find((f) => f.startsWith("--from="))?.slice("--from=".length);
        assert.deepEqual(flags.filter((f) => !f.startsWith("--from=")), [], `${where}: COPY flags this replay knows: --from`);
        const dest = resolveIn(workdir, paths.at(-1)!);
        const sources = paths.slice(0, -1);
        const destIsDir = sources.length > 1 || paths.at(-1)!.endsWith("/");
        for (const s of sources) {
          if (from !== undefined) {
            const fromRoot = stageRoots.get(from);
            assert.ok(fromRoot, `${where}: --from=${from} names an earlier stage`);
            copyInto(inRoot(fromRoot, s), inRoot(root, dest), destIsDir, () => true);
          } else {
            assert.ok(!path.isAbsolute(s) && !s.includes(".."), `${where}: ${s} inside the build context`);
            assert.ok(!ignored(s), `${where}: COPY ${s}, which .dockerignore leaves out of the build context`);
            copyInto(path.join(repo, s), inRoot(root, dest), destIsDir, (abs) => !ignored(path.relative(repo, abs).split(path.sep).join("/")));
          }
        }
        break;
      }
      case "RUN": {
        assert.equal(execForm(ins.args), undefined, `${where}: RUN in shell form`);
        for (const part of ins.args.split("&&").map((p) => p.trim())) {
          const t0 = Date.now();
          await runStep(part, inRoot(root, workdir), env, where);
          replayLog.push(`${part}: ${Date.now() - t0} ms`);
        }
        break;
      }
      case "USER":
      case "EXPOSE":
      case "HEALTHCHECK":
      case "ENTRYPOINT":
      case "CMD":
      case "LABEL":
      case "STOPSIGNAL":
        break; // read by the checks below
      default:
        assert.fail(`${where}: ${ins.op}: an instruction this replay does not know`);
    }
  }
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-docker-"));
  fs.chmodSync(tmp, 0o755); // the image's user (65532) must reach the final stage's files
  // And its node: the base image's own, here a copy of this repository's Node 22 (the checkout may sit in a folder
  // only root can enter, as a fresh `mktemp -d` clone does).
  fs.mkdirSync(path.join(tmp, "usr-local-bin"));
  fs.copyFileSync(node22, path.join(tmp, "usr-local-bin", "node"));
  fs.chmodSync(path.join(tmp, "usr-local-bin", "node"), 0o755);
  imageNode = path.join(tmp, "usr-local-bin", "node");
  const stages = stagesOf(parseDockerfile(dockerfileText));
  for (const [i, stage] of stages.entries()) {
    const root = path.join(tmp, `stage-${i}`);
    fs.mkdirSync(root, { recursive: true });
    await replay(stage, root);
    stageRoots.set(stage.name ?? String(i), root);
    stageRoots.set(String(i), root);
    finalRoot = root;
    finalStage = stage;
  }
});

after(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      const exited = once(c, "exit");
      c.kill("SIGKILL");
      await exited;
    }
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------

test("docker: the Dockerfile passes its checks, and the checks catch a shell entrypoint, npm start, root and no health check", () => {
  assert.deepEqual(dockerfileProblems(dockerfileText), []);
  const broken = (from: RegExp, to: string) => {
    const text = dockerfileText.replace(from, to);
    assert.notEqual(text, dockerfileText, `the variant changes something: ${from}`);
    return dockerfileProblems(text).join("\n");
  };
  assert.match(broken(/^ENTRYPOINT .*$/m, "ENTRYPOINT node /app/dist/src/cli/main.js"), /exec form/);
  assert.match(broken(/^ENTRYPOINT .*$/m, 'ENTRYPOINT ["npm", "start"]'), /want node itself/);
  assert.match(broken(/^ENTRYPOINT .*$/m, 'ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]'), /want node --max-semi-space-size=8 before the script/);
  assert.match(broken(/^USER .*$/m, "USER node"), /numeric non-root/);
  assert.match(broken(/^USER .*$/m, "USER 0"), /numeric non-root/);
  assert.match(broken(/^HEALTHCHECK [^]*?\]\n/m, ""), /no HEALTHCHECK/);
  assert.match(broken(/fetch\('http:\/\/127\.0\.0\.1:8080\/healthz'/, "fetch('http://127.0.0.1:8080/readyz'"), /want \/healthz/);
  assert.match(broken(/^FROM node:22-bookworm-slim$/m, "FROM node:20-bookworm-slim"), /want the official node:22/);
});

test("docker: the build context is what the Dockerfile copies; no node_modules, dist, .git, tests or keys", () => {
  for (const p of ["node_modules", "node_modules/prom-client/index.js", "dist/src/index.js", ".git/config", "test/helpers.ts", "bench/run.ts", "deploy/kubernetes/server.yaml", "tmp/x", "test/auth-certs.ts", "key.pem", ".env", ".npmrc"]) {
    assert.ok(ignored(p), `${p} stays out of the build context`);
  }
  for (const p of ["package.json", "package-lock.json", "tsconfig.json", "src/cli/main.ts", "gen/promproxy/v1/scrape_pb.ts"]) assert.ok(!ignored(p), `${p} is in the build context`);
});

test("docker: the final stage holds production dependencies and built JavaScript, nothing else", (t) => {
  const app = inRoot(finalRoot, "/app");
  assert.deepEqual(fs.readdirSync(app).sort(), ["dist", "node_modules", "package-lock.json", "package.json"]);
  const files = (fs.readdirSync(path.join(app, "dist"), { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(app, "dist", f)).isFile());
  assert.ok(files.length > 50, `${files.length} files in dist/`);
  assert.deepEqual(files.filter((f) => !f.endsWith(".js")), [], "JavaScript only: no sources, declarations or source maps");
  assert.ok(files.includes(path.join("src", "cli", "main.js")) && files.includes(path.join("src", "auth", "prometheus", "hash-worker.js")));

  const installed = new Set(
    fs.readdirSync(path.join(app, "node_modules")).flatMap((d) => (d.startsWith("@") ? fs.readdirSync(path.join(app, "node_modules", d)).map((s) => `${d}/${s}`) : [d])),
  );
  for (const dep of [...Object.keys(pkg.dependencies), ...Object.keys(pkg.peerDependencies)]) assert.ok(installed.has(dep), `${dep} is installed`);
  const dev = Object.keys(pkg.devDependencies).filter((d) => installed.has(d));
  assert.deepEqual(dev, [], "no devDependency in the image");
  assert.ok(!installed.has(".bin") || !fs.existsSync(path.join(app, "node_modules/.bin/tsc")), "no compiler");
  assert.ok(!fs.existsSync(inRoot(finalRoot, "/src")), "the build stage's folder stays behind");
  const bytes = (dir: string): number =>
    (fs.readdirSync(dir, { recursive: true }) as string[]).reduce((n, f) => {
      const st = fs.lstatSync(path.join(dir, f));
      return n + (st.isFile() ? st.size : 0);
    }, 0);
  const total = bytes(app);
  // The layer above the base image: about 8 MB today (prom-client, Connect, protobuf, yaml, bcryptjs and dist/).
  assert.ok(total < 40 * 1024 * 1024, `the image's own files: ${(total / 1024 / 1024).toFixed(1)} MiB`);
  t.diagnostic(`/app: ${(total / 1024 / 1024).toFixed(1)} MiB; ${replayLog.join("; ")}`);
});

// ---------------------------------------------------------------------------------------------------------
// Running it

/** The image's user as spawn options, when this test may switch users (it runs as root in CI). */
function imageUser(): { uid?: number; gid?: number } {
  const [uid, gid] = last(finalStage, "USER")!.args.split(":").map(Number);
  return process.getuid?.() === 0 ? { uid: uid!, gid: gid ?? uid! } : {};
}

/** A container's environment: nothing of this test's own (no PROMPROXY_* leaking in). */
const containerEnv = () => ({ PATH: `${path.dirname(imageNode)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, HOME: "/" });

/** The image's argv with the stage folder for image paths and this repository's Node 22 for `node`. */
function hostArgv(argv: string[]): string[] {
  return argv.map((a, i) => (i === 0 && a === "node" ? imageNode : a.startsWith("/") && fs.existsSync(inRoot(finalRoot, a)) ? inRoot(finalRoot, a) : a));
}

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function start(argv: string[]): Proc {
  const [cmd, ...args] = hostArgv(argv);
  const workdir = last(finalStage, "WORKDIR")?.args ?? "/";
  const child = spawn(cmd!, args, { cwd: inRoot(finalRoot, workdir), env: containerEnv(), stdio: ["ignore", "pipe", "pipe"], ...imageUser() });
  children.push(child);
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = once(child, "exit").then(([code]) => code as number | null);
  return { child, output: () => out, exited };
}

/** Every file under the stage folder with its size and mtime: what a read-only root file system would keep. */
function snapshot(root: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const f of fs.readdirSync(root, { recursive: true }) as string[]) {
    const st = fs.lstatSync(path.join(root, f));
    m.set(f, `${st.size}:${st.mtimeMs}`);
  }
  return m;
}

async function status(port: number, p: string): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${port}${p}`, { signal: AbortSignal.timeout(5_000) });
  await r.arrayBuffer();
  return r.status;
}

test("docker: the image's entrypoint serves as user 65532 (a forwarder from the image, curl -x, the HEALTHCHECK) and drains on SIGTERM", { timeout: 120_000 }, async () => {
  const entrypoint = execForm(last(finalStage, "ENTRYPOINT")!.args)!;
  const cmd = execForm(last(finalStage, "CMD")!.args)!;
  const exposed = Number(last(finalStage, "EXPOSE")!.args);
  assert.deepEqual(cmd, ["server", `--listen=0.0.0.0:${exposed}`], "CMD: the server on the EXPOSEd port");
  const before = snapshot(finalRoot);

  // An exporter for the forwarder to serve.
  const exporter = http.createServer((_req, res) => res.end("docker_layout_jobs_total 3\n"));
  exporter.listen(0, "127.0.0.1");
  await once(exporter, "listening");
  const exporterPort = (exporter.address() as { port: number }).port;

  // The CMD on a free loopback port (this machine's 8080 may be taken); a drain delay that outlasts the checks below.
  const port = await freePort();
  const server = start([...entrypoint, ...cmd.map((a) => a.replace(`0.0.0.0:${exposed}`, `127.0.0.1:${port}`)), "--warmup=0s", "--drain-delay=8s", "--shutdown-grace=5s"]);
  let forwarder: Proc | undefined;
  try {
    await waitFor("the server to listen", () => server.output().includes(`listening on 127.0.0.1:${port}`) || server.child.exitCode !== null, 20_000);
    assert.equal(server.child.exitCode, null, server.output());
    if (imageUser().uid !== undefined) {
      assert.match(fs.readFileSync(`/proc/${server.child.pid}/status`, "utf8"), new RegExp(`^Uid:\\s+${imageUser().uid}\\s`, "m"), "the server runs as the image's user");
    }
    forwarder = start([...entrypoint, "client", "--name=docker-app", `--server=http://127.0.0.1:${port}`, `--target=9100=http://127.0.0.1:${exporterPort}/metrics`]);
    await waitFor(
      "the forwarder to be listed",
      async () => (await fetch(`http://127.0.0.1:${port}/clients`).then((r) => r.text())).includes("docker-app:9100"),
      20_000,
    ).catch((e: Error) => assert.fail(`${e.message}\nserver:\n${server.output()}\nforwarder:\n${forwarder!.output()}`));

    const scraped = await curl(["-x", `http://127.0.0.1:${port}`, "http://docker-app:9100/metrics"]);
    assert.equal(scraped.code, 0, scraped.stderr);
    assert.equal(scraped.stdout, "docker_layout_jobs_total 3\n");

    // The HEALTHCHECK command, as Docker runs it inside the container (the test's port for the EXPOSEd one).
    const h = healthcheckOf(finalStage)!;
    assert.equal(Number(healthcheckUrl(h).port), exposed, "the health check asks the EXPOSEd port");
    const healthcheck = () => start(h.command.map((a) => a.replace(`:${exposed}/`, `:${port}/`))).exited;
    assert.equal(await healthcheck(), 0, "HEALTHCHECK passes while serving");
    assert.equal(await status(port, "/readyz"), 200);

    // SIGTERM: not ready at once, alive, still serving for the drain delay; then exit 0.
    server.child.kill("SIGTERM");
    await waitFor("/readyz 503 after SIGTERM", async () => (await status(port, "/readyz")) === 503, 5_000);
    const during = await curl(["-x", `http://127.0.0.1:${port}`, "http://docker-app:9100/metrics"]);
    assert.equal(during.stdout, "docker_layout_jobs_total 3\n", `scrapes are still served during the drain delay: ${during.stderr}`);
    assert.equal(await status(port, "/healthz"), 200, "liveness holds while draining");
    assert.equal(await healthcheck(), 0, "HEALTHCHECK passes while draining (Docker must not restart a draining server)");
    const code = await Promise.race([server.exited, new Promise<"hung">((r) => setTimeout(() => r("hung"), 30_000).unref())]);
    assert.equal(code, 0, `the server exits 0 after draining:\n${server.output()}`);
    assert.match(server.output(), /draining/);

    forwarder.child.kill("SIGTERM");
    assert.equal(await forwarder.exited, 0, forwarder.output());
    assert.equal(await healthcheck(), 1, "HEALTHCHECK fails once nothing listens");
  } finally {
    exporter.close();
    if (server.child.exitCode === null) server.child.kill("SIGKILL");
    if (forwarder && forwarder.child.exitCode === null) forwarder.child.kill("SIGKILL");
  }
  const after = snapshot(finalRoot);
  assert.deepEqual([...after.keys()].filter((f) => before.get(f) !== after.get(f)), [], "nothing was written inside the image");
  assert.doesNotMatch(server.output(), /EACCES|EROFS|permission denied/i);
});

// ---------------------------------------------------------------------------------------------------------
// The manifests against the Dockerfile

const k8sDir = path.join(repo, "deploy/kubernetes");
type Obj = any;

function k8sContainers(): { file: string; pod: Obj; container: Obj }[] {
  const out: { file: string; pod: Obj; container: Obj }[] = [];
  for (const file of fs.readdirSync(k8sDir).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml" && f !== "prometheus-scrape-configs.yaml")) {
    for (const d of parseAllDocuments(fs.readFileSync(path.join(k8sDir, file), "utf8"))) {
      const o = d.toJS();
      const pod = o?.spec?.template?.spec;
      for (const c of pod?.containers ?? []) out.push({ file, pod, container: c });
    }
  }
  return out;
}

test("docker: the manifests run this image with the Dockerfile's user, port and /healthz, and the READMEs build it", () => {
  const image = `promproxy:${pkg.version}`;
  const ours = k8sContainers().filter(({ container }) => String(container.image).split(":")[0] === "promproxy");
  assert.deepEqual(ours.map((c) => `${c.file}:${c.container.name}`).sort(), ["client-example.yaml:promproxy-client", "server.yaml:server"]);
  const [uid, gid] = last(finalStage, "USER")!.args.split(":").map(Number);
  const exposed = Number(last(finalStage, "EXPOSE")!.args);
  const h = healthcheckOf(finalStage)!;
  for (const { file, pod, container } of ours) {
    const at = `${file} ${container.name}`;
    assert.equal(container.image, image, `${at}: the image \`docker build -t ${image} .\` makes`);
    assert.equal(container.command, undefined, `${at}: the image's ENTRYPOINT runs (a command would replace it)`);
    assert.ok(["server", "client"].includes(container.args[0]), `${at}: args start with the command`);
    assert.equal(container.securityContext?.runAsUser ?? pod.securityContext?.runAsUser, uid, `${at}: runAsUser is the Dockerfile's USER`);
    assert.equal(container.securityContext?.runAsGroup ?? pod.securityContext?.runAsGroup, gid, `${at}: runAsGroup is the Dockerfile's USER group`);
    assert.equal(container.securityContext?.readOnlyRootFilesystem, true, `${at}: read-only root (the image writes nothing: checked above)`);
  }
  const server = ours.find((c) => c.file === "server.yaml")!.container;
  const listen = (server.args as string[]).find((a) => a.startsWith("--listen="));
  assert.equal(listen, `--listen=0.0.0.0:${exposed}`, "the server listens on the EXPOSEd port");
  assert.equal(server.ports[0].containerPort, exposed, "containerPort is the EXPOSEd port");
  assert.equal(server.livenessProbe.httpGet.path, healthcheckUrl(h).pathname, "liveness probe and HEALTHCHECK ask the same path");
  const probePort = server.livenessProbe.httpGet.port;
  assert.equal(typeof probePort === "number" ? probePort : server.ports.find((p: Obj) => p.name === probePort)?.containerPort, Number(healthcheckUrl(h).port));
  assert.equal(server.readinessProbe.httpGet.path, "/readyz");

  const build = `docker build -t ${image} .`;
  assert.ok(dockerfileText.includes(build), `the Dockerfile says how to build it: ${build}`);
  for (const readme of ["docs/operations.md", "deploy/kubernetes/README.md"]) {
    assert.ok(fs.readFileSync(path.join(repo, readme), "utf8").includes(build), `${readme} has the build command: ${build}`);
  }
  assert.equal(parseYaml(fs.readFileSync(path.join(k8sDir, "kustomization.yaml"), "utf8")).images, undefined, "no kustomize image override hides the name");
});

test("docker: the HEALTHCHECK gives up on a server that accepts and never answers, before Docker's own --timeout", { timeout: 60_000 }, async () => {
  const h = healthcheckOf(finalStage)!;
  const own = Number(/AbortSignal\.timeout\((\d+)\)/.exec(h.command.join(" "))?.[1]);
  const docker = /^(\d+)s$/.exec(h.options["timeout"] ?? "")?.[1];
  assert.ok(own > 0 && docker !== undefined && own < Number(docker) * 1000, `the check's own timeout (${own} ms) is below HEALTHCHECK --timeout (${h.options["timeout"]})`);
  // A stalled peer: accepts the connection, reads the request, never answers.
  const sockets = new Set<net.Socket>();
  const stalled = net.createServer((sock) => {
    sockets.add(sock);
    sock.on("data", () => {});
  });
  stalled.listen(0, "127.0.0.1");
  await once(stalled, "listening");
  const port = (stalled.address() as { port: number }).port;
  const exposed = Number(last(finalStage, "EXPOSE")!.args);
  try {
    const code = await start(h.command.map((a) => a.replace(`:${exposed}/`, `:${port}/`))).exited;
    assert.equal(code, 1, "unhealthy, not hung");
  } finally {
    for (const sock of sockets) sock.destroy();
    stalled.close();
  }
});
