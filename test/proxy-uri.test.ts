/**
 * The proxy request URI read without a URL parser (src/server/proxy-uri.ts):
 * whatever it reads, it reads as WHATWG `URL` does; the URIs Prometheus sends
 * are read; the rest is left to `URL`.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { readSimpleUri } from "../src/server/proxy-uri.ts";

/** What `URL` makes of a URI, in the reader's terms (the port as written). */
function viaUrl(uri: string) {
  const url = new URL(uri);
  const port = /^[a-z]+:\/\/[^/?#:]*:(\d{1,5})(?:[/?#]|$)/i.exec(uri);
  return { protocol: url.protocol, hostname: url.hostname, port: port ? Number(port[1]) : 0, path: url.pathname + url.search };
}

function same(uri: string) {
  const r = readSimpleUri(uri);
  if (!r) return;
  const u = viaUrl(uri);
  assert.ok(u.protocol === "http:" || u.protocol === "https:", uri);
  assert.deepEqual({ hostname: r.hostname, port: r.port, path: r.path }, { hostname: u.hostname, port: u.port, path: u.path }, uri);
}

test("the URIs Prometheus sends are read, as URL reads them", () => {
  const common = [
    "http://app:9100/metrics",
    "http://app/metrics",
    "https://app.example.com:443/metrics?x=1&collect[]=cpu",
    "http://fwd.example.com./metrics",
    "http://app-1.ns.svc:8080/",
    "http://app:80",
    "http://app:0080/metrics?",
    "http://app?x=1",
    "http://node-1:9100/api/v1/nodes/node-1:10250/proxy/metrics/cadvisor",
    "http://app/a-b_c~d/e!$&'()*+,=:@f",
    "http://1a.2b/x",
  ];
  for (const uri of common) {
    assert.ok(readSimpleUri(uri), `read: ${uri}`);
    same(uri);
  }
});

test("what only a URL parser can tell is left to it", () => {
  const left = [
    "HTTP://app/metrics", "http://App/metrics", "ftp://app/metrics", "http://1.2.3.4/metrics", "http://app.0x1f/x",
    "http://app.12./x", "http://xn--nxasmq6b/x", "http://u:p@app/x", "http://app/x#f", "http://app/%2e%2e/x",
    "http://app/a/./b", "http://app/a/../b", "http://app/.well-known", "http://app:65536/x", "http://app:/x",
    "http://app/x?a='b'", "http://app/x?_scheme=https", "http://app/x?%5Fscheme=https", "http://app\\x", "http://[::1]/x",
    "http://app/x y", "http://app/x\ty", "http://app_1/x", "http://app/x?y=\u00e9", "http://app/\u00e9",
  ];
  for (const uri of left) assert.equal(readSimpleUri(uri), undefined, uri);
});

test("any URI it reads, it reads as URL does (property)", () => {
  const piece = (chars: string, max: number) => fc.string({ unit: fc.constantFrom(...chars), maxLength: max });
  const label = fc.oneof(piece("abcz09-_AX.", 8), fc.constantFrom("xn--abc", "0x", "0x1F", "12", "0", "a1", "-"));
  const host = fc.tuple(fc.array(label, { minLength: 1, maxLength: 4 }), fc.boolean()).map(([ls, dot]) => ls.join(".") + (dot ? "." : ""));
  const port = fc.constantFrom("", ":", ":80", ":0080", ":443", ":9100", ":65535", ":65536", ":99999", ":123456", ":0");
  const path = fc.oneof(fc.constant(""), piece("/ab.%2eE~_-!$&'()*+,;=:@\\\"<>^`{}| #?\u00e9\t[]", 20).map((p) => "/" + p));
  const query = fc.oneof(fc.constant(""), piece("ab=&%2_?/'\"<> #schemeX\u00e9;:@[]", 20).map((q) => "?" + q));
  const scheme = fc.constantFrom("http", "https", "HTTP", "Http", "ftp", "ws");
  const uri = fc.tuple(scheme, host, port, path, query).map(([s, h, p, pa, q]) => `${s}://${h}${p}${pa}${q}`);
  fc.assert(fc.property(uri, (u) => same(u)), { numRuns: 20000 });
});
