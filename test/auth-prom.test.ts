/**
 * Prometheus-side auth (`createServer({ promAuth })`): proxied scrapes,
 * /clients and /metrics; basic auth (plain, scrypt, bcrypt, users file),
 * bearer tokens, a verify function; 407 / 401 / 403 with their headers.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import type { PromproxyClient } from "../src/client/index.ts";
import { hashPassword, type PromAuthOptions } from "../src/server/index.ts";
import { tempDir } from "./auth-certs.ts";
import { curl, proxyGet, startClient, startServer, type TestServer } from "./helpers.ts";

const tmp = tempDir();
after(() => tmp.remove());

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
/** Computed by libxcrypt (Python's crypt module), not by our implementation. */
const bcryptOfBcryptPass = "$2y$05$promproxyTestSalt1234u3x1BcUoPHBJF6il4lJyPhkM7zQlVs.2";

let scryptOfScryptPass: string;
before(async () => {
  scryptOfScryptPass = await hashPassword("scrypt-pass");
});

async function withServer(promAuth: PromAuthOptions, fn: (s: TestServer) => Promise<void>): Promise<void> {
  const s = await startServer({ promAuth });
  let c: PromproxyClient | undefined;
  try {
    c = await startClient(s.url, "app-1");
    await fn(s);
  } finally {
    await c?.stop();
    await s.close();
  }
}

const get = (s: TestServer, p: string, headers: Record<string, string> = {}) => proxyGet(s.port, p, headers);

describe("promAuth: proxied scrapes", () => {
  test("without credentials: 407 with Proxy-Authenticate; wrong: 403; right (Proxy-Authorization): 200", async () => {
    await withServer({ users: { prom: "plain-pass" } }, async (s) => {
      const none = await get(s, "http://app-1/metrics");
      assert.equal(none.status, 407);
      assert.equal(none.headers["proxy-authenticate"], 'Basic realm="promproxy", charset="UTF-8"');
      assert.equal(none.body.toString(), "promproxy: proxy authentication required: put user:password in proxy_url, or send a bearer token\n");

      const wrong = await get(s, "http://app-1/metrics", { "proxy-authorization": basic("prom", "nope") });
      assert.equal(wrong.status, 403);
      assert.equal(wrong.body.toString(), "promproxy: credentials refused\n");
      const unknownUser = await get(s, "http://app-1/metrics", { "proxy-authorization": basic("mallory", "plain-pass") });
      assert.equal(unknownUser.status, 403);
      const malformed = await get(s, "http://app-1/metrics", { "proxy-authorization": "Basic !!!" });
      assert.equal(malformed.status, 403);
      assert.equal(malformed.body.toString(), "promproxy: malformed credentials\n");

      const ok = await get(s, "http://app-1/metrics", { "proxy-authorization": basic("prom", "plain-pass") });
      assert.equal(ok.status, 200);
      assert.match(ok.body.toString(), /^test_up_total\{name="app-1"\} 1$/m);
      // Also from Authorization (a scrape config's basic_auth) when no Proxy-Authorization is sent.
      const viaAuthorization = await get(s, "http://app-1/metrics", { authorization: basic("prom", "plain-pass") });
      assert.equal(viaAuthorization.status, 200);
      // An unknown client still needs credentials first: names are not revealed to strangers.
      assert.equal((await get(s, "http://nobody/metrics")).status, 407);
    });
  });

  test("curl -x with --proxy-user works; the refusals are counted by outcome", async () => {
    await withServer({ users: { prom: scryptOfScryptPass } }, async (s) => {
      const r = await curl(["-x", s.url, "--proxy-user", "prom:scrypt-pass", "http://app-1/metrics"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^test_up_total/m);
      const denied = await curl(["-x", s.url, "-w", "%{http_code}", "-o", "/dev/null", "http://app-1/metrics"]);
      assert.equal(denied.stdout, "407");
      await get(s, "http://app-1/metrics", { "proxy-authorization": basic("prom", "x") });
      const m = await get(s, "/metrics", { authorization: basic("prom", "scrypt-pass") });
      assert.match(m.body.toString(), /^promproxy_scrapes_total\{outcome="unauthenticated"\} 1$/m);
      assert.match(m.body.toString(), /^promproxy_scrapes_total\{outcome="forbidden"\} 1$/m);
    });
  });

  test("bcrypt hashes (htpasswd -B, Prometheus web.yml) are accepted", async () => {
    await withServer({ users: { prom: bcryptOfBcryptPass } }, async (s) => {
      assert.equal((await get(s, "http://app-1/metrics", { "proxy-authorization": basic("prom", "bcrypt-pass") })).status, 200);
      assert.equal((await get(s, "http://app-1/metrics", { "proxy-authorization": basic("prom", "bcrypt-pasS") })).status, 403);
    });
  });

  test("bearer tokens (Prometheus authorization.credentials) in Authorization", async () => {
    await withServer({ tokens: ["prom-bearer-token"] }, async (s) => {
      const none = await get(s, "http://app-1/metrics");
      assert.equal(none.status, 407);
      assert.equal(none.headers["proxy-authenticate"], 'Bearer realm="promproxy"');
      assert.equal((await get(s, "http://app-1/metrics", { authorization: "Bearer prom-bearer-token" })).status, 200);
      assert.equal((await get(s, "http://app-1/metrics", { authorization: "Bearer prom-bearer-tokeN" })).status, 403);
      // A scheme the server does not take counts as no credentials.
      assert.equal((await get(s, "http://app-1/metrics", { authorization: 'Digest username="x"' })).status, 407);
    });
  });
});

describe("promAuth: /clients, /metrics, /healthz", () => {
  test("/clients unauthenticated: 401 with WWW-Authenticate; wrong: 403; right: the http_sd document", async () => {
    await withServer({ users: { prom: "plain-pass" }, tokens: ["prom-bearer-token"] }, async (s) => {
      const none = await get(s, "/clients");
      assert.equal(none.status, 401);
      assert.deepEqual(none.headers["www-authenticate"], 'Basic realm="promproxy", charset="UTF-8", Bearer realm="promproxy"');
      assert.equal(none.body.toString(), "promproxy: authentication required for /clients\n");
      assert.equal((await get(s, "/clients", { authorization: basic("prom", "wrong") })).status, 403);
      // Proxy-Authorization is for proxied scrapes only.
      assert.equal((await get(s, "/clients", { "proxy-authorization": basic("prom", "plain-pass") })).status, 401);
      const ok = await get(s, "/clients", { authorization: basic("prom", "plain-pass") });
      assert.equal(ok.status, 200);
      assert.equal(JSON.parse(ok.body.toString())[0].targets[0], "app-1");
      assert.equal((await get(s, "/clients?x=1", { authorization: "Bearer prom-bearer-token" })).status, 200);

      assert.equal((await get(s, "/metrics")).status, 401);
      assert.equal((await get(s, "/metrics", { authorization: basic("prom", "plain-pass") })).status, 200);
      assert.equal((await get(s, "/healthz")).status, 200);
      assert.equal((await get(s, "/nothing-here")).status, 404);
    });
  });

  test("protect chooses the endpoints", async () => {
    await withServer({ users: { prom: "plain-pass" }, protect: { metrics: false, clients: false } }, async (s) => {
      assert.equal((await get(s, "/metrics")).status, 200);
      assert.equal((await get(s, "/clients")).status, 200);
      assert.equal((await get(s, "http://app-1/metrics")).status, 407);
    });
    await withServer({ users: { prom: "plain-pass" }, protect: { proxy: false } }, async (s) => {
      assert.equal((await get(s, "http://app-1/metrics")).status, 200);
      assert.equal((await get(s, "/clients")).status, 401);
    });
  });
});

describe("promAuth: sources of credentials", () => {
  test("a users file (htpasswd style) is reloaded when it changes; a broken change keeps the old users", async () => {
    const file = path.join(tmp.dir, "users");
    fs.writeFileSync(file, `# promproxy users\nprom:${bcryptOfBcryptPass}\n`);
    await withServer({ usersFile: file }, async (s) => {
      const as = (user: string, pw: string) => get(s, "http://app-1/metrics", { "proxy-authorization": basic(user, pw) });
      assert.equal((await as("prom", "bcrypt-pass")).status, 200);
      assert.equal((await as("prom", "bcrypt-pass")).status, 200); // cached
      fs.writeFileSync(file, `prom2:${scryptOfScryptPass}\n`);
      assert.equal((await as("prom", "bcrypt-pass")).status, 403); // removed, even though it was cached
      assert.equal((await as("prom2", "scrypt-pass")).status, 200);
      fs.writeFileSync(file, "prom3:$apr1$unsupported\n");
      assert.equal((await as("prom2", "scrypt-pass")).status, 200);
      assert.equal((await as("prom3", "x")).status, 403);
    });
  });

  test("a token file, one token per line", async () => {
    const file = path.join(tmp.dir, "prom-tokens");
    fs.writeFileSync(file, "# tokens\ntoken-from-file\n");
    await withServer({ tokenFile: file, protect: { proxy: false } }, async (s) => {
      assert.equal((await get(s, "/clients", { authorization: "Bearer token-from-file" })).status, 200);
      assert.equal((await get(s, "/clients", { authorization: "Bearer token-from-fil" })).status, 403);
    });
  });

  test("a verify function sees the credential and the endpoint", async () => {
    const seen: string[] = [];
    await withServer(
      {
        verify: (c, r) => {
          seen.push(`${r.endpoint} ${c.scheme}`);
          return c.scheme === "basic" ? c.username === "ldap-user" && c.password === "ldap-pass" : c.token === "oidc-token";
        },
      },
      async (s) => {
        assert.equal((await get(s, "http://app-1/metrics", { "proxy-authorization": basic("ldap-user", "ldap-pass") })).status, 200);
        assert.equal((await get(s, "/clients", { authorization: "Bearer oidc-token" })).status, 200);
        assert.equal((await get(s, "/clients", { authorization: "Bearer other" })).status, 403);
        assert.deepEqual(seen, ["proxy basic", "clients bearer", "clients bearer"]);
      },
    );
  });

  test("a bad configuration fails at createServer", async () => {
    const { createServer } = await import("../src/server/index.ts");
    assert.throws(() => createServer({ promAuth: {} }), /promAuth needs/);
    assert.throws(() => createServer({ promAuth: { users: { prom: "$apr1$xyz" } } }), /unsupported password hash/);
    assert.throws(() => createServer({ promAuth: { users: { prom: "$2y$05$short" } } }), /malformed bcrypt hash/);
    assert.throws(() => createServer({ promAuth: { users: { "a:b": "x" } } }), /bad user name/);
    assert.throws(() => createServer({ promAuth: { tokens: ["with space"] } }), /not a bearer token/);
    const file = path.join(tmp.dir, "bad-users");
    fs.writeFileSync(file, "prom:plain\nprom:again\n");
    assert.throws(() => createServer({ promAuth: { usersFile: file } }), /bad-users line 2: user "prom" appears twice/);
  });
});
