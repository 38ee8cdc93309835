// Independent implementations speak the protocol: @grpc/grpc-js with the .proto loaded at run time, and buf curl.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { proxyGet, startServer, waitFor } from "../helpers.ts";

const protoDir = new URL("../../proto", import.meta.url).pathname;

interface Frame {
  frame?: string;
  welcome?: { sessionId: string; limits: { maxChunkBytes: number } };
  order?: { scrapeId: string; path: string; creditBytes: string; headers: { name: string; value: string }[] };
  ping?: { nonce: string };
}

test("a @grpc/grpc-js client generated from the .proto at run time serves a scrape", async () => {
  const s = await startServer();
  const def = protoLoader.loadSync("promproxy/v1/scrape.proto", { includeDirs: [protoDir], longs: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    promproxy: { v1: { ScrapeService: new (addr: string, creds: grpc.ChannelCredentials) => grpc.Client & { Scrape(): grpc.ClientDuplexStream<object, Frame> } } };
  };
  const client = new pkg.promproxy.v1.ScrapeService(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure());
  const stream = client.Scrape();
  const frames: Frame[] = [];
  stream.on("data", (f: Frame) => {
    frames.push(f);
    if (f.order) {
      const id = f.order.scrapeId;
      stream.write({ head: { scrapeId: id, status: 200, headers: [{ name: "content-type", value: "text/plain; version=0.0.4" }] } });
      stream.write({ chunk: { scrapeId: id, data: Buffer.from("grpc_js_up 1\n") } });
      stream.write({ end: { scrapeId: id } });
    }
  });
  const ended = new Promise<void>((resolve) => {
    stream.on("error", () => resolve());
    stream.on("end", () => resolve());
  });
  try {
    stream.write({ hello: { name: "grpc-js-app", labels: { lang: "js" }, version: "grpc-js-test" } });
    await waitFor("the welcome", () => frames.find((f) => f.welcome));
    const r = await proxyGet(s.port, "http://grpc-js-app:80/metrics");
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), "grpc_js_up 1\n");
    assert.equal(r.headers["content-type"], "text/plain; version=0.0.4");
    const order = frames.find((f) => f.order)?.order;
    assert.equal(order?.path, "/metrics");
    assert.ok(Number(order?.creditBytes) > 0);
    const clients = await proxyGet(s.port, "/clients");
    assert.match(clients.body.toString(), /"lang":"js"/);
  } finally {
    stream.end();
    await ended;
    client.close();
    await s.close();
  }
});

test("buf curl opens the stream and gets a welcome", async () => {
  const s = await startServer();
  try {
    const buf = new URL("../../node_modules/.bin/buf", import.meta.url).pathname;
    const child = promisify(execFile)(
      buf,
      ["curl", "--schema", protoDir, "--protocol", "grpc", "--http2-prior-knowledge", "-d", '{"hello":{"name":"buf-curl"}}', `${s.url}/promproxy.v1.ScrapeService/Scrape`],
      { timeout: 30_000 },
    );
    const { stdout } = await child;
    const welcome = JSON.parse(stdout.slice(0, stdout.indexOf("\n}") + 2)) as { welcome: { sessionId: string; serverVersion: string } };
    assert.match(welcome.welcome.sessionId, /^[0-9a-f-]{36}$/);
    assert.match(welcome.welcome.serverVersion, /^promproxy-node\//);
  } finally {
    await s.close();
  }
});
