import assert from "node:assert/strict";
import { test } from "node:test";
import { curl, proxyGet, startClient, startServer } from "../helpers.ts";

test("curl -x scrapes an embedded client through the server", async () => {
  const s = await startServer();
  const c = await startClient(s.url, "app-1");
  try {
    const r = await curl(["-x", s.url, "http://app-1/metrics"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^test_up_total\{name="app-1"\} 1$/m);
    const unknown = await proxyGet(s.port, "http://nobody:80/metrics");
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.toString(), 'promproxy: no client "nobody" connected\n');
  } finally {
    await c.stop();
    await s.close();
  }
});
