/**
 * `promproxy server` configuration: flags over PROMPROXY_* over a JSON or YAML
 * file (--config, PROMPROXY_CONFIG), the forwarder's rules; every unknown
 * flag, variable or key refused by name with the nearest known one.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { closest, editDistance } from "../src/shared/did-you-mean.ts";
import { resolveServerConfig, type ServerConfig } from "../src/cli/server-config.ts";

function resolve(argv: string[], env: Record<string, string> = {}, files: Record<string, string> = {}): ServerConfig {
  const cfg = resolveServerConfig(argv, env, (p) => {
    const f = files[p];
    if (f === undefined) throw new Error(`ENOENT: no such file ${p}`);
    return f;
  });
  assert.ok(cfg !== "help");
  return cfg;
}

const yaml = `listen: 0.0.0.0:9090
max-clients: 2000
drain-delay: 10s
warmup: 0
tls-require-client-cert: false
prom-auth-endpoints: [proxy, clients]
`;

test("a YAML file, the environment and flags: flags over the environment over the file", () => {
  const fromFile = resolve(["--config", "srv.yaml"], {}, { "srv.yaml": yaml });
  assert.equal(fromFile.values["listen"], "0.0.0.0:9090");
  assert.equal(fromFile.values["max-clients"], "2000", "numbers as the flag gives them");
  assert.equal(fromFile.values["warmup"], "0");
  assert.equal(fromFile.values["tls-require-client-cert"], false);
  assert.equal(fromFile.values["prom-auth-endpoints"], "proxy,clients", "a list as the flag's comma list");
  assert.equal(fromFile.from("max-clients"), "srv.yaml: max-clients");
  assert.equal(fromFile.configFile, "srv.yaml");

  const env = { PROMPROXY_CONFIG: "srv.yaml", PROMPROXY_MAX_CLIENTS: "300", PROMPROXY_LISTEN: "127.0.0.1:7000" };
  const both = resolve(["--listen", "127.0.0.1:7001"], env, { "srv.yaml": yaml });
  assert.equal(both.values["listen"], "127.0.0.1:7001", "the flag wins");
  assert.equal(both.values["max-clients"], "300", "the environment wins over the file");
  assert.equal(both.from("max-clients"), "PROMPROXY_MAX_CLIENTS");
  assert.equal(both.values["drain-delay"], "10s", "the file fills the rest");
  assert.equal(resolve([], { PROMPROXY_TLS_REQUIRE_CLIENT_CERT: "true" }).values["tls-require-client-cert"], true);

  const json = resolve(["--config", "srv.json"], {}, { "srv.json": JSON.stringify({ "max-clients": 9, "log-format": "json" }) });
  assert.equal(json.values["max-clients"], "9");
  assert.equal(json.values["log-format"], "json");
});

test("mistakes are refused by name, with the nearest known one", () => {
  assert.throws(() => resolve(["--listne", "x"]), /^CliError: unknown option --listne \(did you mean --listen\?\); run "promproxy server --help" for the options$/);
  assert.throws(() => resolve(["--max-client", "3"]), /unknown option --max-client \(did you mean --max-clients\?\)/);
  assert.throws(() => resolve(["--zzzz"]), /^CliError: unknown option --zzzz; run "promproxy server --help"/, "no guess when nothing is near");
  assert.throws(() => resolve(["serve"]), /unexpected argument "serve"/);
  assert.throws(() => resolve(["--listen"]), /--listen <value>' argument missing; run "promproxy server --help"/);
  assert.throws(() => resolve([], { PROMPROXY_LISTN: ":1" }), /^CliError: PROMPROXY_LISTN is not a setting of promproxy server \(did you mean PROMPROXY_LISTEN\?\)/);
  assert.throws(() => resolve(["--config", "s.yaml"], {}, { "s.yaml": "max-client: 3\n" }), /--config: s\.yaml: unknown key "max-client" \(did you mean "max-clients"\?\)/);
  assert.throws(() => resolve(["--config", "s.yaml"], {}, { "s.yaml": "help: true\n" }), /unknown key "help"/);
  assert.throws(() => resolve(["--config", "s.yaml"], {}, { "s.yaml": "hash-password: true\n" }), /unknown key "hash-password"/);
  assert.throws(() => resolve(["--config", "s.yaml"], {}, { "s.yaml": "listen: [a: 1\n" }), /--config: s\.yaml is not valid YAML or JSON/);
  assert.throws(() => resolve(["--config", "s.yaml"], {}, { "s.yaml": "listen: { host: a }\n" }), /s\.yaml: listen: want a string/);
  assert.throws(() => resolve(["--config", "nope.yaml"]), /--config: cannot read nope\.yaml/);
  assert.throws(() => resolve([], { PROMPROXY_CONFIG: "nope.yaml" }), /--config: cannot read nope\.yaml/, "PROMPROXY_CONFIG is read, never ignored");
  assert.throws(() => resolve([], { PROMPROXY_TLS_REQUIRE_CLIENT_CERT: "perhaps" }), /PROMPROXY_TLS_REQUIRE_CLIENT_CERT: want true or false/);
});

test("a variable far from any setting, or the forwarder's, is ignored with a warning naming it; never silently", () => {
  const shared = resolve([], { PROMPROXY_SERVER: "http://proxy:8080", PROMPROXY_NAME: "app-1", PROMPROXY_PYTHON: "/usr/bin/python3", PROMPROXY_LISTEN: "127.0.0.1:1" });
  assert.equal(shared.values["listen"], "127.0.0.1:1");
  assert.deepEqual(shared.warnings, [
    "PROMPROXY_NAME is a setting of promproxy client, not server: ignored",
    'PROMPROXY_PYTHON is not a setting of promproxy server: ignored (run "promproxy server --help" for the options)',
    "PROMPROXY_SERVER is a setting of promproxy client, not server: ignored",
  ]);
  assert.deepEqual(resolve([], { PROMPROXY_LISTEN: "127.0.0.1:1" }).warnings, []);
});

test("Kubernetes service links (a Service named promproxy*) are not taken for settings", () => {
  const links = {
    PROMPROXY_SERVICE_HOST: "10.0.0.1",
    PROMPROXY_SERVICE_PORT: "8080",
    PROMPROXY_SERVICE_PORT_HTTP: "8080",
    PROMPROXY_PORT: "tcp://10.0.0.1:8080",
    PROMPROXY_PORT_8080_TCP: "tcp://10.0.0.1:8080",
    PROMPROXY_PORT_8080_TCP_ADDR: "10.0.0.1",
    PROMPROXY_SERVER_SERVICE_HOST: "10.0.0.2",
    PROMPROXY_SERVER_PORT_8080_TCP_PROTO: "tcp",
  };
  const cfg = resolve([], links);
  assert.equal(cfg.values["listen"], undefined);
  assert.deepEqual(cfg.warnings, []);
});

test("did you mean: edit distance with swaps, near enough or nothing", () => {
  assert.equal(editDistance("listen", "listen"), 0);
  assert.equal(editDistance("listne", "listen"), 1, "a swap is one edit");
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(closest("lables", ["labels", "name"]), "labels");
  assert.equal(closest("PROMPROXY_MAX_CLIENT", ["PROMPROXY_MAX_CLIENTS", "PROMPROXY_LISTEN"]), "PROMPROXY_MAX_CLIENTS");
  assert.equal(closest("x", ["listen", "name"]), undefined);
  assert.equal(closest("target-timeout-ms", ["target-timeout", "timeout"]), "target-timeout", "a longer spelling of one");
});

test("--replicas-per-client: flag, PROMPROXY_REPLICAS_PER_CLIENT and config key; 0-64, only with --peers, refused by name otherwise", async () => {
  assert.equal(resolve(["--replicas-per-client", "2"]).values["replicas-per-client"], "2");
  const env = resolve([], { PROMPROXY_REPLICAS_PER_CLIENT: "3" });
  assert.equal(env.values["replicas-per-client"], "3");
  assert.equal(env.from("replicas-per-client"), "PROMPROXY_REPLICAS_PER_CLIENT");
  assert.equal(resolve(["--config", "s.yaml"], {}, { "s.yaml": "replicas-per-client: 2\n" }).values["replicas-per-client"], "2");
  const { runCli } = await import("./e2e/prometheus.ts");
  for (const [args, want] of [
    [["--replicas-per-client=65", "--peers=http://127.0.0.1:1"], /--replicas-per-client: at most 64 \(the largest replica set\), got 65/],
    [["--replicas-per-client=2"], /--replicas-per-client: needs --peers/],
    [["--replicas-per-client=-1"], /--replicas-per-client: want a whole number >= 0/],
  ] as const) {
    const p = runCli(["server", "--listen=127.0.0.1:0", ...args]);
    const { code } = await p.exited;
    assert.notEqual(code, 0);
    assert.match(p.stderr(), want);
    assert.doesNotMatch(p.stderr(), /\n\s+at /, "one line, no stack");
  }
});

test("--max-forwards-per-peer: flag, PROMPROXY_MAX_FORWARDS_PER_PEER and config key; a positive whole number, only with --peers", async () => {
  assert.equal(resolve(["--max-forwards-per-peer", "64"]).values["max-forwards-per-peer"], "64");
  const env = resolve([], { PROMPROXY_MAX_FORWARDS_PER_PEER: "32" });
  assert.equal(env.values["max-forwards-per-peer"], "32");
  assert.equal(env.from("max-forwards-per-peer"), "PROMPROXY_MAX_FORWARDS_PER_PEER");
  assert.equal(resolve(["--config", "s.yaml"], {}, { "s.yaml": "max-forwards-per-peer: 512\n" }).values["max-forwards-per-peer"], "512");
  const { runCli } = await import("./e2e/prometheus.ts");
  for (const [args, want] of [
    [["--max-forwards-per-peer=0", "--peers=http://127.0.0.1:1"], /--max-forwards-per-peer: want a positive whole number, got "0"/],
    [["--max-forwards-per-peer=2.5", "--peers=http://127.0.0.1:1"], /--max-forwards-per-peer: want a positive whole number, got "2.5"/],
    [["--max-forwards-per-peer=8"], /--max-forwards-per-peer: only with --peers/],
  ] as const) {
    const p = runCli(["server", "--listen=127.0.0.1:0", ...args]);
    const { code } = await p.exited;
    assert.notEqual(code, 0);
    assert.match(p.stderr(), want);
    assert.doesNotMatch(p.stderr(), /\n\s+at /, "one line, no stack");
  }
});
