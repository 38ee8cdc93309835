// Large chunk frames passed on as their pieces arrive (src/server/grpc-fast/chunk-pass.ts), seen from a raw HTTP/2
// client and Prometheus' side: the body arrives whole and in order however the frames are cut; a chunk that breaks
// a rule is still refused whole, before a byte of it reaches Prometheus; a client gone mid-chunk fails the scrape.
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createServer, silentLogger } from "../../src/server/index.ts";
import { proxyGet, startServer, waitFor } from "../helpers.ts";
import { frame, hello, raw, type Raw } from "./fixtures/raw-h2.ts";

const fastServer = () => startServer({ fastPath: true, maxChunkBytes: 256 * 1024 });

/** Connects a raw client and waits for its welcome. */
async function connect(port: number, name: string): Promise<Raw> {
  const r = raw(port);
  r.stream.write(frame(hello(name)));
  await waitFor("the welcome", () => r.frames.find((f) => f.frame.case === "welcome"));
  return r;
}

/** Starts a scrape through the server and returns the order's id and the pending response. */
async function order(port: number, r: Raw, name: string) {
  const seen = r.frames.length;
  // A response cut after its head went out rejects (ECONNRESET): status 0.
  const response = proxyGet(port, `http://${name}/metrics`).catch((e: Error) => ({ status: 0, body: Buffer.from(e.message) }));
  const o = (await waitFor("the order", () => r.frames.slice(seen).find((f) => f.frame.case === "order")))!;
  assert.equal(o.frame.case, "order");
  return { id: o.frame.value.scrapeId, response };
}

/** Writes bytes in pieces of `size`, yielding between them, so the server reads many DATA frames. */
async function dribble(r: Raw, bytes: Buffer, size: number) {
  for (let at = 0; at < bytes.length; at += size) {
    r.stream.write(bytes.subarray(at, at + size));
    if ((at / size) % 16 === 0) await sleep(1);
  }
}

const body = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + (i >> 10)) & 0xff));

test("a 1 MB body in 256 KiB chunk frames cut in 1,000-byte writes arrives whole and in order", async () => {
  const s = await fastServer();
  const r = await connect(s.port, "cut");
  try {
    const data = body(1024 * 1024);
    const { id, response } = await order(s.port, r, "cut");
    r.stream.write(frame({ frame: { case: "head", value: { scrapeId: id, status: 200, headers: [{ name: "content-length", value: String(data.length) }] } } }));
    const frames = [];
    for (let at = 0; at < data.length; at += 256 * 1024 - 64) frames.push(frame({ frame: { case: "chunk", value: { scrapeId: id, data: data.subarray(at, at + 256 * 1024 - 64) } } }));
    frames.push(frame({ frame: { case: "end", value: { scrapeId: id } } }));
    await dribble(r, Buffer.concat(frames), 1000);
    const res = await response;
    assert.equal(res.status, 200);
    assert.ok(res.body.equals(data), "the same bytes in the same order");
  } finally {
    r.session.destroy();
    await s.close();
  }
});

test("a large chunk over the declared content-length is refused whole: a clear 502, no byte of it relayed", async () => {
  const s = await fastServer();
  const r = await connect(s.port, "liar");
  try {
    const { id, response } = await order(s.port, r, "liar");
    r.stream.write(frame({ frame: { case: "head", value: { scrapeId: id, status: 200, headers: [{ name: "content-length", value: "150000" }] } } }));
    await dribble(r, frame({ frame: { case: "chunk", value: { scrapeId: id, data: body(200_000) } } }), 4096);
    const res = await response;
    assert.equal(res.status, 502);
    assert.match(res.body.toString(), /^promproxy: client "liar" sent more body bytes than its content-length of 150000\n$/);
    // The stream stays up: the next scrape is served.
    const next = await order(s.port, r, "liar");
    r.stream.write(frame({ frame: { case: "head", value: { scrapeId: next.id, status: 200, headers: [] } } }));
    r.stream.write(frame({ frame: { case: "end", value: { scrapeId: next.id } } }));
    assert.equal((await next.response).status, 200);
  } finally {
    r.session.destroy();
    await s.close();
  }
});

test("a large chunk beyond the granted credit ends the stream with RESOURCE_EXHAUSTED, as a gathered one does", async () => {
  // Two 200,000-byte chunks on a 256 KiB credit were beyond it only while Prometheus' reads had given back less than
  // 144 KiB of the first: on a loaded machine a turn read more than the answer's high-water mark, its drain granted
  // the first chunk back, and the second was within the credit (grpc-status 4 after 40 s, 1 run in 10 on main).
  // A scrape's first credit is the floor, 64 KiB, when its connection may hold 1 byte of unread answers: 50,000
  // bytes, then 200,000, are beyond it whatever was granted back (at most the 50,000 relayed).
  const server = createServer({ logger: silentLogger, fastPath: true, maxChunkBytes: 256 * 1024, creditBytes: 256 * 1024 });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0, maxUnreadAnswerBytesPerConnection: 1 });
  const r = await connect(port, "greedy");
  try {
    const { id, response } = await order(port, r, "greedy");
    r.stream.write(frame({ frame: { case: "head", value: { scrapeId: id, status: 200, headers: [] } } }));
    await dribble(r, frame({ frame: { case: "chunk", value: { scrapeId: id, data: body(50_000) } } }), 4096);
    await dribble(r, frame({ frame: { case: "chunk", value: { scrapeId: id, data: body(200_000) } } }), 4096);
    const t = await r.trailers;
    assert.equal(t?.["grpc-status"], "8");
    assert.match(decodeURIComponent(String(t?.["grpc-message"])), /beyond the granted credit/);
    const res = await response;
    assert.notEqual(res.status, 200);
  } finally {
    r.session.destroy();
    await server.close({ graceMs: 500 });
  }
});

test("a client gone in the middle of a large chunk: the scrape fails, the server serves the next client", async () => {
  const s = await fastServer();
  const r = await connect(s.port, "gone");
  try {
    const { id, response } = await order(s.port, r, "gone");
    r.stream.write(frame({ frame: { case: "head", value: { scrapeId: id, status: 200, headers: [{ name: "content-length", value: "200000" }] } } }));
    const f = frame({ frame: { case: "chunk", value: { scrapeId: id, data: body(200_000) } } });
    await dribble(r, f.subarray(0, 100_000), 4096);
    await sleep(50);
    r.session.destroy();
    const res = await response;
    assert.ok(res.status !== 200 || res.body.length < 200_000, "never a whole 200");
    const other = await connect(s.port, "next");
    const n = await order(s.port, other, "next");
    other.stream.write(frame({ frame: { case: "head", value: { scrapeId: n.id, status: 200, headers: [] } } }));
    other.stream.write(frame({ frame: { case: "end", value: { scrapeId: n.id } } }));
    assert.equal((await n.response).status, 200);
    other.session.destroy();
  } finally {
    await s.close();
  }
});
