/**
 * Request paths: the canonical form (checkRequestPath) and prefix matching
 * (pathMatches), against a table of traversal and confusion attacks and a
 * table of the paths Prometheus and common exporters really use.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkRequestPath, pathMatches } from "../src/shared/paths.ts";

/** Paths that must stay allowed, each with the prefix it is served under. */
const legitimate: [prefix: string, path: string][] = [
  ["/metrics", "/metrics"],
  ["/metrics", "/metrics?x=1&collect[]=cpu"],
  ["/metrics", "/metrics/"],
  ["/metrics", "/metrics/sub"],
  ["/metrics", "/metrics?x=..%2f..%2fsecret.txt"], // the query is the exporter's business
  ["/metrics", "/metrics?a=/../../b&c=%252e%c0%ae;d\\e"],
  ["/probe", "/probe?target=http%3A%2F%2Fexample.com%2F&module=http_2xx"],
  ["/probe", "/probe?target=https://example.com/a/../b&module=http_2xx"],
  ["/federate", "/federate?match[]=up"],
  ["/federate", "/federate?match%5B%5D=%7Bjob%3D%22node%22%7D"],
  ["/", "/"],
  ["/", "/?x=1"],
  ["/", "/metrics"],
  ["/", "/.well-known/x"],
  ["/api/v1/nodes", "/api/v1/nodes/node-1:10250/proxy/metrics/cadvisor"],
  ["/", "/a-b_c~d/e!$&'()*+,=:@f"],
  ["/", "/x%3Fy%23z%5B%5D%22"], // encoded reserved characters other than "/" and ";"
];

/** Non-canonical paths, each with (a part of) the reason it is refused. */
const attacks: [path: string, reason: RegExp][] = [
  // encoded slash and backslash, any case
  ["/metrics/..%2fsecret.txt", /encoded slash/],
  ["/metrics/..%2Fsecret.txt", /encoded slash/],
  ["/metrics%2f..%2f..%2fsecret.txt", /encoded slash/],
  ["/metrics/..%5csecret.txt", /encoded backslash/],
  ["/metrics/..%5Csecret.txt", /encoded backslash/],
  // encoded dots, any case, alone or mixed with raw ones
  ["/metrics/%2e%2e%2fsecret.txt", /encoded dot/],
  ["/metrics/%2E%2E/secret.txt", /encoded dot/],
  ["/metrics/.%2e/secret.txt", /encoded dot/],
  ["/metrics/%2e./secret.txt", /encoded dot/],
  ["/metrics/%2e", /encoded dot/],
  ["/metrics/secret%2etxt", /encoded dot/],
  // other encoded unreserved characters (not canonical)
  ["/%6detrics", /encoded "m"/],
  ["/metrics/%41", /encoded "A"/],
  ["/metrics/%7e", /encoded "~"/],
  // double encoding and any "%25"
  ["/metrics/%252e%252e%252fsecret.txt", /double encoding/],
  ["/metrics/..%252fsecret.txt", /double encoding/],
  ["/metrics/%25", /double encoding/],
  ["/metrics/%2541", /double encoding/],
  // malformed percent-encodings, IIS %u
  ["/metrics/%", /not followed by two hex digits/],
  ["/metrics/%2", /not followed by two hex digits/],
  ["/metrics/%zz", /not followed by two hex digits/],
  ["/metrics/%u002e%u002e%u2215secret.txt", /not followed by two hex digits/],
  // overlong UTF-8 and Unicode look-alikes, encoded or raw
  ["/metrics/%c0%ae%c0%ae%c0%afsecret.txt", /non-ASCII/],
  ["/metrics/%c0%ae%c0%ae/secret.txt", /non-ASCII/],
  ["/metrics/%e0%80%ae%e0%80%ae/secret.txt", /non-ASCII/],
  ["/metrics/%c1%9c", /non-ASCII/],
  ["/metrics/%ef%bc%8e%ef%bc%8e/secret.txt", /non-ASCII/],
  ["/metrics/%e2%80%a5/secret.txt", /non-ASCII/],
  ["/metrics/\uff0e\uff0e/secret.txt", /U\+FF0E/],
  ["/metrics/\u2025/secret.txt", /U\+2025/],
  ["/metrics/caf\u00e9", /U\+00E9/],
  // path parameters
  ["/metrics/..;/secret.txt", /semicolon/],
  ["/metrics;x", /semicolon/],
  ["/metrics;jsessionid=1/../secret.txt", /semicolon/],
  ["/metrics/%3b/", /encoded semicolon/],
  ["/metrics/..%3B/secret.txt", /encoded semicolon/],
  // empty segments
  ["//metrics", /empty segment/],
  ["/metrics//secret.txt", /empty segment/],
  ["/metrics/..//secret.txt", /empty segment|dot segment/],
  // raw backslashes
  ["/metrics/..\\secret.txt", /backslash/],
  ["/metrics\\..\\secret.txt", /backslash/],
  ["\\metrics", /backslash/],
  // NUL, control characters, spaces: encoded or raw
  ["/metrics/%00", /control character/],
  ["/metrics/..%00/secret.txt", /control character/],
  ["/metrics/secret.txt%00.prom", /control character/],
  ["/metrics/..%0a/secret.txt", /control character/],
  ["/metrics%0d%0aX-Injected:%201", /control character/],
  ["/metrics/%09", /control character/],
  ["/metrics/%7f", /control character/],
  ["/metrics/..%20/secret.txt", /control character or space/],
  ["/metrics/\u0000", /U\+0000/],
  ["/metrics/.\t./secret.txt", /U\+0009/],
  ["/metrics/x\r\nHost: evil", /U\+000D/],
  ["/metrics x", /U\+0020/],
  ["/metrics/\u007f", /U\+007F/],
  ["/metrics?x=\u0000", /U\+0000/],
  ["/metrics?x=a b", /U\+0020/],
  // dot segments and trailing dots
  ["/metrics/../secret.txt", /dot segment/],
  ["/metrics/./../secret.txt", /dot segment/],
  ["/metrics/.", /dot segment/],
  ["/metrics/..", /dot segment/],
  ["/./metrics", /dot segment/],
  ["/x/../metrics", /dot segment/],
  ["/metrics/sub/..", /dot segment/],
  ["/metrics/...", /ending in a dot/],
  ["/metrics/..../secret.txt", /ending in a dot/],
  ["/metrics/secret.txt.", /ending in a dot/],
  ["/metrics.", /ending in a dot/],
  // fragments
  ["/metrics#", /fragment/],
  ["/metrics#/../secret.txt", /fragment/],
  ["/metrics?x=1#frag", /fragment/],
  // not a path at all
  ["", /want a path/],
  ["metrics", /want a path/],
  ["*", /want a path/],
  ["ftp://edge/metrics", /want a path/],
  ["http:/edge:9100/metrics", /want a path/],
  ["http:edge/metrics", /want a path/],
  // absolute URIs (what a proxy receives): the path is checked as received
  ["http://edge:9100/metrics/..%2f..%2fsecret.txt", /encoded slash/],
  ["http://edge:9100/metrics/..%2f..", /encoded slash/],
  ["HTTP://EDGE:9100/metrics/..%2Fsecret.txt", /encoded slash/],
  ["http://edge:9100/metrics/%2e%2e/secret.txt", /encoded dot/],
  ["http://edge:9100/metrics/../secret.txt", /dot segment/],
  ["http://edge:9100\\metrics\\..\\secret.txt", /backslash/],
  ["http://edge:9100\\..\\secret.txt", /backslash/],
  ["http://edge:9100/metrics#/../x", /fragment/],
  ["http://edge:9100//metrics", /empty segment/],
  ["https://u:p@edge:9100/metrics/..;/x", /semicolon/],
];

test("legitimate paths are canonical and match their prefix", () => {
  for (const [prefix, path] of legitimate) {
    assert.equal(checkRequestPath(path), undefined, `expected ${JSON.stringify(path)} to be allowed`);
    assert.ok(pathMatches(prefix, path), `expected ${JSON.stringify(path)} to match ${JSON.stringify(prefix)}`);
  }
  for (const uri of ["http://edge:9100/metrics", "http://edge:9100", "http://edge:9100?x=1", "https://edge/probe?target=http%3A%2F%2Fa%2F", "HTTP://Edge:9100/Metrics"]) {
    assert.equal(checkRequestPath(uri), undefined, `expected ${JSON.stringify(uri)} to be allowed`);
  }
});

test("every attack is refused with a message that names the path and the reason, and matches no prefix", () => {
  for (const [path, reason] of attacks) {
    const e = checkRequestPath(path);
    assert.ok(e !== undefined, `expected ${JSON.stringify(path)} to be refused`);
    assert.match(e, /^refused path "/, `message for ${JSON.stringify(path)}`);
    assert.match(e, reason, `reason for ${JSON.stringify(path)}: ${e}`);
    for (const prefix of ["", "/", "/metrics", "/metrics/", "/x"]) {
      assert.equal(pathMatches(prefix, path), false, `${JSON.stringify(path)} must not match ${JSON.stringify(prefix)}`);
    }
  }
});

test("a refusal message quotes a long path cut short, and control characters escaped", () => {
  const e = checkRequestPath("/metrics/" + "a".repeat(5000) + "/..");
  assert.ok(e !== undefined && e.length < 400, e);
  assert.match(e, /\.\.\."/);
  const nul = checkRequestPath("/metrics\u0000");
  assert.ok(nul !== undefined && !nul.includes("\u0000"), nul);
});

test("pathMatches: prefixes end at segment boundaries; absolute URIs never match", () => {
  assert.ok(pathMatches("", "/metrics"));
  assert.ok(pathMatches("", "/metrics?x=1"));
  assert.ok(!pathMatches("", "/metrics/x"));
  assert.ok(!pathMatches("", "/other"));
  assert.ok(pathMatches("/", "/anything/at/all"));
  assert.ok(pathMatches("/probe", "/probe?target=x"));
  assert.ok(pathMatches("/probe", "/probe/sub"));
  assert.ok(!pathMatches("/probe", "/prober"));
  assert.ok(!pathMatches("/probe", "/probe.old"));
  assert.ok(pathMatches("/a/", "/a/b"));
  assert.ok(!pathMatches("/a/", "/a"));
  assert.ok(!pathMatches("/metrics", "/Metrics"), "paths are compared as they are");
  for (const prefix of ["", "/", "/metrics"]) {
    assert.ok(!pathMatches(prefix, "http://edge:9100/metrics"), "a proxy's absolute URI is not a path");
    assert.ok(!pathMatches(prefix, "metrics"));
    assert.ok(!pathMatches(prefix, ""));
  }
});
