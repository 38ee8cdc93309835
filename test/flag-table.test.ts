/**
 * A command's settings table (src/cli/flag-table.ts): what is read from it,
 * and the usage layout; the commands' own tables are held against
 * docs/options.md by test/options-reference.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { clientDefaults, clientEnvKeys, clientFileKeys, clientOptionSpec, targetSettingKeys } from "../src/cli/client-flags.ts";
import { defaultsOf, envKeysOf, envName, fileKeysOf, specOf, usageOf, type SettingRow } from "../src/cli/flag-table.ts";
import { serverDefaults, serverOptionSpec, serverSettingKeys, serverUsage } from "../src/cli/server-flags.ts";

const rows = [
  { key: "listen", type: "string", arg: "HOST:PORT", help: ["where to listen"], default: "127.0.0.1:8080" },
  { key: "name", type: "string", multiple: true, arg: "NAME", required: true, help: ["a name", "repeatable"] },
  { key: "a-rather-much-longer-flag-name", type: "boolean", section: "More:", help: ["says yes"], shown: "a rule much longer than the line has room for" },
  { key: "secret", type: "string", in: ["env", "file"] },
  { key: "config", type: "string", arg: "FILE", in: ["flag"], help: ["a file"] },
  { key: "help", type: "boolean", short: "h", in: ["flag"] },
] as const satisfies readonly SettingRow[];

test("flag table: the spec, the variables, the file keys and the defaults come from the rows", () => {
  assert.deepEqual(specOf(rows), {
    listen: { type: "string" },
    name: { type: "string", multiple: true },
    "a-rather-much-longer-flag-name": { type: "boolean" },
    config: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  assert.deepEqual(envKeysOf(rows), ["listen", "name", "a-rather-much-longer-flag-name", "secret"]);
  assert.deepEqual(fileKeysOf(rows), ["listen", "name", "a-rather-much-longer-flag-name", "secret"]);
  assert.deepEqual(defaultsOf(rows).listen, "127.0.0.1:8080");
  assert.equal(defaultsOf(rows).name, undefined);
  assert.equal(envName("max-scrapes-in-flight"), "PROMPROXY_MAX_SCRAPES_IN_FLIGHT");
});

test("flag table: the usage lays out flags, help, (required), defaults in brackets and sections", () => {
  const layout = { helpColumn: 31, markColumn: 50, maxWidth: 80 } as const;
  assert.equal(
    usageOf(rows, { ...layout, longFlags: "own-line" }),
    [
      "  --listen HOST:PORT           where to listen    [127.0.0.1:8080]",
      "  --name NAME                  a name             (required)",
      "                               repeatable",
      "",
      "More:",
      "  --a-rather-much-longer-flag-name",
      "                               says yes",
      "                               [a rule much longer than the line has room for]",
      "  --config FILE                a file",
    ].join("\n"),
  );
  assert.match(usageOf(rows, { ...layout, longFlags: "inline" }), /^ {2}--a-rather-much-longer-flag-name {2}says yes$/m);
});

test("flag table: the commands' tables", () => {
  assert.equal(serverDefaults.listen, "127.0.0.1:8080");
  assert.ok(!serverSettingKeys.includes("config" as never) && !serverSettingKeys.includes("hash-password" as never), "flags only");
  assert.ok("hash-password" in serverOptionSpec && "config" in serverOptionSpec);
  assert.match(serverUsage, /--max-clients as PROMPROXY_MAX_CLIENTS\nand so on \(PROMPROXY_CONFIG for --config\)/);
  assert.equal(clientDefaults["log-level"], "info");
  assert.ok(clientEnvKeys.includes("target-bearer-token") && !("target-bearer-token" in clientOptionSpec), "a secret is no flag: argv is public");
  assert.ok(clientFileKeys.has("targets") && clientFileKeys.has("labels") && !clientEnvKeys.includes("targets"), "list forms are file keys only");
  assert.deepEqual(targetSettingKeys.slice(0, 2), ["timeout", "max-response-bytes"]);
  assert.ok(targetSettingKeys.includes("bearer-token") && targetSettingKeys.includes("basic-auth-password"));
});
