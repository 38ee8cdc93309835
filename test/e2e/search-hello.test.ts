/**
 * A hello that lists the replicas its client holds live: a search step landing
 * on one of them is refused at once (AlreadyExists naming the replica) and
 * never replaces the stream there, even when that stream could not answer the
 * takeover probe in time (a loaded client). Without the list the server probes,
 * and replaces a holder that does not answer.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { ClientFrame } from "../../gen/promproxy/v1/scrape_pb.ts";
import { startServer, waitFor } from "../helpers.ts";
import { connectRaw } from "./raw-client.ts";

test("a hello naming this replica as held is refused at once and leaves the holder in place; without it, a silent holder is replaced", { timeout: 30_000 }, async () => {
  const s = await startServer({ replicaId: "r1", takeoverProbeMs: 300 });
  try {
    // A holder that answers no ping: the takeover probe finds it dead.
    const holder = await connectRaw(s.url, { name: "app-1" }, { autoPong: false });
    const search = await connectRaw(s.url, { name: "app-1", heldReplicaIds: ["r0", "r1"] }).then(
      () => assert.fail("a search step was welcomed"),
      (e: unknown) => e,
    );
    assert.ok(search instanceof ConnectError);
    assert.equal(search.code, Code.AlreadyExists);
    assert.equal(search.metadata.get("promproxy-replica-id"), "r1");
    assert.deepEqual(s.server.clients().map((c) => c.sessionId), [holder.welcome.sessionId], "the holder keeps its stream");

    // Another replica's id in the list proves nothing here: the holder is probed and, silent, replaced.
    const other = await connectRaw(s.url, { name: "app-1", heldReplicaIds: ["r2"] });
    assert.deepEqual(s.server.clients().map((c) => c.sessionId), [other.welcome.sessionId], "the silent holder was replaced");
    assert.equal((await holder.ended)?.code, Code.Aborted);
    other.abort();
    await other.ended;
  } finally {
    await s.close();
  }
});

test("the Node client lists the replicas it holds in every hello", { timeout: 30_000 }, async () => {
  const { createClient } = await import("../../src/client/index.ts");
  const { Registry } = await import("prom-client");
  // Records the held ids of every hello the server reads.
  const hellos: string[][] = [];
  const recordHellos: Interceptor = (next) => async (req) => {
    if (!req.stream) return next(req);
    const messages = req.message;
    async function* tap() {
      for await (const m of messages as AsyncIterable<ClientFrame>) {
        if (m.frame.case === "hello") hellos.push([...m.frame.value.heldReplicaIds]);
        yield m;
      }
    }
    return next({ ...req, message: tap() } as typeof req);
  };
  const s = await startServer({ replicaId: "r1", replicaCount: 2, interceptors: [recordHellos] });
  const c = createClient({
    name: "app-1",
    serverUrl: s.url,
    registry: new Registry(),
    logger: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
  });
  try {
    await c.start();
    await c.ready({ timeoutMs: 10_000 });
    // The replica count says 2 and only r1 runs: the client searches, and each search lands on r1, which it holds.
    await waitFor("three search steps", () => hellos.length >= 4, 15_000);
    assert.deepEqual(hellos[0], [], "the first hello holds nothing");
    for (const held of hellos.slice(1)) assert.deepEqual(held, ["r1"]);
    assert.equal(s.server.clients().length, 1, "one session: no search replaced it");
  } finally {
    await c.stop();
    await s.close();
  }
});
