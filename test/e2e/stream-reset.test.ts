/**
 * A client whose stream is reset (RST_STREAM, its connection kept) or whose
 * connection goes away after its welcome has not said goodbye: it stays listed
 * as vanished (503), like one whose process died. Only END_STREAM on the
 * request side is a goodbye. Raw node:http2 with hand-made gRPC frames, so
 * that exactly one thing happens to the stream.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { ClientFrameSchema, ServerFrameSchema } from "../../gen/promproxy/v1/scrape_pb.ts";
import { proxyGet, startServer, waitFor } from "../helpers.ts";

function envelope(payload: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.byteLength, 1);
  return Buffer.concat([head, payload]);
}

/** Opens a Scrape stream, says hello as `name`, resolves once the welcome arrived. */
async function welcomed(url: string, name: string) {
  const session = http2.connect(url);
  session.on("error", () => {});
  const stream = session.request({
    ":method": "POST",
    ":path": "/promproxy.v1.ScrapeService/Scrape",
    "content-type": "application/grpc+proto",
    te: "trailers",
  });
  stream.on("error", () => {});
  const hello = create(ClientFrameSchema, { frame: { case: "hello", value: { name, targets: [{ path: "/metrics" }] } } });
  stream.write(envelope(toBinary(ClientFrameSchema, hello)));
  await new Promise<void>((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 5 || buf.length < 5 + buf.readUInt32BE(1)) return;
      const frame = fromBinary(ServerFrameSchema, buf.subarray(5, 5 + buf.readUInt32BE(1)));
      stream.off("data", onData);
      if (frame.frame.case === "welcome") resolve();
      else reject(new Error(`expected a welcome, got ${frame.frame.case}`));
    };
    stream.on("data", onData);
    stream.once("close", () => reject(new Error("stream closed before a welcome")));
  });
  return { session, stream };
}

async function connected(url: string, name: string): Promise<string | undefined> {
  const groups = (await (await fetch(`${url}/clients`)).json()) as { targets: string[]; labels: Record<string, string> }[];
  return groups.find((g) => g.targets.includes(name))?.labels["__meta_promproxy_connected"];
}

for (const [what, end] of [
  ["RST_STREAM CANCEL, connection kept", (c: Awaited<ReturnType<typeof welcomed>>) => c.stream.close(http2.constants.NGHTTP2_CANCEL)],
  ["RST_STREAM INTERNAL_ERROR, connection kept", (c: Awaited<ReturnType<typeof welcomed>>) => c.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR)],
  ["GOAWAY and the socket closed", (c: Awaited<ReturnType<typeof welcomed>>) => {
    c.session.goaway(http2.constants.NGHTTP2_NO_ERROR);
    setImmediate(() => c.session.destroy());
  }],
  ["the connection destroyed", (c: Awaited<ReturnType<typeof welcomed>>) => c.session.destroy()],
] as const) {
  test(`a stream that ends by ${what} after its welcome is a vanished client, not a goodbye`, { timeout: 30_000 }, async () => {
    const s = await startServer({ vanishedRetentionMs: 60_000 });
    try {
      for (const delayMs of [0, 150]) {
        const name = `app-${delayMs}`;
        const c = await welcomed(s.url, name);
        await new Promise((r) => setTimeout(r, delayMs));
        end(c);
        await waitFor(`${name} listed as vanished`, async () => (await connected(s.url, name)) === "false");
        const r = await proxyGet(s.port, `http://${name}/metrics`);
        assert.equal(r.status, 503, r.body.toString());
        c.session.destroy();
      }
    } finally {
      await s.close();
    }
  });
}

test("END_STREAM on the request side is a goodbye: the client leaves at once", { timeout: 30_000 }, async () => {
  const s = await startServer({ vanishedRetentionMs: 60_000 });
  try {
    const c = await welcomed(s.url, "bye");
    c.stream.end();
    await waitFor("gone", async () => (await connected(s.url, "bye")) === undefined);
    assert.equal((await proxyGet(s.port, "http://bye/metrics")).status, 404);
    c.session.destroy();
  } finally {
    await s.close();
  }
});

test("with an interceptor that wraps the messages (the fast path keeps Connect's contract), a reset stream is still a vanished client", { timeout: 30_000 }, async () => {
  const wrapIn: Interceptor = (next) => async (req) => {
    if (!req.stream) return next(req);
    const inner = req.message;
    return next({ ...req, message: (async function* () {
      yield* inner;
    })() });
  };
  const s = await startServer({ vanishedRetentionMs: 60_000, interceptors: [wrapIn] });
  try {
    const c = await welcomed(s.url, "wrapped");
    c.stream.close(http2.constants.NGHTTP2_CANCEL);
    await waitFor("listed as vanished", async () => (await connected(s.url, "wrapped")) === "false");
    assert.equal((await proxyGet(s.port, "http://wrapped/metrics")).status, 503);
    c.session.destroy();
  } finally {
    await s.close();
  }
});
