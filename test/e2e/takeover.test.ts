// A client whose path died silently must not keep its name hostage; a live client's name cannot be taken.
import assert from "node:assert/strict";
import * as net from "node:net";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { createClient } from "../../src/client/index.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { proxyGet, startClient, startServer, testRegistry } from "../helpers.ts";

/** A loopback TCP relay that can stop forwarding without closing anything (a black hole). */
async function relay(targetPort: number) {
  let blackHole = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((down) => {
    const up = net.connect(targetPort, "127.0.0.1");
    for (const s of [down, up]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
    }
    down.on("data", (d) => blackHole || up.write(d));
    up.on("data", (d) => blackHole || down.write(d));
    down.on("close", () => up.destroy());
    up.on("close", () => down.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    drop() {
      blackHole = true;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

test("a new stream takes over a name whose holder went silent; a live holder keeps it", async () => {
  const s = await startServer({ takeoverProbeMs: 300 });
  const r = await relay(s.port);
  const old = await startClient(`http://127.0.0.1:${r.port}`, "app-1", { heartbeatMisses: 1000, pingIntervalMs: 60_000 });
  const codes: Code[] = [];
  const thief = createClient({
    name: "APP-1",
    serverUrl: s.url,
    registry: testRegistry("thief"),
    logger: silentLogger,
    backoff: { initialMs: 50, maxMs: 100 },
    onError: (e: ConnectError) => codes.push(e.code),
  });
  try {
    // While the holder answers, the name stays with it.
    void thief.start();
    const thiefStart = thief.ready();
    thiefStart.catch(() => {});
    await new Promise((res) => setTimeout(res, 1000));
    assert.ok(codes.length >= 2 && codes.every((c) => c === Code.AlreadyExists), `refused with AlreadyExists: ${codes.map((c) => Code[c]).join(",")}`);
    assert.equal(thief.state, "connecting");
    assert.match((await proxyGet(s.port, "http://app-1/metrics")).body.toString(), /name="app-1"/);

    // The holder's path dies silently: the next attempt's probe gets no answer and the newcomer takes over.
    r.drop();
    await thiefStart;
    assert.equal(s.server.clients().length, 1);
    const res = await proxyGet(s.port, "http://app-1/metrics");
    assert.equal(res.status, 200);
    assert.match(res.body.toString(), /name="thief"/);
  } finally {
    await thief.stop();
    await old.stop();
    await r.close();
    await s.close();
  }
});
