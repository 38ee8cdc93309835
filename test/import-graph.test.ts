/**
 * The import graph of the runtime: what `promproxy/client` and
 * `promproxy/server` load. The conformance kit, the CLI and the benches are
 * not part of it, and no module of the runtime imports back into them.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("..", import.meta.url));
const pkg = JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")) as { exports: Record<string, unknown> };

/** Relative imports and re-exports of a module (static and dynamic), as repository paths. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(path.join(repo, file), "utf8");
  const specs = [...text.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)].map((m) => m[1]!);
  return specs.map((s) => path.relative(repo, path.resolve(path.dirname(path.join(repo, file)), s)));
}

/** Every module reachable from `entry`. */
function reach(entry: string): Set<string> {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    assert.ok(fs.existsSync(path.join(repo, f)), `${f} exists (imported on the way from ${entry})`);
    todo.push(...importsOf(f));
  }
  return seen;
}

/** The source file of a package export ("./dist/src/client/index.js" -> "src/client/index.ts"). */
function sourceOf(entry: string): string {
  const e = pkg.exports[entry] as { default: string };
  return e.default.replace(/^\.\/dist\//, "").replace(/\.js$/, ".ts");
}

for (const entry of [".", "./client", "./server"]) {
  test(`import graph: promproxy${entry === "." ? "" : entry.slice(1)} never reaches the conformance kit, the CLI, tests or benches`, () => {
    const reached = [...reach(sourceOf(entry))];
    assert.ok(reached.length > 10, `${reached.length} modules read`);
    const outside = reached.filter((f) => !(f.startsWith("src/") || f.startsWith("gen/")) || /^src\/(conformance|cli)\//.test(f));
    assert.deepEqual(outside, [], "the runtime imports none of these");
  });
}

test("import graph: the client entry loads no server module, the server entry no client engine", () => {
  const client = [...reach(sourceOf("./client"))];
  assert.deepEqual(client.filter((f) => f.startsWith("src/server/")), []);
  const server = [...reach(sourceOf("./server"))];
  // The server's own modules, shared code and the auth it runs; never the client's stream engine or targets.
  assert.deepEqual(server.filter((f) => f.startsWith("src/client/")), []);
});

test("import graph: promproxy/conformance is its own entry, and the CLI reaches the kit only through it", () => {
  const kit = reach(sourceOf("./conformance"));
  assert.ok([...kit].some((f) => f.startsWith("src/conformance/scenarios/")), "the entry carries the scenarios");
  const cli = fs.readdirSync(path.join(repo, "src/cli")).map((f) => `src/cli/${f}`);
  const direct = cli.flatMap((f) => importsOf(f).filter((i) => i.startsWith("src/conformance/") && i !== "src/conformance/index.ts").map((i) => `${f} -> ${i}`));
  assert.deepEqual(direct, []);
});
