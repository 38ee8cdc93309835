/**
 * Replicas that know each other (`--peers`, `--peer-secret-file`): three
 * `promproxy server` processes given each other as a list of URLs and one
 * secret file; clients that each hold only some replicas. Any client is
 * scrapeable through any replica (forwarded once, never looped), `/clients`
 * is the same everywhere, strangers cannot pose as peers, a replica killed
 * with SIGKILL takes its clients out of the others' lists, and a real
 * Prometheus scraping through one replica sees every client up.
 */
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { type PromproxyClient } from "../../src/client/index.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { createPeerAuth } from "../../src/server/peers/peer-auth.ts";
import { proxyGet, startClient, waitFor } from "../helpers.ts";
import { freePorts, ready, startReplica, stopReplica, type Replica } from "./fixtures/ha/cluster.ts";
import { runCli, startPrometheus, type RunningPrometheus } from "./prometheus.ts";

const secret = randomBytes(32).toString("hex");
const statePath = "/_promproxy/peer/state";
/** Who holds whom: replica index -> client names connected to it alone (on-ab to r1 and r2). */
const placement: Record<string, number[]> = { "only-a": [0], "only-b": [1], "only-c": [2], "on-ab": [0, 1] };
const names = Object.keys(placement);

/** The value of one sample of a replica's /metrics, 0 when absent (a fresh one: the page is rebuilt at most once a second). */
async function metric(url: string, series: string): Promise<number> {
  await new Promise((r) => setTimeout(r, 1_100));
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

/** A replica's /clients as a sorted list of JSON groups, and the names it lists with whether connected. */
async function clientsOf(url: string): Promise<{ groups: string[]; listed: Map<string, boolean> }> {
  const groups = (await (await fetch(`${url}/clients`, { signal: AbortSignal.timeout(2_000) })).json()) as { targets: string[]; labels: Record<string, string> }[];
  const listed = new Map(groups.map((g) => [g.labels["__meta_promproxy_client"]!, g.labels["__meta_promproxy_connected"] === "true"]));
  return { groups: groups.map((g) => JSON.stringify(g)).sort(), listed };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe("peers: three replicas that know each other", { timeout: 180_000 }, () => {
  const replicas: Replica[] = [];
  const clients: PromproxyClient[] = [];
  let prom: RunningPrometheus | undefined;
  let dir: string;
  const figures: string[] = [];
  /** A signer holding the real secret, as a peer would: for the loop and replay checks. */
  const asPeer = createPeerAuth({ secret, replicaId: "test-peer", clockSkewMs: 10_000, maxNonces: 1000, logger: silentLogger });

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-peers-"));
    fs.writeFileSync(path.join(dir, "peer-secret"), `${secret}\n`);
    const ports = await freePorts(3);
    const peers = ports.map((p) => `http://127.0.0.1:${p}`).join(",");
    // A long warm-up: a replica turns ready only by having heard from every peer.
    const flags = [`--peers=${peers}`, `--peer-secret-file=${path.join(dir, "peer-secret")}`, "--warmup=60s", "--vanished-retention=5s", "--drain-delay=0s", "--shutdown-grace=2s"];
    replicas.push(...(await Promise.all(ports.map((port, i) => startReplica(`r${i + 1}`, port, flags)))));
    for (const [name, on] of Object.entries(placement)) clients.push(await startClient(replicas[on[0]!]!.url, name, { serverUrl: on.map((i) => replicas[i]!.url) }));
  });

  after(async () => {
    await prom?.stop();
    await Promise.all(clients.map((c) => c.stop()));
    await Promise.all(replicas.map((r) => (r.proc.child.exitCode === null && r.proc.child.signalCode === null ? stopReplica(r) : undefined)));
    fs.rmSync(dir, { recursive: true, force: true });
    if (figures.length) console.log(`peers figures:\n  ${figures.join("\n  ")}`);
  });

  test("every replica turns ready by hearing from its peers, long before its 60 s warm-up", async () => {
    for (const r of replicas) await waitFor(`${r.id} ready`, () => ready(r.url), 15_000, 100);
    const last = Math.max(...replicas.map((r) => r.listeningAt));
    figures.push(`all three ready at most ${((performance.now() - last) / 1000).toFixed(1)} s after the last one listened (warm-up 60 s)`);
  });

  test("/clients is the same on every replica and lists every client of the fleet, connected", async () => {
    const all = (await waitFor("every replica to list all four clients the same way", async () => {
      const docs = await Promise.all(replicas.map((r) => clientsOf(r.url)));
      const same = docs.every((d) => JSON.stringify(d.groups) === JSON.stringify(docs[0]!.groups));
      return same && names.every((n) => docs[0]!.listed.get(n) === true) ? docs : undefined;
    }, 10_000, 100)) as { groups: string[] }[];
    assert.equal(all[0]!.groups.length, names.length, "one group per client: on-ab, held twice, listed once");
  });

  test("any client through any replica: forwarded exactly once when not held there", async () => {
    const fwd = (r: Replica) => metric(r.url, 'promproxy_forwarded_scrapes_total{outcome="success"}');
    const accepted = (r: Replica) => metric(r.url, 'promproxy_peer_requests_total{kind="forwarded_scrape",result="accepted"}');
    const before = await Promise.all(replicas.map(async (r) => ({ fwd: await fwd(r), accepted: await accepted(r) })));
    for (const r of replicas) {
      for (const name of names) {
        const res = await proxyGet(r.port, `http://${name}/metrics`, { "x-prometheus-scrape-timeout-seconds": "5" });
        assert.equal(res.status, 200, `${name} through ${r.id}: ${res.body.toString().slice(0, 200)}`);
        assert.match(res.body.toString(), new RegExp(`test_up_total\\{name="${name}"\\} 1`));
      }
    }
    const afterAll = await Promise.all(replicas.map(async (r) => ({ fwd: await fwd(r), accepted: await accepted(r) })));
    // r1 holds only-a and on-ab: forwards only-b, only-c. r2 (only-b, on-ab): only-a, only-c. r3 (only-c): the other three.
    assert.deepEqual(afterAll.map((a, i) => a.fwd - before[i]!.fwd), [2, 2, 3], "forwards per replica");
    // Received: r1 gets only-a from r2 and r3, and on-ab from r3 if chosen; r2 likewise: in all 7 received, 7 sent.
    const received = afterAll.reduce((n, a, i) => n + a.accepted - before[i]!.accepted, 0);
    assert.equal(received, 7, "each forwarded scrape arrived exactly once");
    assert.equal(afterAll[2]!.accepted - before[2]!.accepted, 2, "r3 received only-c from r1 and r2");
  });

  test("a forwarded request is never forwarded again: no loop, a clear 404", async () => {
    const uri = "http://only-b/metrics";
    const before = await metric(replicas[0]!.url, 'promproxy_forwarded_scrapes_total{outcome="success"}');
    // A peer that believes r1 holds only-b (it does not; r2 does) forwards to r1: r1 answers from its own state.
    const res = await proxyGet(replicas[0]!.port, uri, { "x-promproxy-forwarded": "test-peer", "x-promproxy-peer": asPeer.sign("GET", uri, undefined, "r1") });
    assert.equal(res.status, 404);
    assert.match(res.body.toString(), /^promproxy: no client "only-b" connected/);
    assert.equal(await metric(replicas[0]!.url, 'promproxy_forwarded_scrapes_total{outcome="success"}'), before, "not forwarded on");
  });

  test("strangers cannot pose as peers: no secret, wrong secret, old or replayed requests, forged forwards", async () => {
    const get = (p: string, headers: Record<string, string> = {}) => proxyGet(replicas[0]!.port, p, headers);
    let r = await get(statePath);
    assert.equal(r.status, 401);
    assert.match(r.body.toString(), /peer request refused: no x-promproxy-peer header/);
    const stranger = createPeerAuth({ secret: "a-wrong-secret-of-enough-length", replicaId: "evil", clockSkewMs: 10_000, maxNonces: 10, logger: silentLogger });
    r = await get(statePath, { "x-promproxy-peer": stranger.sign("GET", statePath, undefined, "r1") });
    assert.equal(r.status, 403);
    assert.match(r.body.toString(), /bad signature/);
    const good = asPeer.sign("GET", statePath, undefined, "r1");
    assert.equal((await get(statePath, { "x-promproxy-peer": good })).status, 200, "a signed state request is served");
    r = await get(statePath, { "x-promproxy-peer": good });
    assert.equal(r.status, 403, "the same request again");
    assert.match(r.body.toString(), /replayed/);
    // Signed with the right secret 60 s ago.
    const ts = String(Date.now() - 60_000);
    const nonce = randomBytes(12).toString("hex");
    const sig = createHmac("sha256", secret).update(`promproxy-peer-v2\nGET\n${statePath}\n\n${ts}\n${nonce}\ntest-peer\nr1`).digest("hex");
    r = await get(statePath, { "x-promproxy-peer": `test-peer;${ts};${nonce};${sig}` });
    assert.equal(r.status, 403);
    assert.match(r.body.toString(), /timestamp -60\.\ds off/);
    // A forwarded scrape without a signature, and one signed for another URI.
    r = await get("http://only-a/metrics", { "x-promproxy-forwarded": "r2" });
    assert.equal(r.status, 403);
    assert.match(r.body.toString(), /x-promproxy-forwarded without a peer signature/);
    r = await get("http://only-a/metrics", { "x-promproxy-forwarded": "r2", "x-promproxy-peer": asPeer.sign("GET", "http://only-b/metrics", undefined, "r1") });
    assert.equal(r.status, 403);
    // Signed right, but for another replica: a captured forward cannot be replayed at r1.
    r = await get("http://only-a/metrics", { "x-promproxy-forwarded": "r2", "x-promproxy-peer": asPeer.sign("GET", "http://only-a/metrics", undefined, "r2") });
    assert.equal(r.status, 403);
    assert.match(r.body.toString(), /signed for another replica/);
    r = await get("http://only-a/metrics", { "x-promproxy-peer": "garbage" });
    assert.equal(r.status, 400);
    assert.match(r.body.toString(), /malformed x-promproxy-peer header/);
  });

  test("latency: a forwarded hop next to a local scrape (not asserted)", async () => {
    const t = { "only-a": [] as number[], "only-b": [] as number[] };
    // Interleaved, after a warm-up round, so that neither side gets the cold start.
    for (let i = 0; i < 50; i++) {
      for (const name of ["only-a", "only-b"] as const) {
        const s = performance.now();
        const res = await proxyGet(replicas[0]!.port, `http://${name}/metrics`);
        assert.equal(res.status, 200);
        if (i >= 10) t[name].push(performance.now() - s);
      }
    }
    const local = median(t["only-a"]);
    const forwarded = median(t["only-b"]);
    figures.push(`scrape through r1, median of 40 interleaved, fresh connections: local ${local.toFixed(2)} ms, forwarded to r2 ${forwarded.toFixed(2)} ms`);
  });

  test("a real Prometheus scraping through one replica sees every client up", async () => {
    prom = await startPrometheus({ serverUrl: replicas[2]!.url });
    await waitFor("Prometheus to scrape all four clients through r3", async () => (await prom!.query(`count(up{job="promproxy"} == 1)`))[0]?.value === 4, 30_000, 250);
  });

  test("a new replica is ready only once it can serve every client: at its first 200, /clients lists them all and scrapes work", async () => {
    const [port] = await freePorts(1, replicas.map((r) => r.port));
    const urls = [...replicas.map((r) => r.url), `http://127.0.0.1:${port}`].join(",");
    const r4 = await startReplica("r4", port!, [`--peers=${urls}`, `--peer-secret-file=${path.join(dir, "peer-secret")}`, "--warmup=60s", "--drain-delay=0s", "--shutdown-grace=2s"]);
    try {
      const t0 = performance.now();
      await waitFor("r4 ready", () => ready(r4.url), 15_000, 20);
      const readyAfter = performance.now() - t0;
      const { listed } = await clientsOf(r4.url);
      assert.deepEqual([...listed.entries()].sort(), names.map((n) => [n, true]).sort(), "every client listed at once");
      for (const name of names) assert.equal((await proxyGet(port!, `http://${name}/metrics`)).status, 200, `${name} through r4`);
      figures.push(`a new replica holding no client: ready ${(readyAfter / 1000).toFixed(2)} s after it listened (--warmup 60s), every client listed and served through it`);
    } finally {
      await stopReplica(r4);
    }
  });

  test("a replica killed with SIGKILL: its clients leave the others' lists; the others' clients are still served", async () => {
    const killed = replicas[1]!;
    killed.proc.child.kill("SIGKILL");
    await killed.proc.exited;
    const t0 = performance.now();
    // At once, before the peer counts as gone: a clear 502 for its client; on-ab is served by r1 (a holder left).
    const early = await proxyGet(replicas[2]!.port, "http://only-b/metrics");
    assert.ok(early.status === 502 || early.status === 404, `status ${early.status}`);
    if (early.status === 502) assert.match(early.body.toString(), /promproxy: scrape of "only-b" not forwarded: the replica holding it could not be reached \(r2/);
    for (let i = 0; i < 5; i++) assert.equal((await proxyGet(replicas[2]!.port, "http://on-ab/metrics")).status, 200, "on-ab through r3");
    await waitFor("only-b to leave r1's and r3's /clients", async () => {
      const docs = await Promise.all([clientsOf(replicas[0]!.url), clientsOf(replicas[2]!.url)]);
      return docs.every((d) => !d.listed.has("only-b") && d.listed.get("on-ab") === true && d.listed.get("only-c") === true);
    }, 15_000, 100);
    figures.push(`kill -9 of r2: its client left the others' /clients ${((performance.now() - t0) / 1000).toFixed(1)} s later`);
    const late = await proxyGet(replicas[2]!.port, "http://only-b/metrics");
    assert.equal(late.status, 404);
    assert.match(late.body.toString(), /no client "only-b" connected/);
  });
});

describe("peers: the CLI's flags", { timeout: 60_000 }, () => {
  test("mistakes are usage errors naming the flag, variable or file key (exit 2); env and config file as for any flag", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "promproxy-peers-cli-"));
    const short = path.join(dir, "short");
    fs.writeFileSync(short, "too-short\n");
    const cases: [string[], Record<string, string>, RegExp][] = [
      [["--peers=http://127.0.0.1:1"], {}, /--peers needs --peer-secret-file/],
      [["--peer-secret-file=/nonexistent"], {}, /--peer-secret-file: only with --peers/],
      [["--peers=ftp://x:1"], {}, /--peers: want http\(s\):\/\/HOST:PORT, got "ftp:\/\/x:1"/],
      [["--peers=http://127.0.0.1:1", `--peer-secret-file=${short}`], {}, /--peer-secret-file: .*short:1: a peer secret must be at least 16 characters/],
      [["--peers=http://127.0.0.1:1", "--peer-secret-file=/nonexistent"], {}, /--peer-secret-file: ENOENT/],
      [[], { PROMPROXY_PEERS: "http://127.0.0.1:1" }, /^promproxy: PROMPROXY_PEERS needs --peer-secret-file/],
      [[`--config=${path.join(dir, "peers.yaml")}`], {}, /^promproxy: .*peers\.yaml: peers needs --peer-secret-file/],
    ];
    fs.writeFileSync(path.join(dir, "peers.yaml"), "peers:\n  - http://127.0.0.1:1\n  - http://127.0.0.1:2\n");
    try {
      for (const [args, env, message] of cases) {
        const p = runCli(["server", "--listen=127.0.0.1:0", "--log-level=warn", ...args], env);
        assert.deepEqual(await p.exited, { code: 2, signal: null }, args.join(" "));
        assert.match(p.stderr(), message);
        assert.equal(p.stderr().split("\n").filter(Boolean).length, 1, `one line: ${p.stderr()}`);
      }
      // A list in the config file, the secret beside it: it starts.
      const good = path.join(dir, "good");
      fs.writeFileSync(good, `${secret}\n`);
      fs.writeFileSync(path.join(dir, "ok.yaml"), `peers:\n  - http://127.0.0.1:1\n  - http://127.0.0.1:2\npeer-secret-file: ${good}\n`);
      const p = runCli(["server", "--listen=127.0.0.1:0", `--config=${path.join(dir, "ok.yaml")}`, "--log-level=error"]);
      try {
        await p.waitForOutput(/listening on/);
      } finally {
        await p.kill();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
