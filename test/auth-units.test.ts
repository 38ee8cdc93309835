/** Unit tests of the auth pieces: name patterns, password hashes, credential parsing, ALPN choice. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { defaultCertificateNames } from "../src/auth/stream/mtls-auth.ts";
import { parseStoredPassword } from "../src/auth/prometheus/passwords.ts";
import { compilePatterns } from "../src/auth/stream/patterns.ts";
import { parseCredential, promEndpointOf } from "../src/auth/prometheus/prom-auth.ts";
import { chooseAlpn } from "../src/auth/tls-credentials.ts";
import { hashPassword, verifyPassword } from "../src/server/index.ts";

describe("name patterns", () => {
  test("exact names, * within a label, ** across labels, case-insensitive", () => {
    const m = compilePatterns(["App-1", "web-*", "*.eu", "db-**"]);
    for (const yes of ["app-1", "APP-1", "web-", "web-7", "web-x-y", "a.eu", "db-1.eu.prod", "db-"]) assert.ok(m(yes), yes);
    for (const no of ["app-2", "app-1.us", "web-1.eu.x", "a.b.eu", "xweb-1", "db", "eu"]) assert.ok(!m(no), no);
    assert.ok(compilePatterns(["**"])("any.name.at-all"));
    assert.ok(!compilePatterns([])("app-1"));
  });

  test("dots and hyphens are literal, not regular expression syntax", () => {
    const m = compilePatterns(["a.b"]);
    assert.ok(m("a.b"));
    assert.ok(!m("axb"));
  });

  test("bad patterns are refused", () => {
    for (const bad of ["", "app 1", "app_1", "a/b", "***", "(app)", "app-[0-9]"]) {
      assert.throws(() => compilePatterns([bad]), /bad name pattern/, bad);
    }
  });

  test("certificate names: CN and DNS SANs that are host names", () => {
    const cert = { subject: { CN: "App-1" }, subjectaltname: "DNS:app-1.eu, IP Address:10.0.0.1, DNS:*.fleet, URI:spiffe://x" };
    assert.deepEqual(defaultCertificateNames(cert as never), ["app-1", "app-1.eu", "*.fleet"]);
    assert.deepEqual(defaultCertificateNames({ subject: { CN: "Example Corp client" } } as never), []);
  });
});

describe("passwords", () => {
  test("hashPassword writes scrypt$N$r$p$salt$hash that verifies, with a fresh salt each time", async () => {
    const a = await hashPassword("correct horse");
    const b = await hashPassword("correct horse");
    assert.match(a, /^scrypt\$32768\$8\$1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    assert.notEqual(a, b);
    assert.equal(await verifyPassword("correct horse", a), true);
    assert.equal(await verifyPassword("correct horsE", a), false);
    assert.equal(await verifyPassword("", a), false);
  });

  test("scrypt hashes from elsewhere (other parameters, padded base64) verify", async () => {
    const { scryptSync } = await import("node:crypto");
    const key = scryptSync("pw", Buffer.from("saltsalt"), 16, { N: 1024, r: 4, p: 2 }).toString("base64");
    const stored = `scrypt$1024$4$2$${Buffer.from("saltsalt").toString("base64")}$${key}`;
    assert.equal(await verifyPassword("pw", stored), true);
    assert.equal(await verifyPassword("pW", stored), false);
    assert.throws(() => parseStoredPassword("scrypt$1000$8$1$c2FsdHNhbHQ$" + key, "x"), /out of range/);
  });

  test("bcrypt: hashes made by libxcrypt verify ($2a$, $2b$, $2y$, empty and >72-byte passwords)", async () => {
    const vectors: [string, string][] = [
      ["bcrypt-pass", "$2y$05$promproxyTestSalt1234u3x1BcUoPHBJF6il4lJyPhkM7zQlVs.2"],
      ["correct horse battery staple", "$2b$04$abcdefghijABCDEFGHIJ0uoTI3e5AfYvsk6EXVQHqQ9O8MMqNZWVe"],
      ["", "$2a$04$zzzzzzzzzzzzzzzzzzzzzui03xBzXgofNodTRmeXjY4xrMhnsNteq"],
      ["ü".repeat(40), "$2b$04$012345678901234567890uxw65xfwLAQ/FC/n5QVPME6XnqZdCY6y"],
      ["abc", "$2b$06$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i"],
    ];
    for (const [pw, hash] of vectors) {
      assert.equal(await verifyPassword(pw, hash), true, hash);
      assert.equal(await verifyPassword(pw + "x", hash), Buffer.byteLength(pw) >= 72, hash);
    }
    // Only the first 72 bytes count (bcrypt's limit): 80 bytes of ü and 72 bytes of it are the same password.
    assert.equal(await verifyPassword("ü".repeat(36), vectors[3]![1]), true);
  });

  test("plain text is compared as is; unsupported hashes are refused at load", async () => {
    assert.equal(await verifyPassword("secret", "secret"), true);
    assert.equal(await verifyPassword("secreT", "secret"), false);
    for (const bad of ["$apr1$abc$def", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "$6$salt$hash", "$2x$05$abc"]) {
      assert.throws(() => parseStoredPassword(bad, "test"), (e: Error) => /unsupported password hash|malformed bcrypt/.test(e.message) && !e.message.includes(bad), bad);
    }
  });
});

describe("Prometheus-side credentials", () => {
  test("parses basic and bearer, tells malformed from unsupported", () => {
    assert.deepEqual(parseCredential(`Basic ${Buffer.from("u:p:w").toString("base64")}`), { scheme: "basic", username: "u", password: "p:w" });
    assert.deepEqual(parseCredential(`basic ${Buffer.from(":").toString("base64")}`), { scheme: "basic", username: "", password: "" });
    assert.deepEqual(parseCredential("Bearer abc.def"), { scheme: "bearer", token: "abc.def" });
    assert.equal(parseCredential(`Basic ${Buffer.from("nocolon").toString("base64")}`), "malformed");
    assert.equal(parseCredential("Basic"), "malformed");
    assert.equal(parseCredential("Bearer a b"), "malformed");
    assert.equal(parseCredential('Digest username="x"'), "unsupported");
  });

  test("endpoints: proxied (absolute URI), /clients, /metrics; others are open", () => {
    assert.equal(promEndpointOf("http://app-1:80/metrics"), "proxy");
    assert.equal(promEndpointOf("/clients"), "clients");
    assert.equal(promEndpointOf("/clients?x"), "clients");
    assert.equal(promEndpointOf("/metrics"), "metrics");
    assert.equal(promEndpointOf("/healthz"), undefined);
    assert.equal(promEndpointOf("/clients/x"), undefined);
  });
});

describe("ALPN", () => {
  test("HTTP/1.1 for clients offering both (Prometheus), h2 for h2-only clients (gRPC, Connect)", () => {
    assert.equal(chooseAlpn(["h2", "http/1.1"], true), "http/1.1");
    assert.equal(chooseAlpn(["h2"], true), "h2");
    assert.equal(chooseAlpn(["http/1.1"], true), "http/1.1");
    assert.equal(chooseAlpn(["h2", "http/1.1"], false), "h2");
    assert.equal(chooseAlpn(["http/1.1"], false), "http/1.1");
    assert.equal(chooseAlpn(["spdy/3"], true), undefined);
  });
});
