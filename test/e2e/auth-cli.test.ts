/** `promproxy server` with its TLS and auth flags, as a child process. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { bearerToken } from "../../src/client/index.ts";
import { clientAuthOptions } from "../../src/cli/auth-flags.ts";
import { issue, tempDir, testPki, type Ca, type CertFiles } from "../auth-certs.ts";
import { curl, startClient } from "../helpers.ts";
import { cliMain, node22, runCli, type CliProcess } from "./prometheus.ts";

const tmp = tempDir();
let ca: Ca;
let serverCert: CertFiles;
let app1: CertFiles;
const file = (name: string, text: string) => {
  const p = path.join(tmp.dir, name);
  fs.writeFileSync(p, text);
  return p;
};

before(async () => {
  ({ ca, server: serverCert } = await testPki(tmp.dir));
  app1 = await issue(ca, tmp.dir, "app-1", { cn: "app-1", usage: "client" });
});
after(() => tmp.remove());

async function startCli(args: string[]): Promise<{ cli: CliProcess; port: number }> {
  const cli = runCli(["server", "--listen", "127.0.0.1:0", "--log-level", "warn", ...args]);
  await cli.waitForOutput(/listening on 127\.0\.0\.1:\d+/);
  const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(cli.stdout())?.[1]);
  return { cli, port };
}

test("--hash-password prints a scrypt hash of stdin that --prom-users-file accepts", async () => {
  const hash = await new Promise<string>((resolve, reject) => {
    const child = execFile(node22, [cliMain, "server", "--hash-password"], (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
    child.stdin?.end("cli-pass-1\n");
  });
  assert.match(hash, /^scrypt\$32768\$8\$1\$/);
  const users = file("users", `prom:${hash}\n`);
  const tokens = file("client-tokens", "cli-client-token app-* fleet\n");
  const { cli, port } = await startCli([
    "--tls-cert-file", serverCert.certFile, "--tls-key-file", serverCert.keyFile,
    "--client-token-file", tokens, "--prom-users-file", users,
  ]);
  const url = `https://127.0.0.1:${port}`;
  try {
    assert.match(cli.stdout(), /\(TLS\)/);
    assert.match(cli.stdout(), new RegExp(`proxy_url: https://USER:PASSWORD@127\\.0\\.0\\.1:${port}\\n    tls_config:\\n      ca_file: /path/to/ca.pem`));
    assert.match(cli.stdout(), /basic_auth:\n\s+username: USER\n\s+password_file: \/path\/to\/password/);

    const c = await startClient(url, "app-1", { tls: { ca: ca.cert }, interceptors: [bearerToken("cli-client-token")] });
    try {
      const ok = await curl(["-x", url, "--proxy-cacert", ca.certFile, "--proxy-user", "prom:cli-pass-1", "http://app-1/metrics"]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /^test_up_total\{name="app-1"\} 1$/m);
      const denied = await curl(["-x", url, "--proxy-cacert", ca.certFile, "-w", "%{http_code}", "-o", "/dev/null", "http://app-1/metrics"]);
      assert.equal(denied.stdout, "407");
      const sd = await curl(["--cacert", ca.certFile, "-u", "prom:cli-pass-1", `${url}/clients`]);
      assert.equal(JSON.parse(sd.stdout)[0].targets[0], "app-1");
    } finally {
      await c.stop();
    }
    await assert.rejects(
      startClient(url, "web-1", { tls: { ca: ca.cert }, interceptors: [bearerToken("cli-client-token")] }),
      (e: unknown) => e instanceof ConnectError && e.code === Code.PermissionDenied,
    );
  } finally {
    await cli.kill();
  }
});

test("--tls-client-ca-file: client certificates are identities; Prometheus connects without one", async () => {
  const { cli, port } = await startCli([
    "--tls-cert-file", serverCert.certFile, "--tls-key-file", serverCert.keyFile, "--tls-client-ca-file", ca.certFile,
  ]);
  const url = `https://127.0.0.1:${port}`;
  try {
    // The client side of the flags, as `promproxy client` uses them.
    const opts = clientAuthOptions({ serverCaFile: ca.certFile, clientCertFile: app1.certFile, clientKeyFile: app1.keyFile }, url);
    const c = await startClient(url, "app-1", opts);
    try {
      const r = await curl(["-x", url, "--proxy-cacert", ca.certFile, "http://app-1/metrics"]);
      assert.equal(r.code, 0, r.stderr);
    } finally {
      await c.stop();
    }
    await assert.rejects(
      startClient(url, "app-1", { tls: { ca: ca.cert } }),
      (e: unknown) => e instanceof ConnectError && e.code === Code.Unauthenticated,
    );
  } finally {
    await cli.kill();
  }
});

test("--prom-failure-burst and --prom-failure-refill-ms throttle failed logins per address (429 with Retry-After)", async () => {
  const users = file("throttle-users", "prom:cli-pass-2\n");
  const { cli, port } = await startCli(["--prom-users-file", users, "--prom-failure-burst", "2", "--prom-failure-refill-ms", "30000", "--prom-max-checks", "1"]);
  const url = `http://127.0.0.1:${port}`;
  const code = async (user: string) => (await curl(["-x", url, "--proxy-user", user, "-o", "/dev/null", "-w", "%{http_code}", "http://app-1/metrics"])).stdout;
  try {
    assert.equal(await code("prom:wrong-1"), "403");
    assert.equal(await code("prom:wrong-2"), "403");
    const r = await curl(["-x", url, "--proxy-user", "prom:wrong-3", "-i", "http://app-1/metrics"]);
    assert.match(r.stdout, /^HTTP\/1\.1 429 /);
    assert.match(r.stdout, /^retry-after: 30\r$/im);
    assert.match(r.stdout, /promproxy: too many failed logins from this address, retry in 30 s\n$/);
  } finally {
    await cli.kill();
  }
});

test("bad auth flags are usage errors (exit 2) that name the flag", async () => {
  const run = promisify(execFile);
  for (const [args, message] of [
    [["--tls-cert-file", serverCert.certFile], /--tls-cert-file and --tls-key-file go together/],
    [["--client-token-file", path.join(tmp.dir, "missing")], /--client-token-file .*missing: ENOENT/],
    [["--prom-users-file", file("bad-users", "prom:$apr1$x$y\n")], /unsupported password hash/],
    [["--prom-auth-endpoints", "proxy"], /needs --prom-users-file or --prom-token-file/],
    [["--prom-failure-refill-ms", "100"], /--prom-failure-refill-ms needs --prom-users-file or --prom-token-file/],
    [["--prom-users-file", file("ok-users", "prom:pw\n"), "--prom-failure-burst", "0"], /--prom-failure-burst: want a positive integer, got "0"/],
    [["--prom-users-file", file("ok-users", "prom:pw\n"), "--prom-max-checks", "two"], /--prom-max-checks: want a positive integer, got "two"/],
    [["--tls-cert-file", ca.certFile, "--tls-key-file", serverCert.keyFile], /key values mismatch/],
  ] as const) {
    const r = await run(node22, [cliMain, "server", "--listen", "127.0.0.1:0", ...args]).then(
      () => assert.fail(`${args.join(" ")} was accepted`),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message);
  }
});

test("clientAuthOptions (for promproxy client): token file re-read per attempt, TLS needs https", async () => {
  const tokenFile = file("client-token", "tok-1\n");
  const o = clientAuthOptions({ tokenFile }, "http://127.0.0.1:1");
  assert.equal(o.interceptors.length, 1);
  assert.equal(o.tls, undefined);
  assert.throws(() => clientAuthOptions({ serverCaFile: ca.certFile }, "http://127.0.0.1:1"), /need an https:\/\/ server/);
  assert.throws(() => clientAuthOptions({ clientCertFile: app1.certFile }, "https://127.0.0.1:1"), /go together/);
  assert.throws(() => clientAuthOptions({ tokenFile: file("empty-token", "\n") }, "https://127.0.0.1:1"), /is empty/);
  assert.throws(() => clientAuthOptions({ tokenFile: path.join(tmp.dir, "nope") }, "https://127.0.0.1:1"), /--token-file .*ENOENT/);
});
