import assert from "node:assert/strict";
import * as net from "node:net";
import { test } from "node:test";
import { createServer, silentLogger } from "../src/server/index.ts";
import { resolveListenOptions } from "../src/server/listen/listen-options.ts";

test("listen backlog: 4 096 by default; 1 and 65 535 accepted, 0, 65 536 and fractions refused", async () => {
  assert.equal(resolveListenOptions({}).backlog, 4096);
  for (const backlog of [0, 65_536, 1.5, Number.NaN]) {
    assert.throws(() => resolveListenOptions({ backlog }), /listen option backlog must be a whole number from 1 to 65535/, String(backlog));
  }
  for (const backlog of [1, 65_535]) {
    const server = createServer({ logger: silentLogger });
    const { port } = await server.listen({ host: "127.0.0.1", port: 0, backlog });
    const s = net.connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => s.once("connect", () => resolve()).once("error", reject));
    s.destroy();
    await server.close({ graceMs: 100 });
  }
});
