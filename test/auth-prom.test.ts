/**
 * Prometheus-side auth (`createServer({ promAuth })`): proxied scrapes,
 * /clients and /metrics; basic auth (plain, scrypt, bcrypt, users file),
 * bearer tokens, a verify function; 407 / 401 / 403 with their headers; the
 * flood limits (429 per address, 503 past the check slots), the credential
 * cache, and the decoy that makes unknown user names cost a real check.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import type { IncomingMessage } from "node:http";
import { availableParallelism } from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import bcrypt from "bcryptjs";
import { createCredentialCache } from "../src/auth/prometheus/credential-cache.ts";
import { createHashPool } from "../src/auth/prometheus/hash-pool.ts";
import { createLoginThrottle, throttleKey } from "../src/auth/prometheus/login-throttle.ts";
import { hashCounts } from "../src/auth/prometheus/passwords.ts";
import { createPromGate, type PromGate } from "../src/auth/prometheus/prom-auth.ts";
import type { PromproxyClient } from "../src/client/index.ts";
import { hashPassword, silentLogger, type PromAuthOptions } from "../src/server/index.ts";
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

// ---------------------------------------------------------------------------------------------
// Flood limits, cache and decoy, on the gate itself (requests are fake, so that source addresses
// can be chosen and checks started in one tick).

const fakeReq = (header: string | undefined, remoteAddress: string) =>
  ({ headers: header ? { "proxy-authorization": header } : {}, socket: { remoteAddress } }) as unknown as IncomingMessage;
/** Starts a check; resolves to [status, headers, body line]. */
function ask(gate: PromGate, header: string, address = "192.0.2.1"): Promise<[number, Record<string, string | string[]>, string]> {
  const pending = gate.check(fakeReq(header, address), "http://app-1/metrics");
  assert.ok(pending);
  return pending.then((d) => (d ? [d.status, d.headers, `promproxy: ${d.message}`] : [200, {}, ""]));
}
const status = async (gate: PromGate, header: string, address?: string) => (await ask(gate, header, address))[0];
/** Hash checks started so far, in total or of one cost ("plain", "bcrypt$04", ...). */
const hashes = (cost?: string) => (cost ? (hashCounts.get(cost) ?? 0) : [...hashCounts.values()].reduce((a, b) => a + b, 0));
const gateOf = (o: PromAuthOptions) => createPromGate(o, silentLogger);

describe("promAuth: failed logins are throttled per address", () => {
  test("failureBurst: at the limit 403, over it 429 with Retry-After; cached credentials and other addresses still pass", async () => {
    const gate = gateOf({ users: { prom: "pw", other: "pw2" }, failureBurst: 3, failureRefillMs: 60_000 });
    assert.equal(await status(gate, basic("prom", "pw")), 200); // verified and cached before the flood
    for (let i = 0; i < 3; i++) assert.equal(await status(gate, basic("prom", `wrong-${i}`)), 403);
    const before = hashes();
    const [code, headers, body] = await ask(gate, basic("prom", "wrong-3"));
    assert.equal(code, 429);
    assert.equal(headers["retry-after"], "60");
    assert.equal(body, "promproxy: too many failed logins from this address, retry in 60 s");
    assert.equal(hashes(), before, "a throttled attempt costs no hash");
    assert.equal(await status(gate, basic("prom", "pw")), 200, "a cached credential passes a throttled address");
    assert.equal(await status(gate, basic("other", "pw2")), 429, "an unverified one waits, even if right");
    assert.equal(await status(gate, basic("prom", "wrong-0")), 403, "a refusal already known costs nothing, so it is not throttled");
    assert.equal(hashes(), before);
    assert.equal(await status(gate, basic("other", "pw2"), "192.0.2.2"), 200, "another address has its own bucket");
    // IPv6: one bucket per /64; IPv4-mapped addresses are their IPv4 address.
    for (let i = 0; i < 3; i++) assert.equal(await status(gate, basic("x", `y${i}`), `2001:db8:1:2::${i + 1}`), 403);
    assert.equal(await status(gate, basic("x", "y9"), "2001:db8:1:2:ffff::9"), 429);
    assert.equal(await status(gate, basic("x", "y9"), "2001:db8:1:3::1"), 403);
    assert.equal(await status(gate, basic("x", "y8"), "::ffff:192.0.2.1"), 429);
  });

  test("concurrent attempts spend failures before they finish: 10 at once, failureBurst 3, 3 hash checks", async () => {
    const gate = gateOf({ users: { prom: "pw" }, failureBurst: 3, failureRefillMs: 60_000 });
    const before = hashes();
    const codes = await Promise.all(Array.from({ length: 10 }, (_, i) => status(gate, basic(i % 2 ? "prom" : `nobody-${i}`, `guess-${i}`))));
    assert.deepEqual(codes.sort(), [403, 403, 403, 429, 429, 429, 429, 429, 429, 429]);
    assert.equal(hashes() - before, 3);
  });

  test("failureRefillMs: a failure comes back after it", async () => {
    const gate = gateOf({ users: { prom: "pw" }, failureBurst: 1, failureRefillMs: 1000 });
    assert.equal(await status(gate, basic("prom", "a")), 403);
    assert.equal(await status(gate, basic("prom", "b")), 429);
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal(await status(gate, basic("prom", "c")), 403);
    assert.equal(await status(gate, basic("prom", "d")), 429);
  });

  test("bearer guesses and verify() calls are throttled too; a good one gives its failure back", async () => {
    let calls = 0;
    const gate = gateOf({ tokens: ["good-token"], verify: (c) => (calls++, c.scheme === "bearer" && c.token === "verified"), failureBurst: 2 });
    assert.equal(await status(gate, "Bearer verified"), 200);
    assert.equal(await status(gate, "Bearer nope-1"), 403);
    assert.equal(await status(gate, "Bearer verified"), 200); // gave its token back
    assert.equal(await status(gate, "Bearer nope-2"), 403);
    assert.equal(await status(gate, "Bearer nope-3"), 429);
    assert.equal(calls, 4, "verify is not called for a throttled address");
    assert.equal(await status(gate, "Bearer good-token"), 200, "a listed token costs nothing and always passes");
    const tokensOnly = gateOf({ tokens: ["good-token"], failureBurst: 1 });
    assert.equal(await status(tokensOnly, "Bearer nope-1"), 403);
    assert.equal(await status(tokensOnly, "Bearer nope-2"), 429);
  });

  test("the throttle: exact refill, at and over maxTrackedAddresses (least recently used forgotten)", () => {
    let now = 0;
    const t = createLoginThrottle({ burst: 2, refillMs: 1000, maxAddresses: 2, now: () => now });
    for (const a of ["10.0.0.1", "10.0.0.2"]) {
      assert.equal(t.take(a), 0);
      assert.equal(t.take(a), 0);
      assert.equal(t.take(a), 1000);
    }
    assert.equal(t.size, 2);
    now = 999;
    assert.equal(t.take("10.0.0.1"), 1);
    now = 1000;
    assert.equal(t.take("10.0.0.1"), 0); // exactly one refill
    assert.equal(t.take("10.0.0.1"), 1000);
    assert.equal(t.take("10.0.0.3"), 0); // a third address: 10.0.0.2, used least recently, is forgotten
    assert.equal(t.size, 2);
    assert.equal(t.take("10.0.0.2"), 0);
    assert.equal(t.take("10.0.0.1"), 0, "forgotten in turn");
    t.refund("10.0.0.3");
    assert.equal(throttleKey("2001:DB8:0:00a::1"), "2001:db8:0:a::/64");
    assert.equal(throttleKey("::1"), "0:0:0:0::/64");
    assert.equal(throttleKey("::ffff:10.1.2.3"), "10.1.2.3");
    assert.equal(throttleKey(undefined), "unknown");
  });
});

describe("promAuth: concurrent hash checks are capped", () => {
  test("maxConcurrentChecks run, maxQueuedChecks wait, the rest get 503 with Retry-After at once", async () => {
    const gate = gateOf({ users: { prom: "pw" }, maxConcurrentChecks: 1, maxQueuedChecks: 2 });
    const before = hashes();
    const pending = Array.from({ length: 5 }, (_, i) => ask(gate, basic("prom", `guess-${i}`), `198.51.100.${i}`));
    assert.equal(hashes() - before, 1, "one check runs, the others wait for its slot");
    const answers = await Promise.all(pending);
    assert.deepEqual(answers.map((a) => a[0]), [403, 403, 403, 503, 503]);
    assert.equal(answers[3]?.[1]["retry-after"], "1");
    assert.equal(answers[3]?.[2], "promproxy: too many password checks in progress, retry in 1 s");
    assert.equal(hashes() - before, 3);
    assert.equal(await status(gate, basic("prom", "guess-9"), "198.51.100.3"), 403, "a 503 spent no failure and the slots are free again");
  });

  test("defaults: half the CPUs run, 16 wait", async () => {
    const gate = gateOf({ users: { prom: "pw" } });
    const before = hashes();
    const slots = Math.max(1, Math.floor(availableParallelism() / 2));
    const pending = Array.from({ length: slots + 20 }, (_, i) => status(gate, basic("prom", `g${i}`), `203.0.113.${i}`));
    assert.equal(hashes() - before, slots);
    const codes = await Promise.all(pending);
    assert.equal(codes.filter((c) => c === 403).length, slots + 16);
    assert.equal(codes.filter((c) => c === 503).length, 4);
  });

  test("concurrent requests with one credential share one check", async () => {
    const gate = gateOf({ users: { prom: "pw" }, failureBurst: 1 });
    const before = hashes();
    assert.deepEqual(await Promise.all(Array.from({ length: 20 }, () => status(gate, basic("prom", "pw")))), Array(20).fill(200));
    assert.equal(hashes() - before, 1);
  });

  test("bad limits are refused", () => {
    for (const o of [{ failureBurst: 0 }, { failureRefillMs: 1.5 }, { maxTrackedAddresses: -1 }, { maxConcurrentChecks: 0 }, { maxQueuedChecks: -1 }, { cacheTtlMs: Number.NaN }, { cacheMaxEntries: -1 }]) {
      assert.throws(() => gateOf({ users: { prom: "pw" }, ...o }), new RegExp(`promAuth\\.${Object.keys(o)[0]} must be an integer >= [01]`));
    }
    gateOf({ users: { prom: "pw" }, maxQueuedChecks: 0, cacheTtlMs: 0, cacheMaxEntries: 0 });
  });
});

describe("promAuth: verified credentials are cached", () => {
  test("one hash per credential; at cacheMaxEntries nothing is forgotten, over it the least recently used is", async () => {
    const gate = gateOf({ users: { a: "pa", b: "pb", c: "pc" }, cacheMaxEntries: 2 });
    let before = hashes();
    for (const u of ["a", "b", "a", "b"]) assert.equal(await status(gate, basic(u, `p${u}`)), 200);
    assert.equal(hashes() - before, 2);
    before = hashes();
    assert.equal(await status(gate, basic("c", "pc")), 200); // the third: "a" (least recently used) goes
    assert.equal(await status(gate, basic("b", "pb")), 200);
    assert.equal(hashes() - before, 1);
    assert.equal(await status(gate, basic("a", "pa")), 200);
    assert.equal(hashes() - before, 2);
    const off = gateOf({ users: { a: "pa" }, cacheMaxEntries: 0 });
    before = hashes();
    for (let i = 0; i < 3; i++) assert.equal(await status(off, basic("a", "pa")), 200);
    assert.equal(hashes() - before, 3);
  });

  test("cacheTtlMs: forgotten after it without use, kept while used", () => {
    let now = 0;
    const cache = createCredentialCache({ ttlMs: 1000, maxEntries: 10, now: () => now });
    cache.set("u", "p", "id1", true);
    cache.set("u", "bad", "id1", false);
    now = 999;
    assert.equal(cache.get("u", "p", "id1"), true); // used: kept 1000 ms more
    now = 1998;
    assert.equal(cache.get("u", "p", "id1"), true);
    assert.equal(cache.get("u", "bad", "id1"), undefined, "unused for 1000 ms: forgotten");
    assert.equal(cache.get("u", "p", "id2"), undefined, "the stored password changed");
    assert.equal(cache.get("u", "p", "id1"), undefined, "and the entry is gone");
    assert.deepEqual(cache.size, { accepted: 0, refused: 0 });
    assert.notEqual(cache.key("ab", "c"), cache.key("a", "bc"));
  });

  test("a users file reload keeps unchanged users cached and re-checks changed ones", async () => {
    const file = path.join(tmp.dir, "users-cache");
    fs.writeFileSync(file, "a:pa\nb:pb\n");
    const gate = gateOf({ usersFile: file });
    assert.equal(await status(gate, basic("a", "pa")), 200);
    assert.equal(await status(gate, basic("b", "pb")), 200);
    fs.writeFileSync(file, "a:pa\nb:pb-new\nc:pc\n# changed\n");
    const before = hashes();
    assert.equal(await status(gate, basic("a", "pa")), 200);
    assert.equal(hashes() - before, 0, "a is unchanged: still cached");
    assert.equal(await status(gate, basic("b", "pb")), 403);
    assert.equal(await status(gate, basic("b", "pb-new")), 200);
    assert.equal(hashes() - before, 2);
  });
});

describe("promAuth: unknown user names cost what known ones do", () => {
  test("an unknown name is checked against a hash of the file's type and cost; its outcome is ignored", async () => {
    const file = path.join(tmp.dir, "users-decoy");
    const b4 = (pw: string) => bcrypt.hashSync(pw, 4);
    const scryptSmall = "scrypt$1024$8$1$c2FsdHNhbHRzYWx0$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY";
    const scryptSmall2 = "scrypt$1024$8$1$c2FsdHNhbHQ$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY";
    for (const [content, cost] of [
      [`alice:${b4("pa")}\nbob:${b4("pb")}\n`, "bcrypt$04"],
      [`alice:${scryptSmall}\nbob:${scryptSmall2}\n`, "scrypt$1024$8$1$32"],
      [`alice:${b4("pa")}\nbob:${b4("pb")}\ncarol:${scryptSmall}\n`, "bcrypt$04"], // the most common kind
      [`alice:${b4("pa")}\ncarol:${scryptSmall}\n`, "scrypt$1024$8$1$32"], // as common: the costlier
    ] as const) {
      fs.writeFileSync(file, content);
      const gate = gateOf({ usersFile: file, cacheMaxEntries: 0 });
      const before = new Map(hashCounts);
      assert.equal(await status(gate, basic("mallory", "pa")), 403, "another user's password does not pass");
      assert.equal(await status(gate, basic("nobody", "x")), 403);
      const spent = [...hashCounts].filter(([k, n]) => n !== (before.get(k) ?? 0)).map(([k, n]) => [k, n - (before.get(k) ?? 0)]);
      assert.deepEqual(spent, [[cost, 2]], content);
    }
    const before = hashes("bcrypt$04");
    fs.writeFileSync(file, `alice:${b4("pa")}\n`);
    const gate = gateOf({ usersFile: file });
    assert.equal(await status(gate, basic("alice", "wrong")), 403);
    assert.equal(await status(gate, basic("alice", "pa")), 200);
    assert.equal(hashes("bcrypt$04") - before, 2, "a known name with a wrong password: one check of the same cost");
  });
});

describe("promAuth: bcrypt runs on worker threads", () => {
  test("a pool of maxWorkers, started on demand, ended after idleMs; a bad hash is no match", async () => {
    const pool = createHashPool({ maxWorkers: 1, idleMs: 50 });
    assert.equal(pool.workers, 0);
    const results = Promise.all([pool.compare("bcrypt-pass", bcryptOfBcryptPass), pool.compare("nope", bcryptOfBcryptPass), pool.compare("bcrypt-pass", bcryptOfBcryptPass)]);
    assert.equal(pool.workers, 1);
    assert.deepEqual(await results, [true, false, true]);
    assert.equal(await pool.compare("x", "$2y$05$short"), false);
    assert.equal(await pool.compare("bcrypt-pass", bcryptOfBcryptPass), true, "the worker survives a bad hash");
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(pool.workers, 0);
  });
});
