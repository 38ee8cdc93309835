/**
 * How a client behind one load-balancer address searches for replicas
 * (PROTOCOL.md, "Several replicas"): an `ALREADY_EXISTS` refusal names the
 * replica that refused, so that a client tells "I already hold this replica"
 * (a step of the search) from "another client has my name there" (a real
 * clash, warned sparsely); and a replica lost without `replica_count` is
 * searched for at most 10 s apart for a bounded time, not given up on after a
 * few seconds. Real servers, a real TCP round-robin balancer, real HTTP/2.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { createClient, type PromproxyClient } from "../../src/client/index.ts";
import type { Logger } from "../../src/shared/logger.ts";
import { createServer, silentLogger, type PromproxyServer } from "../../src/server/index.ts";
import { testRegistry, waitFor } from "../helpers.ts";
import { freePorts } from "./fixtures/ha/cluster.ts";
import { startRoundRobin } from "./fixtures/ha/round-robin.ts";
import { connectRaw } from "./raw-client.ts";

function recordingLogger() {
  const lines: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => void lines.push({ level, message, fields });
  const logger: Logger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  return { logger, lines };
}

async function startReplica(replicaId: string, port: number, replicaCount?: number): Promise<PromproxyServer> {
  const s = createServer({ logger: silentLogger, replicaId, replicaCount });
  await s.listen({ host: "127.0.0.1", port });
  return s;
}

const closeNow = (s: PromproxyServer) => s.close({ graceMs: 0, drainDelayMs: 0 });
const holds = (s: PromproxyServer, name: string) => s.clients().some((c) => c.name === name);

test("ALREADY_EXISTS names the refusing replica: in the message, and as promproxy-replica-id metadata (gRPC and Connect)", async () => {
  const [port] = (await freePorts(1)) as [number];
  const server = await startReplica("r-a", port);
  const url = `http://127.0.0.1:${port}`;
  const holder = await connectRaw(url, { name: "app-1" });
  try {
    for (const protocol of ["grpc", "connect"] as const) {
      const err = await connectRaw(url, { name: "app-1" }, { protocol }).then(
        () => assert.fail("a second stream for a live name was welcomed"),
        (e: unknown) => e as ConnectError,
      );
      assert.ok(err instanceof ConnectError, protocol);
      assert.equal(err.code, Code.AlreadyExists, protocol);
      assert.equal(err.metadata.get("promproxy-replica-id"), "r-a", `${protocol}: ${[...err.metadata].join("; ")}`);
      assert.match(err.rawMessage, /held by another connected client .* on replica r-a$/, protocol);
    }
  } finally {
    await holder.close();
    await closeNow(server);
  }
});

test("a replica id that cannot travel as a header value is named in the message only", async () => {
  const [port] = (await freePorts(1)) as [number];
  const server = await startReplica("r-ä\u0000x", port);
  const url = `http://127.0.0.1:${port}`;
  const holder = await connectRaw(url, { name: "app-1" });
  try {
    const err = await connectRaw(url, { name: "app-1" }).then(
      () => assert.fail("welcomed"),
      (e: unknown) => e as ConnectError,
    );
    assert.equal(err.code, Code.AlreadyExists);
    assert.equal(err.metadata.get("promproxy-replica-id"), null);
    assert.match(err.rawMessage, /on replica r-ä/);
  } finally {
    await holder.close();
    await closeNow(server);
  }
});

test("during a search, our name held by another client on a replica we do not hold is warned once, not taken for a replica held; found once freed", async () => {
  const ports = await freePorts(2);
  const [a, b] = [await startReplica("r-a", ports[0] as number, 2), await startReplica("r-b", ports[1] as number, 2)];
  const lb = await startRoundRobin(ports);
  const impostor = await connectRaw(`http://127.0.0.1:${ports[1]}`, { name: "app-1" });
  const { logger, lines } = recordingLogger();
  const held = new Set<string>();
  let client: PromproxyClient | undefined;
  try {
    client = createClient({ name: "app-1", serverUrl: lb.url, registry: testRegistry("app-1"), logger, onConnected: (i) => held.add(i.replicaId) });
    await client.start({ timeoutMs: 10_000 });
    await waitFor("a few search rounds", () => (lb.opened.get(ports[1] as number) ?? 0) >= 5, 20_000, 50);
    const clashes = lines.filter((l) => l.level === "warn" && /held by another client on a replica we do not hold/.test(l.message));
    const steps = lines.filter((l) => l.level === "debug" && /landed on a replica already held/.test(l.message));
    console.log(`clash: ${lb.opened.get(ports[1] as number)} connections to r-b, ${clashes.length} warn lines, ${steps.length} search steps on r-a`);
    const said = lines.filter((l) => l.level !== "debug").map((l) => `${l.level} ${l.message} ${JSON.stringify(l.fields)}`).join("\n");
    assert.equal(clashes.length, 1, `warned once (at most once a minute):\n${said}`);
    assert.equal(clashes[0]?.fields?.["replica"], "r-b");
    assert.equal(lines.filter((l) => l.level === "warn" || l.level === "error").length, 1, `nothing else warned:\n${said}`);
    assert.deepEqual([...held], ["r-a"], said);

    await impostor.close();
    const t0 = performance.now();
    await waitFor("the client to hold r-b once the impostor left", () => holds(b, "app-1") && held.has("r-b"), 20_000, 50);
    console.log(`clash: r-b held ${Math.round(performance.now() - t0)} ms after the impostor left`);
    assert.deepEqual([...held].sort(), ["r-a", "r-b"]);
    assert.ok(holds(a, "app-1"));
  } finally {
    await client?.stop();
    await impostor.close();
    await lb.close();
    await Promise.all([a, b].map(closeNow));
  }
});

test("a hostile replica refusing every search with a huge replica id and message costs one bounded warn line a minute", async () => {
  const [realPort, roguePort] = (await freePorts(2)) as [number, number];
  const real = await startReplica("r-a", realPort, 2);
  let refusals = 0;
  // A Trailers-Only gRPC answer, as a fast path would send it: the metadata rides in the only header block.
  const rogue = http2.createServer((req, res) => {
    refusals++;
    req.resume();
    res.writeHead(200, { "content-type": "application/grpc", "grpc-status": "6", "grpc-message": "x".repeat(10_000), "promproxy-replica-id": "y".repeat(10_000) });
    res.end();
  });
  await new Promise<void>((resolve) => rogue.listen(roguePort, "127.0.0.1", resolve));
  const lb = await startRoundRobin([realPort, roguePort]);
  const { logger, lines } = recordingLogger();
  const client = createClient({ name: "app-1", serverUrl: lb.url, registry: testRegistry("app-1"), logger });
  try {
    await client.start({ timeoutMs: 10_000 });
    await waitFor("a few refusals", () => refusals >= 5, 20_000, 50);
    const warns = lines.filter((l) => l.level === "warn" || l.level === "error");
    console.log(`hostile refusals: ${refusals} refusals, ${warns.length} warn lines, ${JSON.stringify(warns[0]?.fields ?? {}).length} bytes of fields`);
    assert.equal(warns.length, 1, warns.map((l) => l.message).join("\n"));
    assert.match(warns[0]?.message ?? "", /held by another client on a replica we do not hold/);
    assert.ok(JSON.stringify(warns[0]?.fields).length < 1_000, "the server's words are cut short in our host's log");
    assert.match(String(warns[0]?.fields?.["replica"]), /^y{100}/, "the id was read from a Trailers-Only answer");
    assert.ok(holds(real, "app-1"), "the real replica still holds the client");
  } finally {
    await client.stop();
    await lb.close();
    await new Promise<void>((resolve) => rogue.close(() => resolve()));
    await closeNow(real);
  }
});

test("without replica_count, a replica lost and replaced after its fast rounds are spent is found within 10 s (15 s allowed)", { timeout: 90_000 }, async () => {
  const ports = await freePorts(2);
  const a = await startReplica("r-a", ports[0] as number);
  let b = await startReplica("r-b", ports[1] as number);
  const lb = await startRoundRobin(ports);
  const held = new Set<string>();
  const client = createClient({
    name: "app-1",
    serverUrl: lb.url,
    registry: testRegistry("app-1"),
    logger: silentLogger,
    probeIntervalMs: 1_000, // finds r-b at once; after a loss, probes at +1, +3, +7, +15, +31, +63 s
    onConnected: (i) => held.add(i.replicaId),
    onDisconnected: (_, i) => held.delete(i.replicaId),
  });
  try {
    await client.start({ timeoutMs: 10_000 });
    await waitFor("both replicas held", () => held.size === 2, 30_000, 50);
    await closeNow(b); // lost: its stream ends
    await new Promise((r) => setTimeout(r, 35_000)); // the fast rounds (5-9 s) are long spent, and the probe at +31 s
    b = await startReplica("r-b2", ports[1] as number);
    const t0 = performance.now();
    await waitFor("the replacement to be found", () => held.has("r-b2"), 60_000, 50);
    const s = Math.round((performance.now() - t0) / 100) / 10;
    console.log(`no replica_count: the replacement after a 35 s outage was held ${s} s after it listened`);
    assert.ok(s <= 15, `held ${s} s after it listened`);
  } finally {
    await client.stop();
    await lb.close();
    await Promise.all([a, b].map(closeNow));
  }
});
