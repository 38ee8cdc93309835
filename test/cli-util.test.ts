import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveServerConfig } from "../src/cli/server-config.ts";
import { CliError, parseDurationMs, parseHostPort, parsePositiveInt, scrapeConfig } from "../src/cli/util.ts";

test("HOST:PORT parsing", () => {
  assert.deepEqual(parseHostPort("127.0.0.1:8080", "--listen"), { host: "127.0.0.1", port: 8080 });
  assert.deepEqual(parseHostPort(":9", "--listen"), { host: "0.0.0.0", port: 9 });
  assert.deepEqual(parseHostPort("[::1]:0", "--listen"), { host: "::1", port: 0 });
  assert.throws(() => parseHostPort("8080", "--listen"), CliError);
  assert.throws(() => parseHostPort("h:99999", "--listen"), /--listen: want HOST:PORT/);
});

test("durations and counts", () => {
  assert.equal(parseDurationMs("15", "x"), 15_000);
  assert.equal(parseDurationMs("2.5s", "x"), 2_500);
  assert.equal(parseDurationMs("500ms", "x"), 500);
  assert.equal(parseDurationMs("5m", "x"), 300_000);
  assert.throws(() => parseDurationMs("0", "--x"), /--x: want a positive duration/);
  assert.throws(() => parseDurationMs("soon", "--x"), CliError);
  assert.equal(parsePositiveInt("16", "n"), 16);
  assert.throws(() => parsePositiveInt("1.5", "--n"), /--n: want a positive whole number/);
});

test("environment variables fill options missing from the command line", () => {
  const cfg = resolveServerConfig(["--max-clients", "5"], { PROMPROXY_LISTEN: "0.0.0.0:9000", PROMPROXY_MAX_CLIENTS: "7" }, () => "");
  assert.ok(cfg !== "help");
  assert.equal(cfg.values["listen"], "0.0.0.0:9000");
  assert.equal(cfg.values["max-clients"], "5", "the command line wins");
});

test("the printed Prometheus configuration uses proxy_url and http_sd_configs", () => {
  const c = scrapeConfig("http://127.0.0.1:8080");
  assert.match(c, /proxy_url: http:\/\/127\.0\.0\.1:8080$/m);
  assert.match(c, /- url: http:\/\/127\.0\.0\.1:8080\/clients$/m);
});

test("listen addresses print as dialable hosts", async () => {
  const { dialableHost } = await import("../src/cli/util.ts");
  assert.equal(dialableHost("0.0.0.0"), "127.0.0.1");
  assert.equal(dialableHost("::"), "127.0.0.1");
  assert.equal(dialableHost("::1"), "[::1]");
  assert.equal(dialableHost("10.1.2.3"), "10.1.2.3");
});
