/**
 * `promproxy client` configuration: flags over PROMPROXY_* over a JSON or
 * YAML file, and the messages for mistakes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveClientConfig, splitLabels, splitTargets, type ClientConfig } from "../src/cli/config.ts";

function resolve(argv: string[], env: Record<string, string> = {}, files: Record<string, string> = {}): ClientConfig {
  const c = resolveClientConfig(argv, env, (p) => {
    const f = files[p];
    if (f === undefined) throw new Error(`ENOENT: no such file, open '${p}'`);
    return f;
  });
  assert.notEqual(c, "help");
  return c as ClientConfig;
}

test("flags: repeatable targets and labels, target-wide settings", () => {
  const c = resolve([
    "--name", "host-1", "--server", "http://proxy:8080",
    "--target", "9100=http://127.0.0.1:9100/metrics", "--target", "https://127.0.0.1:9443/",
    "--label", "env=prod", "--label", "team=a=b",
    "--target-timeout", "5s", "--target-max-response-bytes", "64MiB", "--target-insecure-skip-verify",
    "--metrics-listen", "127.0.0.1:9099", "--max-scrapes-in-flight", "4", "--log-level", "warn",
    "--max-server-frames-per-second", "2000",
  ]);
  assert.equal(c.name, "host-1");
  assert.equal(c.server, "http://proxy:8080");
  assert.deepEqual(c.labels, { env: "prod", team: "a=b" });
  assert.deepEqual(c.targets, [
    { url: "http://127.0.0.1:9100/metrics", port: 9100, labels: {}, timeoutMs: 5000, maxResponseBytes: 64 * 1024 * 1024, insecureSkipVerify: true },
    { url: "https://127.0.0.1:9443/", labels: {}, timeoutMs: 5000, maxResponseBytes: 64 * 1024 * 1024, insecureSkipVerify: true },
  ]);
  assert.deepEqual(c.metricsListen, { host: "127.0.0.1", port: 9099 });
  assert.equal(c.maxScrapesInFlight, 4);
  assert.equal(c.maxServerFramesPerSecond, 2000);
  assert.equal(c.logLevel, "warn");
});

test("--max-server-frames-per-second: 10 to 1000000, refused outside with the flag's name", () => {
  const at = (n: string) => resolve(["--name", "h", "--server", "http://p:1", "--target", "http://127.0.0.1:9100/", "--max-server-frames-per-second", n]);
  assert.equal(at("10").maxServerFramesPerSecond, 10);
  assert.equal(at("1000000").maxServerFramesPerSecond, 1_000_000);
  assert.throws(() => at("9"), /--max-server-frames-per-second: want a whole number from 10 to 1000000, got 9/);
  assert.throws(() => at("1000001"), /--max-server-frames-per-second: want a whole number from 10 to 1000000/);
  assert.throws(() => at("1e3x"), /--max-server-frames-per-second: want a positive whole number/);
  const control = (n: string) => resolve(["--name", "h", "--server", "http://p:1", "--target", "http://127.0.0.1:9100/", "--max-server-control-frames-per-second", n]);
  assert.equal(control("10").maxServerControlFramesPerSecond, 10);
  assert.equal(control("1000000").maxServerControlFramesPerSecond, 1_000_000);
  assert.equal(at("10").maxServerControlFramesPerSecond, undefined, "unset: the library's default (100)");
  assert.throws(() => control("9"), /--max-server-control-frames-per-second: want a whole number from 10 to 1000000, got 9/);
  assert.throws(() => control("1000001"), /--max-server-control-frames-per-second: want a whole number from 10 to 1000000/);
  const overhead = (n: string) => resolve(["--name", "h", "--server", "http://p:1", "--target", "http://127.0.0.1:9100/", "--max-server-overhead-bytes-per-second", n]);
  assert.equal(overhead("65536").maxServerOverheadBytesPerSecond, 65_536);
  assert.equal(overhead("1073741824").maxServerOverheadBytesPerSecond, 1_073_741_824);
  assert.equal(at("10").maxServerOverheadBytesPerSecond, undefined, "unset: the library's default (1 MiB)");
  assert.throws(() => overhead("65535"), /--max-server-overhead-bytes-per-second: want a whole number from 65536 to 1073741824, got 65535/);
  assert.throws(() => overhead("1073741825"), /--max-server-overhead-bytes-per-second: want a whole number from 65536 to 1073741824/);
});

test("environment variables for every flag; flags win; labels merge", () => {
  const env = {
    PROMPROXY_NAME: "from-env",
    PROMPROXY_SERVER: "http://env:8080",
    PROMPROXY_TARGET: "9100=http://127.0.0.1:9100/metrics, 9200=http://127.0.0.1:9200/metrics",
    PROMPROXY_LABEL: "env=prod,list=a,b, team=x",
    PROMPROXY_TARGET_TIMEOUT: "250ms",
    PROMPROXY_TARGET_INSECURE_SKIP_VERIFY: "true",
    PROMPROXY_TARGET_BEARER_TOKEN: "s3cret",
    PROMPROXY_LOG_LEVEL: "debug",
    PROMPROXY_METRICS_LISTEN: ":9099",
  };
  const c = resolve([], env);
  assert.equal(c.name, "from-env");
  assert.deepEqual(c.labels, { env: "prod", list: "a,b", team: "x" });
  assert.deepEqual(c.targets.map((t) => [t.port, t.url, t.timeoutMs, t.insecureSkipVerify, t.bearerToken]), [
    [9100, "http://127.0.0.1:9100/metrics", 250, true, "s3cret"],
    [9200, "http://127.0.0.1:9200/metrics", 250, true, "s3cret"],
  ]);
  assert.equal(c.logLevel, "debug");
  assert.deepEqual(c.metricsListen, { host: "0.0.0.0", port: 9099 });

  const f = resolve(["--name", "flag", "--target", "http://x/", "--label", "env=dev", "--target-timeout", "1s"], env);
  assert.equal(f.name, "flag");
  assert.deepEqual(f.targets.map((t) => [t.url, t.timeoutMs]), [["http://x/", 1000]], "flag targets replace the environment's");
  assert.deepEqual(f.labels, { env: "dev", list: "a,b", team: "x" });
});

const yamlConfig = `# a forwarder
name: host-1
server: http://proxy:8080
labels:
  env: prod
  rack: 7
target-timeout: 10s
targets:
  - 9100=http://127.0.0.1:9100/metrics
  - port: 9187
    url: https://127.0.0.1:9187/metrics
    labels: { exporter: postgres }
    timeout: 2.5
    ca-file: /etc/ca.pem
    basic-auth-user: prometheus
    basic-auth-password-file: /run/secrets/pg
max-scrapes-in-flight: 3
`;

test("a YAML config file with the same fields; flags and env over it", () => {
  const c = resolve(["--config", "/etc/promproxy.yml"], {}, { "/etc/promproxy.yml": yamlConfig });
  assert.equal(c.name, "host-1");
  assert.deepEqual(c.labels, { env: "prod", rack: "7" });
  assert.equal(c.maxScrapesInFlight, 3);
  assert.deepEqual(c.targets, [
    { url: "http://127.0.0.1:9100/metrics", port: 9100, labels: {}, timeoutMs: 10_000 },
    {
      url: "https://127.0.0.1:9187/metrics",
      port: 9187,
      labels: { exporter: "postgres" },
      timeoutMs: 2500,
      caFile: "/etc/ca.pem",
      basicAuthUser: "prometheus",
      basicAuthPasswordFile: "/run/secrets/pg",
    },
  ]);
  const o = resolve(["--name", "other", "--label", "env=dev"], { PROMPROXY_CONFIG: "/c.yaml", PROMPROXY_SERVER: "http://env:1" }, { "/c.yaml": yamlConfig });
  assert.equal(o.name, "other");
  assert.equal(o.server, "http://env:1");
  assert.deepEqual(o.labels, { env: "dev", rack: "7" });
  assert.equal(o.targets.length, 2);
});

test("several servers: repeated --server, PROMPROXY_SERVER with commas, a list in the file", () => {
  const t = ["--name", "n", "--target", "http://a/"];
  assert.deepEqual(resolve([...t, "--server", "http://r1:8080", "--server", "http://r2:8080"]).servers, ["http://r1:8080", "http://r2:8080"]);
  assert.deepEqual(resolve(t, { PROMPROXY_SERVER: "http://r1:8080, http://r2:8080 http://r3:8080" }).servers, ["http://r1:8080", "http://r2:8080", "http://r3:8080"]);
  const yaml = "server:\n  - http://r1:8080\n  - http://r2:8080\n";
  const f = resolve(["--config", "c.yaml", ...t], {}, { "c.yaml": yaml });
  assert.deepEqual(f.servers, ["http://r1:8080", "http://r2:8080"]);
  assert.equal(f.server, "http://r1:8080, http://r2:8080");
  assert.deepEqual(resolve(["--server", "http://flag:1", ...t], { PROMPROXY_SERVER: "http://env:1" }).servers, ["http://flag:1"], "flags win");
  assert.throws(() => resolve(["--config", "c.yaml", ...t], {}, { "c.yaml": "server: [3]\n" }), /c.yaml: server: want a URL, got 3/);
});

test("a JSON config file", () => {
  const json = JSON.stringify({ name: "j", server: "http://p:1", targets: [{ url: "http://a/", port: 9100, "max-response-bytes": 1000 }], label: ["k=v"] });
  const c = resolve(["--config", "c.json"], {}, { "c.json": json });
  assert.deepEqual(c.targets, [{ url: "http://a/", port: 9100, labels: {}, maxResponseBytes: 1000 }]);
  assert.deepEqual(c.labels, { k: "v" });
});

test("mistakes are named precisely", () => {
  const base = ["--name", "n", "--server", "http://s:1"];
  assert.throws(() => resolve(["--server", "http://s:1", "--target", "http://a/"]), /--name is required/);
  assert.throws(() => resolve(["--name", "n", "--target", "http://a/"]), /--server is required/);
  assert.throws(() => resolve(base), /at least one --target \[PORT=\]URL is required/);
  assert.throws(() => resolve([...base, "--bogus"]), /: unknown option --bogus; run "promproxy client --help" for the options$/);
  assert.throws(() => resolve([...base, "--target", "http://a/", "--label", "novalue"]), /--label: want KEY=VALUE, got "novalue"/);
  assert.throws(() => resolve([...base, "--target", "0=http://a/"]), /--target: want a port 1-65535, got "0"/);
  assert.throws(() => resolve([...base, "--target", "http://a/", "--target-timeout", "soon"]), /--target-timeout: want a positive duration/);
  assert.throws(() => resolve([...base, "--target", "http://a/", "--target-max-response-bytes", "lots"]), /want a positive size/);
  assert.throws(() => resolve([...base, "--target", "http://a/"], { PROMPROXY_TARGET_INSECURE_SKIP_VERIFY: "maybe" }), /PROMPROXY_TARGET_INSECURE_SKIP_VERIFY: want true or false/);
  assert.throws(() => resolve([...base, "--target", "http://a/", "--log-level", "loud"]), /--log-level: unknown level "loud"/);
  assert.throws(() => resolve([...base, "--config", "/nope.yml"]), /--config: cannot read \/nope\.yml/);
  assert.throws(() => resolve([...base, "--config", "c.yml"], {}, { "c.yml": "targets: [a\n" }), /--config: c\.yml is not valid YAML or JSON/);
  assert.throws(() => resolve([...base, "--config", "c.yml"], {}, { "c.yml": "tragets: []\n" }), /unknown key "tragets"/);
  assert.throws(() => resolve([...base, "--config", "c.yml"], {}, { "c.yml": "targets:\n  - port: 1\n    urll: http://a/\n" }), /c\.yml: targets\[0\]: unknown key "urll"/);
  assert.throws(() => resolve([...base, "--config", "c.yml"], {}, { "c.yml": "targets:\n  - port: 1\n" }), /targets\[0\]: url is required/);
  assert.throws(
    () => resolve([...base, "--config", "c.yml"], {}, { "c.yml": "targets:\n  - url: http://a/\n    basic-auth-password: x\n" }),
    /a basic auth password needs basic-auth-user/,
  );
  assert.throws(() => resolve(["--config", "c.yml"], {}, { "c.yml": "name: 7\nserver: http://s:1\ntargets: [http://a/]\n" }), /c\.yml: name: want a string, got 7$/);
  assert.throws(() => resolve([...base, "--config", "c.yml"], {}, { "c.yml": "targets:\n  - url: http://a/\n    ca-file: 5\n" }), /c\.yml: targets\[0\]\.ca-file: want a string, got 5$/);
  assert.throws(() => resolve([...base, "--target", "http://a/", "--target-ca-file", ""]), /--target-ca-file: want a string, got ""$/);
  assert.equal(resolveClientConfig(["--help"], {}, () => ""), "help");
});

test("splitting list variables", () => {
  assert.deepEqual(splitTargets(" 9100=http://a/metrics,9200=http://b/  http://c/ "), ["9100=http://a/metrics", "9200=http://b/", "http://c/"]);
  assert.deepEqual(splitLabels("a=1, b=x,y,c=2"), ["a=1", "b=x,y", "c=2"]);
});

test("PROMPROXY_* variables: a typo refused with the nearest name, the server's or a foreign one ignored with a warning", () => {
  const base = ["--name", "n", "--server", "http://s:1", "--target", "http://a/"];
  assert.throws(() => resolve(base, { PROMPROXY_TAGRET: "http://b/" }), /^CliError: PROMPROXY_TAGRET is not a setting of promproxy client \(did you mean PROMPROXY_TARGET\?\)/);
  const cfg = resolve(base, { PROMPROXY_LISTEN: ":1", PROMPROXY_PYTHON: "python3" });
  assert.deepEqual(cfg.warnings, [
    "PROMPROXY_LISTEN is a setting of promproxy server, not client: ignored",
    'PROMPROXY_PYTHON is not a setting of promproxy client: ignored (run "promproxy client --help" for the options)',
  ]);
});

test("--target-max-scrapes-per-second: flag, environment, config file (for all, and per target); 0, negative and NaN refused", () => {
  const base = ["--name", "n", "--server", "http://s:1"];
  const flag = resolve([...base, "--target", "http://a/", "--target-max-scrapes-per-second", "2.5"]);
  assert.equal(flag.targets[0]?.maxScrapesPerSecond, 2.5);
  assert.equal(resolve([...base, "--target", "http://a/"]).targets[0]?.maxScrapesPerSecond, undefined, "not given: the library's default (10)");
  const env = resolve([...base, "--target", "http://a/"], { PROMPROXY_TARGET_MAX_SCRAPES_PER_SECOND: "20" });
  assert.equal(env.targets[0]?.maxScrapesPerSecond, 20);
  const yaml = "target-max-scrapes-per-second: 4\ntargets:\n  - http://a/\n  - url: http://b/\n    port: 9200\n    max-scrapes-per-second: 0.5\n";
  const file = resolve([...base, "--config", "c.yml"], {}, { "c.yml": yaml });
  assert.deepEqual(file.targets.map((t) => t.maxScrapesPerSecond), [4, 0.5]);
  for (const bad of ["0", "-1", "NaN", "fast", "", "Infinity"]) {
    assert.throws(
      () => resolve([...base, "--target", "http://a/", `--target-max-scrapes-per-second=${bad}`]),
      (e: Error) => e.message === `--target-max-scrapes-per-second: want a positive number, got ${JSON.stringify(bad)}`,
    );
  }
  assert.throws(() => resolve([...base, "--target", "http://a/"], { PROMPROXY_TARGET_MAX_SCRAPES_PER_SECOND: "0" }), /PROMPROXY_TARGET_MAX_SCRAPES_PER_SECOND: want a positive number, got "0"/);
  assert.throws(
    () => resolve([...base, "--config", "c.yml"], {}, { "c.yml": "targets:\n  - url: http://a/\n    max-scrapes-per-second: -2\n" }),
    /targets\[0\]\.max-scrapes-per-second: want a positive number, got -2/,
  );
});
