import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { Registry } from "prom-client";
import { createClient, silentLogger } from "../src/client/index.ts";
import { createWelcomePatience } from "../src/client/welcome-patience.ts";
import { waitFor } from "./helpers.ts";

test("welcome patience: doubles after each timeout up to its bound, a welcome resets it", () => {
  const p = createWelcomePatience({ welcomeTimeoutMs: 1_000, maxWelcomeTimeoutMs: 5_000 });
  const seen = [p.currentMs];
  for (let i = 0; i < 5; i++) {
    p.timedOut();
    seen.push(p.currentMs);
  }
  assert.deepEqual(seen, [1_000, 2_000, 4_000, 5_000, 5_000, 5_000]);
  p.welcomed();
  assert.equal(p.currentMs, 1_000);
});

test("welcome patience: a bound equal to the timeout never grows", () => {
  const p = createWelcomePatience({ welcomeTimeoutMs: 1_000, maxWelcomeTimeoutMs: 1_000 });
  p.timedOut();
  p.timedOut();
  assert.equal(p.currentMs, 1_000);
});

test("welcome patience: one per client, shared by its attempts: a second client starts at welcomeTimeoutMs", { timeout: 30_000 }, async () => {
  // A server that takes every stream and never answers: each attempt waits for its welcome until it gives up.
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
    s.on("error", () => {}); // a client giving up cancels its connection (GOAWAY)
  });
  server.on("stream", (st) => void st.on("error", () => {}));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const serverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const waits = { a: [] as string[], b: [] as string[] };
  const clientOf = (name: "a" | "b") =>
    createClient({
      name,
      serverUrl,
      registry: new Registry(),
      logger: silentLogger,
      welcomeTimeoutMs: 200,
      maxWelcomeTimeoutMs: 800,
      backoff: { initialMs: 20, maxMs: 50 },
      onError: (e) => waits[name].push(/no welcome from the server within ([\d.]+)s/.exec(e.rawMessage)?.[1] ?? e.rawMessage),
    });
  const a = clientOf("a");
  const b = clientOf("b");
  try {
    void a.start();
    await waitFor("three timed-out attempts of a", () => waits.a.length >= 3, 20_000, 20);
    void b.start();
    await waitFor("a timed-out attempt of b", () => waits.b.length >= 1, 20_000, 20);
    assert.deepEqual(waits.a.slice(0, 3), ["0.2", "0.4", "0.8"]);
    assert.equal(waits.b[0], "0.2");
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    for (const s of sessions) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});
