import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { HelloSchema, TargetSchema, type Hello } from "../gen/promproxy/v1/scrape_pb.ts";
import { discoveryBytesOf, groupsOf } from "../src/server/discovery.ts";
import { checkHello, helloDefaults, targetsOf, type HelloLimits } from "../src/server/hello.ts";

interface HelloInit {
  name?: string;
  labels?: Record<string, string>;
  targets?: { port?: number; path?: string; labels?: Record<string, string> }[];
  version?: string;
}

function hello(h: HelloInit): Hello {
  return create(HelloSchema, {
    name: h.name ?? "app-1",
    labels: h.labels ?? {},
    version: h.version ?? "test/0",
    targets: (h.targets ?? []).map((t) => create(TargetSchema, { port: t.port ?? 0, path: t.path ?? "", labels: t.labels ?? {} })),
  });
}

/** The "bad hello: ..." message of an InvalidArgument refusal; fails on anything else. */
function refusal(h: HelloInit, limits: HelloLimits = helloDefaults): string {
  try {
    checkHello(hello(h), limits);
  } catch (e) {
    assert.ok(e instanceof ConnectError, String(e));
    assert.equal(e.code, Code.InvalidArgument, e.rawMessage);
    assert.match(e.rawMessage, /^bad hello: /);
    return e.rawMessage;
  }
  assert.fail(`accepted ${JSON.stringify(h).slice(0, 200)}`);
}

const accepted = (h: HelloInit, limits: HelloLimits = helloDefaults) => checkHello(hello(h), limits);

/** What `/clients` would hold for a hello, measured on the real rendering. */
function listedBytes(h: HelloInit): number {
  const c = accepted(h, { ...helloDefaults, maxHelloBytes: Infinity, maxClientDiscoveryBytes: Infinity, maxLabelValueLength: Infinity });
  return Buffer.byteLength(JSON.stringify(groupsOf({ ...c, sessionId: "00000000-0000-0000-0000-000000000000" })).slice(1, -1));
}

test("defaults are documented numbers", () => {
  assert.deepEqual(helloDefaults, {
    maxLabels: 32,
    maxLabelValueLength: 1024,
    maxTargets: 64,
    maxHelloBytes: 65_536,
    maxClientDiscoveryBytes: 262_144,
  });
});

test("an accepted hello gives the canonical name, a copy of the labels and the targets", () => {
  const h = hello({ name: "App-1", labels: { env: "prod" }, targets: [{ port: 9100, path: "/", labels: { kind: "node" } }] });
  const c = checkHello(h, helloDefaults);
  assert.deepEqual(c, { name: "app-1", labels: { env: "prod" }, targets: [{ port: 9100, path: "/", labels: { kind: "node" } }] });
  assert.notEqual(c.labels, h.labels, "a copy");
  assert.deepEqual(accepted({}).targets, targetsOf([]), "no targets: one on any port at /metrics");
  assert.deepEqual(targetsOf([]), [{ port: 0, path: "", labels: {} }]);
});

test("job, instance and every reserved label are refused in hello labels and in target labels, naming the label", () => {
  for (const n of ["job", "instance", "le", "quantile", "__address__", "__scheme__", "__metrics_path__", "__param_module", "__scrape_interval__", "__scrape_timeout__", "__meta_promproxy_client", "__name__"]) {
    const inHello = refusal({ name: "evil-1", labels: { [n]: "app-1:80" } });
    assert.match(inHello, new RegExp(`^bad hello: labels: the label name "${n}" is reserved`), inHello);
    const inTarget = refusal({ name: "evil-1", targets: [{ port: 9100, path: "/", labels: { team: "a", [n]: "app-1:80" } }] });
    assert.match(inTarget, new RegExp(`^bad hello: target labels: the label name "${n}" is reserved`), inTarget);
  }
});

test("count limits: at the limit accepted, one over refused", () => {
  const limits: HelloLimits = { ...helloDefaults, maxLabels: 3, maxTargets: 2 };
  const labels = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`l${i}`, "v"]));
  const targets = (n: number) => Array.from({ length: n }, (_, i) => ({ port: 9100 + i, path: "/" }));
  accepted({ labels: labels(3), targets: targets(2) }, limits);
  assert.match(refusal({ labels: labels(4) }, limits), /^bad hello: labels: 4 labels, the maximum is 3$/);
  assert.match(refusal({ targets: targets(3) }, limits), /^bad hello: 3 targets, the maximum is 2$/);
  accepted({ targets: [{ port: 1, labels: labels(3) }] }, limits);
  assert.match(refusal({ targets: [{ port: 1, labels: labels(4) }] }, limits), /^bad hello: target labels: 4 labels, the maximum is 3$/);
});

test("label values are limited in UTF-8 bytes", () => {
  const limits: HelloLimits = { ...helloDefaults, maxLabelValueLength: 6 };
  accepted({ labels: { a: "€€" } }, limits); // 2 characters, 6 bytes
  assert.match(refusal({ labels: { a: "€€a" } }, limits), /the value of a is 7 bytes long \(UTF-8\), the maximum is 6/);
  accepted({ targets: [{ labels: { a: "😀ab" } }] }, limits); // 3 UTF-16 units + 1, 6 bytes
  assert.match(refusal({ targets: [{ labels: { a: "😀abc" } }] }, limits), /^bad hello: target labels: the value of a is 7 bytes long/);
});

test("maxHelloBytes counts the name, every label name and value and every path, in UTF-8 bytes", () => {
  // name 5 + "env" 3 + "prod€" 7 + path "/é" 3 + "k" 1 + "ü" 2 = 21
  const h: HelloInit = { name: "app-1", labels: { env: "prod€" }, targets: [{ port: 1, path: "/é", labels: { k: "ü" } }] };
  accepted(h, { ...helloDefaults, maxHelloBytes: 21 });
  assert.match(refusal(h, { ...helloDefaults, maxHelloBytes: 20 }), /^bad hello: the name, labels and paths announced take 21 bytes \(UTF-8\), the maximum is 20$/);
  // Within every count limit (32 labels of 1 KiB, 64 targets), the bytes still bind.
  const big = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`l${String(i).padStart(2, "0")}`, "x".repeat(1000)]));
  const many = Array.from({ length: 64 }, (_, i) => ({ port: 9000 + i, path: "/", labels: big }));
  assert.match(refusal({ targets: many }), /take 2\d{6} bytes \(UTF-8\), the maximum is 65536$/);
});

test("maxClientDiscoveryBytes bounds what the client adds to /clients, exactly", () => {
  const h: HelloInit = { name: "fw", labels: { env: "pr\u0001d" }, targets: [{ port: 9100, path: "/" }, { port: 9200, path: "/probe", labels: { kind: "é" } }] };
  const size = listedBytes(h);
  assert.equal(size, discoveryBytesOf({ ...accepted(h), sessionId: "00000000-0000-0000-0000-000000000000" }));
  accepted(h, { ...helloDefaults, maxClientDiscoveryBytes: size });
  assert.match(
    refusal(h, { ...helloDefaults, maxClientDiscoveryBytes: size - 1 }),
    new RegExp(`^bad hello: the client would take ${size} bytes of /clients \\(its labels repeat for each of its 2 targets, escaped as JSON\\), the maximum is ${size - 1}$`),
  );
});

test("the issue's 34 KB hello (control characters, repeated for 64 targets) is refused before it becomes 12.6 MB of JSON", () => {
  const labels = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`l${String(i).padStart(2, "0")}`, "\u0001".repeat(1024)]));
  const targets = Array.from({ length: 64 }, (_, i) => ({ port: 9000 + i, path: "/" }));
  const h: HelloInit = { name: "evil-1", labels, targets };
  const announced = 6 + 32 * (3 + 1024) + 64;
  assert.ok(announced > 32_000 && announced < 34_000 && announced <= helloDefaults.maxHelloBytes, `${announced} bytes announced`);
  const listed = listedBytes(h);
  assert.ok(listed > 12_500_000 && listed < 12_800_000, `${listed} bytes of JSON`);
  assert.match(refusal(h), new RegExp(`^bad hello: the client would take ${listed} bytes of /clients .*, the maximum is 262144$`));
});

test("other rules: DNS name, port range, paths, no target twice", () => {
  assert.match(refusal({ name: "app_1" }), /not a DNS host name/);
  assert.match(refusal({ targets: [{ port: 65536 }] }), /port 65536 is out of range/);
  accepted({ targets: [{ port: 65535 }] });
  for (const path of ["metrics", "/a b", "/m?x", "/m#f", `/${"a".repeat(1024)}`]) assert.match(refusal({ targets: [{ path }] }), /must start with "\/"/);
  assert.match(refusal({ targets: [{ port: 1, path: "/" }, { port: 1, path: "/" }] }), /announced twice/);
});
