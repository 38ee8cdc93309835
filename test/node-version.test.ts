/** The Node.js version check of the CLI: older than minimumNode (package.json's engines) or not. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { test } from "node:test";
import { minimumNode, olderThanMinimumNode } from "../src/shared/version.ts";

test("node version: older than the minimum, by major, minor or patch; the minimum itself and newer are not", () => {
  assert.equal(minimumNode, "22.19.0");
  for (const v of ["v20.20.2", "18.0.0", "22.18.9", "v22.0.0", "21.99.99"]) assert.equal(olderThanMinimumNode(v), true, v);
  for (const v of ["22.19.0", "v22.19.0", "22.19.1", "22.23.3", "23.0.0", "v24.1.0"]) assert.equal(olderThanMinimumNode(v), false, v);
  const pkg = JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { engines: { node: string } };
  assert.equal(pkg.engines.node, `>=${minimumNode}`);
  assert.equal(olderThanMinimumNode(process.versions.node), false, "this test's own Node");
});
