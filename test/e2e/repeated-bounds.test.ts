/**
 * Repeated fields of client frames are bounded by count (src/server/frame-bounds.ts),
 * on both server paths: gRPC (the fast path, whose decoders stop at the bound)
 * and the Connect protocol (checked right after protobuf-es). A ~300 KiB frame
 * of 150,000 empty entries ends the stream with INVALID_ARGUMENT naming the
 * field and the bound, registers nothing, and a good client keeps being
 * scraped. Late heads: one per scrape that ended, never a stream of them.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ClientFrameSchema } from "../../gen/promproxy/v1/scrape_pb.ts";
import { proxyGet, startClient, startServer, type TestServer } from "../helpers.ts";
import { connectRaw, giveUpOn, ScrapeErrorReason, type RawClient } from "./raw-client.ts";

const text = { "content-type": "text/plain; version=0.0.4" };
const empties = (n: number) => Array.from({ length: n }, () => "");
const protocols = ["grpc", "connect"] as const;

async function refused(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  assert.fail("the hello was welcomed");
}

/** The good client is scraped; `absent` (refused at its hello) is in neither /clients nor the server's clients. */
async function stillServes(s: TestServer, absent?: string): Promise<void> {
  const r = await proxyGet(s.port, "http://good/metrics");
  assert.equal(r.status, 200, `${r.status} ${r.body.toString()}`);
  assert.match(r.body.toString(), /test_up_total/);
  if (absent === undefined) return;
  const listed = await proxyGet(s.port, "/clients");
  assert.equal(listed.status, 200);
  assert.doesNotMatch(listed.body.toString(), new RegExp(`"${absent}`));
  assert.deepEqual(s.server.clients().map((c) => c.name).filter((n) => n !== "good"), []);
}

for (const protocol of protocols) {
  test(`${protocol}: hellos with 150,000 empty features or held replica ids are refused, naming the field and the bound`, { timeout: 60_000 }, async () => {
    const s = await startServer();
    const good = await startClient(s.url, "good");
    try {
      for (const [field, hello, max] of [
        ["features", { features: empties(150_000) }, 64],
        ["held_replica_ids", { heldReplicaIds: empties(150_000) }, 1024],
        ["features", { features: empties(65) }, 64],
        ["held_replica_ids", { heldReplicaIds: empties(1025) }, 1024],
      ] as const) {
        const e = await refused(connectRaw(s.url, { name: "flood", ...hello }, { protocol }));
        assert.equal(e.code, Code.InvalidArgument, e.message);
        assert.match(e.rawMessage, new RegExp(`^bad hello: more than the maximum of ${max} ${field}`));
        assert.doesNotMatch(e.rawMessage, /\n/);
        // The fast path stops reading at the bound: it never knew the whole count.
        if (protocol === "grpc") assert.doesNotMatch(e.rawMessage, /\(\d+\)/);
        await stillServes(s, "flood");
      }
      // At the bounds: welcomed.
      const at = await connectRaw(s.url, { name: "at-bound", features: [...empties(63), "head"], heldReplicaIds: empties(1024) }, { protocol });
      assert.ok(at.welcome);
      await at.close();
    } finally {
      await good.stop();
      await s.close();
    }
  });

  test(`${protocol}: a hello with more empty targets or label entries than the options allow is refused`, { timeout: 60_000 }, async () => {
    const s = await startServer({ maxTargets: 4 });
    try {
      const targets = Array.from({ length: 150_000 }, () => ({ port: 0, path: "" }));
      const e = await refused(connectRaw(s.url, { name: "flood", targets }, { protocol }));
      assert.equal(e.code, Code.InvalidArgument);
      assert.match(e.rawMessage, /^bad hello: (more than the maximum of 4 targets|150000 targets, the maximum is 4)$/);
      if (protocol === "grpc") assert.doesNotMatch(e.rawMessage, /150000/, "the fast path stops reading at the bound");
      assert.deepEqual(s.server.clients(), []);
    } finally {
      await s.close();
    }
  });

  test(`${protocol}: a head with 150,000 empty headers ends the stream; 128 headers are taken`, { timeout: 60_000 }, async () => {
    const s = await startServer();
    const good = await startClient(s.url, "good");
    try {
      const raw = await connectRaw(s.url, { name: "heads" }, { protocol });
      let res = proxyGet(s.port, "http://heads/metrics");
      let order = await raw.next("order");
      const many = (n: number) => [{ name: "content-type", value: text["content-type"] }, ...Array.from({ length: n - 1 }, (_, i) => ({ name: `x-h${i}`, value: "v" }))];
      raw.send({ frame: { case: "head", value: { scrapeId: order.scrapeId, status: 200, headers: many(128) } } });
      raw.chunk(order.scrapeId, "up 1\n");
      raw.end(order.scrapeId);
      assert.equal((await res).status, 200);
      res = proxyGet(s.port, "http://heads/metrics");
      order = await raw.next("order");
      raw.send({ frame: { case: "head", value: { scrapeId: order.scrapeId, status: 200, headers: Array.from({ length: 150_000 }, () => ({ name: "", value: "" })) } } });
      const e = await raw.ended;
      assert.equal(e?.code, Code.InvalidArgument, e?.message);
      assert.match(e.rawMessage, /a head frame with more than the maximum of 128 headers/);
      if (protocol === "grpc") assert.doesNotMatch(e.rawMessage, /\(\d+\)/);
      const r = await res;
      assert.equal(r.status, 502, r.body.toString());
      await stillServes(s);
    } finally {
      await good.stop();
      await s.close();
    }
  });

  test(`${protocol}: one late head after a scrape ended is dropped, a second ends the stream`, { timeout: 60_000 }, async () => {
    const s = await startServer();
    const good = await startClient(s.url, "good");
    try {
      const raw = await connectRaw(s.url, { name: "late" }, { protocol });
      const res = proxyGet(s.port, "http://late/metrics");
      const order = await raw.next("order");
      raw.end(order.scrapeId, { reason: ScrapeErrorReason.INTERNAL, message: "no" });
      assert.equal((await res).status, 502);
      raw.head(order.scrapeId, 200, text); // a cancel crossing the answer: dropped
      await serves(s, raw, "late");
      raw.head(order.scrapeId, 200, text);
      raw.head(order.scrapeId, 200, text);
      const e = await raw.ended;
      assert.equal(e?.code, Code.InvalidArgument, e?.message);
      assert.match(e.rawMessage, new RegExp(`^scrape ${order.scrapeId}: a second late head`));
      await stillServes(s);
    } finally {
      await good.stop();
      await s.close();
    }
  });

  test(`${protocol}: a cancel crossing a big answer's head, chunks and end leaves the stream up`, { timeout: 60_000 }, async () => {
    const s = await startServer({ maxScrapesInFlight: 200 });
    try {
      const raw = await connectRaw(s.url, { name: "big" }, { protocol });
      // More scrapes given up on than the server remembers one by one (128): the oldest are held together.
      const ids = await giveUpOn(raw, s.port, "big", 132);
      for (const id of ids) {
        raw.head(id, 200, text);
        const credit = Math.min(raw.granted(id), 256 * 1024);
        for (let sent = 0; sent < credit; sent += 16_384) raw.chunk(id, Buffer.alloc(Math.min(16_384, credit - sent), 0x61));
        raw.end(id);
      }
      await serves(s, raw, "big");
      await raw.close();
    } finally {
      await s.close();
    }
  });
}

/** A scrape of `name` answered by `raw` succeeds, and the stream is still up. */
async function serves(s: TestServer, raw: RawClient, name: string): Promise<void> {
  const res = proxyGet(s.port, `http://${name}/metrics`);
  const order = await raw.next("order");
  raw.head(order.scrapeId, 200, text);
  raw.chunk(order.scrapeId, "up 1\n");
  raw.end(order.scrapeId);
  const r = await res;
  assert.equal(r.status, 200, r.body.toString());
  assert.equal(r.body.toString(), "up 1\n");
}

for (const early of [false, true]) {
test(`grpc: a client that keeps sending after its stream was ended for a violation${early ? " (sent with its hello)" : ""} is read no further and reset (NO_ERROR) after the status`, { timeout: 30_000 }, async () => {
  const s = await startServer();
  const session = http2.connect(s.url);
  try {
    const env = (f: Parameters<typeof create<typeof ClientFrameSchema>>[1]) => {
      const b = toBinary(ClientFrameSchema, create(ClientFrameSchema, f));
      const p = Buffer.alloc(5);
      p.writeUInt32BE(b.length, 1);
      return Buffer.concat([p, b]);
    };
    const st = session.request({ ":method": "POST", ":path": "/promproxy.v1.ScrapeService/Scrape", "content-type": "application/grpc", te: "trailers" });
    st.on("error", () => {});
    const status = new Promise<string>((resolve) => st.on("trailers", (t) => resolve(`${t["grpc-status"]} ${t["grpc-message"]}`)));
    const closed = new Promise<number>((resolve) => st.on("close", () => resolve(st.rstCode ?? -1)));
    st.resume();
    st.write(env({ frame: { case: "hello", value: { name: "keeps-on", version: "x" } } }));
    if (!early) await new Promise((welcomed) => st.once("data", welcomed));
    st.write(env({ frame: { case: "head", value: { scrapeId: 7n, status: 200 } } })); // never ordered: the stream ends
    const filler = env({ frame: { case: "pong", value: { nonce: 1n } } });
    let sent = 0;
    const pump = setInterval(() => {
      for (let i = 0; i < 200 && !st.destroyed; i++, sent++) st.write(filler);
    }, 5);
    try {
      assert.match(await status, /^3 head for scrape 7, which was never ordered/);
      assert.equal(await closed, http2.constants.NGHTTP2_NO_ERROR);
    } finally {
      clearInterval(pump);
    }
    assert.ok(sent > 0);
  } finally {
    session.destroy();
    await s.close();
  }
});
}
