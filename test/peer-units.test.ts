/**
 * The pieces of peers on their own: the peer list (URLs, names resolved again,
 * the cap), the signature (clock-skew window and nonce limit at and over, a
 * secret file rotated in place), a peer's state (client names as a hello
 * gets them), and the options' checks.
 */
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { resolveServerOptions } from "../src/server/options.ts";
import { createPeerAuth } from "../src/server/peers/peer-auth.ts";
import { createPeerList, parsePeers } from "../src/server/peers/peer-list.ts";
import { isPeerStatePath, parsePeerState } from "../src/server/peers/peer-state.ts";
import { silentLogger, type Logger } from "../src/shared/logger.ts";

const secret = "unit-test-peer-secret-0123456789";
const statePath = "/_promproxy/peer/state";

function signedAt(key: string, ts: number, nonce = randomBytes(12).toString("hex")): string {
  const sig = createHmac("sha256", key).update(`promproxy-peer-v2\nGET\n${statePath}\n\n${ts}\n${nonce}\nr9\nr1`).digest("hex");
  return `r9;${ts};${nonce};${sig}`;
}

function capture(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (m: string) => lines.push(m);
  return { lines, debug() {}, info: log, warn: log, error: log };
}

test("parsePeers: URLs and HOST:PORT, comma-separated or a list; anything else named", () => {
  assert.deepEqual(parsePeers("http://10.0.0.1:8080, 10.0.0.2:8080").map(String), ["http://10.0.0.1:8080/", "http://10.0.0.2:8080/"]);
  assert.deepEqual(parsePeers(["https://peers.svc:8443"]).map(String), ["https://peers.svc:8443/"]);
  assert.throws(() => parsePeers("ftp://x:1"), /want http\(s\):\/\/HOST:PORT, got "ftp:\/\/x:1"/);
  assert.throws(() => parsePeers("http://x:1/path"), /want http\(s\):\/\/HOST:PORT/);
  assert.throws(() => parsePeers("http://[::1"), /not a URL or host:port/);
});

test("a peer name stands for its addresses, resolved again: added, removed, kept when DNS fails; at most maxPeers", async () => {
  let answer: string[] | Error = ["10.0.0.2", "10.0.0.1"];
  const logger = capture();
  const list = createPeerList({
    peers: parsePeers("http://peers.svc:8080,http://[fd00::9]:8080"),
    maxPeers: 3,
    logger,
    lookup: async () => {
      if (answer instanceof Error) throw answer;
      return answer.map((address) => ({ address }));
    },
  });
  assert.equal(list.resolved, false, "not before the name was resolved");
  assert.deepEqual(list.current.map((p) => p.url), ["http://[fd00::9]:8080"]);
  await list.refresh();
  assert.equal(list.resolved, true);
  assert.deepEqual(list.current.map((p) => [p.url, p.servername]), [
    ["http://10.0.0.1:8080", "peers.svc"],
    ["http://10.0.0.2:8080", "peers.svc"],
    ["http://[fd00::9]:8080", undefined],
  ]);
  answer = ["10.0.0.3"];
  await list.refresh();
  assert.deepEqual(list.current.map((p) => p.url), ["http://10.0.0.3:8080", "http://[fd00::9]:8080"]);
  answer = new Error("ENOTFOUND");
  await list.refresh();
  assert.deepEqual(list.current.map((p) => p.url), ["http://10.0.0.3:8080", "http://[fd00::9]:8080"], "the last answer kept");
  answer = ["10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7"];
  await list.refresh();
  await list.refresh();
  assert.equal(list.current.length, 3, "at most maxPeers");
  assert.equal(logger.lines.filter((l) => l.startsWith("more peers than maxPeers")).length, 1, "said once");
  assert.equal(logger.lines.filter((l) => l.startsWith("peer name not resolved")).length, 1);
});

test("the clock-skew window and the nonce limit, each at and over", () => {
  const auth = createPeerAuth({ secret, replicaId: "r1", clockSkewMs: 10_000, maxNonces: 3, logger: silentLogger });
  const verify = (h: string) => {
    const r = auth.verify("GET", statePath, { "x-promproxy-peer": h });
    return "from" in r ? { from: r.from } : r;
  };
  assert.deepEqual(verify(signedAt(secret, Date.now() - 9_000)), { from: "r9" }, "9 s old: within 10 s");
  assert.deepEqual(verify(signedAt(secret, Date.now() + 9_000)), { from: "r9" }, "9 s ahead");
  const old = verify(signedAt(secret, Date.now() - 11_000));
  assert.ok("status" in old && old.status === 403 && /timestamp -11\.0s off/.test(old.message));
  // Three nonces remembered now (the limit): a fourth request within the window is refused, 503.
  assert.deepEqual(verify(signedAt(secret, Date.now())), { from: "r9" });
  const over = verify(signedAt(secret, Date.now()));
  assert.ok("status" in over && over.status === 503 && over.reason === "too_many", JSON.stringify(over));
});

test("a forwarded scrape's signature covers its URI and its timeout header", () => {
  const a = createPeerAuth({ secret, replicaId: "r1", clockSkewMs: 10_000, maxNonces: 100, logger: silentLogger });
  const b = createPeerAuth({ secret, replicaId: "r2", clockSkewMs: 10_000, maxNonces: 100, logger: silentLogger });
  const uri = "http://app:9100/metrics";
  const h = a.sign("GET", uri, "9.5", "r2");
  const ok = b.verify("GET", uri, { "x-promproxy-peer": a.sign("GET", uri, "9.5", "r2"), "x-prometheus-scrape-timeout-seconds": "9.5" });
  assert.ok("from" in ok && ok.from === "r1");
  // Addressed to another replica, or to nobody: refused (only a state poll may be unaddressed).
  for (const to of ["r3", ""]) {
    const r = b.verify("GET", uri, { "x-promproxy-peer": a.sign("GET", uri, "9.5", to), "x-prometheus-scrape-timeout-seconds": "9.5" });
    assert.ok("status" in r && r.reason === "bad_signature", `addressed to "${to}"`);
  }
  const first = b.verify("GET", uri, { "x-promproxy-peer": a.sign("GET", uri, "9.5", ""), "x-prometheus-scrape-timeout-seconds": "9.5" }, { unaddressed: true });
  assert.ok("from" in first, "unaddressed where allowed (a first state poll)");
  for (const [method, target, timeout] of [["GET", uri, "300"], ["GET", "http://other:9100/metrics", "9.5"], ["HEAD", uri, "9.5"]] as const) {
    const r = b.verify(method, target, { "x-promproxy-peer": h, "x-prometheus-scrape-timeout-seconds": timeout });
    assert.ok("status" in r && r.reason === "bad_signature", `${method} ${target} ${timeout}`);
  }
});

test("a secret file is re-read when it changes: rotation without a refused request", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-peer-secret-"));
  try {
    const file = path.join(dir, "secret");
    const oldSecret = "old-secret-0123456789abcdef";
    const newSecret = "new-secret-0123456789abcdef";
    fs.writeFileSync(file, `${oldSecret}\n`);
    const a = createPeerAuth({ secret: { file }, replicaId: "r1", clockSkewMs: 10_000, maxNonces: 100, logger: silentLogger });
    const b = createPeerAuth({ secret: oldSecret, replicaId: "r2", clockSkewMs: 10_000, maxNonces: 100, logger: silentLogger });
    const c = createPeerAuth({ secret: newSecret, replicaId: "r3", clockSkewMs: 10_000, maxNonces: 100, logger: silentLogger });
    const check = (from: typeof b, to: typeof a) => to.verify("GET", statePath, { "x-promproxy-peer": from.sign("GET", statePath, undefined, "") }, { unaddressed: true });
    assert.ok("from" in check(b, a));
    assert.ok("status" in check(c, a), "the new secret is not known yet");
    // Step 1: the new secret added second: both verify, the old one still signs.
    fs.writeFileSync(file, `# rotating\n${oldSecret}\n${newSecret}\n`);
    await a.refresh();
    assert.ok("from" in check(b, a) && "from" in check(c, a));
    assert.ok("from" in check(a, b), "still signs with the old one");
    // Step 2: the new one first: it signs.
    fs.writeFileSync(file, `${newSecret}\n${oldSecret}\n`);
    await a.refresh();
    assert.ok("from" in check(a, c));
    // A broken file keeps the last good secrets.
    fs.writeFileSync(file, "short\n");
    await a.refresh();
    assert.ok("from" in check(a, c));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("options: peers need a secret, a secret of 16 characters at least, limits positive", () => {
  assert.throws(() => resolveServerOptions({ peers: "http://10.0.0.1:8080" }), /option peers needs peerSecret/);
  assert.throws(() => resolveServerOptions({ peers: "http://10.0.0.1:8080", peerSecret: secret, maxPeers: 0 }), /option maxPeers must be a positive whole number/);
  assert.throws(() => createPeerAuth({ secret: "fifteen-chars-x", replicaId: "r", clockSkewMs: 1, maxNonces: 1, logger: silentLogger }), /at least 16 characters/);
  assert.doesNotThrow(() => createPeerAuth({ secret: "sixteen-chars-xx", replicaId: "r", clockSkewMs: 1, maxNonces: 1, logger: silentLogger }));
  const o = resolveServerOptions({ peers: ["http://10.0.0.1:8080"], peerSecret: secret });
  assert.deepEqual([o.peerPollIntervalMs, o.peerTimeoutMs, o.peerResolveIntervalMs, o.peerClockSkewMs, o.maxPeers, o.maxPeerNonces], [1000, 2000, 5000, 10_000, 64, 100_000]);
  assert.equal(o.maxPeerStateBytes, 64 * 1024 * 1024 + 64 * 1024);
});

test("the answer to a state request is signed over the request's nonce: another nonce, status, ETag or body fails", () => {
  const a = createPeerAuth({ secret, replicaId: "r1", clockSkewMs: 10_000, maxNonces: 100, logger: silentLogger });
  const stranger = createPeerAuth({ secret: "another-secret-0123456789", replicaId: "x", clockSkewMs: 10_000, maxNonces: 100, logger: silentLogger });
  const sig = a.signAnswer("n1", 200, '"e1"', "{}");
  assert.equal(a.verifyAnswer("n1", 200, '"e1"', "{}", sig), true);
  assert.equal(a.verifyAnswer("n2", 200, '"e1"', "{}", sig), false, "a replayed answer");
  assert.equal(a.verifyAnswer("n1", 304, '"e1"', "{}", sig), false);
  assert.equal(a.verifyAnswer("n1", 200, '"e2"', "{}", sig), false);
  assert.equal(a.verifyAnswer("n1", 200, '"e1"', "[]", sig), false);
  assert.equal(a.verifyAnswer("n1", 200, '"e1"', "{}", stranger.signAnswer("n1", 200, '"e1"', "{}")), false, "another secret");
  assert.equal(a.verifyAnswer("n1", 200, '"e1"', "{}", undefined), false);
});

test("a peer's state: clients whose names a hello would be refused are left out and counted; the state path exactly", () => {
  const group = (n: string) => ({ targets: [n], labels: { __meta_promproxy_client: n, __meta_promproxy_connected: "true" } });
  const odd = ["a b", "<script>x</script>", "x".repeat(5000), "../../etc", "c0\r\nx: y", "ünï.cødé", "*", "UPPER", "1.2.3"];
  const s = parsePeerState(JSON.stringify({ id: "p1", instance: "abc", ready: true, clients: [group("ok-app"), ...odd.map(group), group("ok.b")] }));
  assert.deepEqual([...s.clients.keys()], ["ok-app", "ok.b"]);
  assert.equal(s.dropped, odd.length);
  assert.equal(s.droppedWhy, 'name "a b" is not a DNS host name (letters, digits and hyphens, dot-separated labels of 1-63 characters)');
  assert.equal(s.instance, "abc");
  assert.equal(parsePeerState(JSON.stringify({ id: "p1", ready: true, clients: [group("UPPER")] })).droppedWhy, 'name "UPPER" is not in lower case');
  assert.throws(() => parsePeerState(JSON.stringify({ id: "p1", instance: 5, ready: true, clients: [] })), /an instance that is not a string/);
  assert.equal(isPeerStatePath("/_promproxy/peer/state"), true);
  assert.equal(isPeerStatePath("/_promproxy/peer/state?x=1"), true);
  assert.equal(isPeerStatePath("/_promproxy/peer/statefoo"), false);
  assert.equal(isPeerStatePath("/_promproxy/peer/state/x"), false);
});
