/**
 * One endpoint's refusal does not stop a client that has (or may get) a
 * working server (round 13a): an endpoint answering every request with a bare
 * HTTP 401 or 403 (an auth proxy, a stale DNS entry) is no promproxy server,
 * retried as unavailable; a real promproxy server refusing our token while
 * another one welcomes us is retried at the longest backoff step, said once;
 * only when every server refuses for real (or the only one does) does the
 * client stop. A list of URLs, the addresses of one name, and the forwarder
 * CLI. Real servers and sockets on loopback, both transports; the
 * working server sits behind a gate opened only after the other endpoint has
 * refused, so that the refusal always comes first.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { after, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { bearerToken, createClient, type PromproxyClient } from "../../src/client/index.ts";
import { bearerAuth } from "../../src/server/index.ts";
import { proxyGet, startServer, testRegistry, waitFor } from "../helpers.ts";
import { runCli } from "./prometheus.ts";

/** The fast path, connect-es's gRPC transport, and the Connect protocol. */
const transports = { fast: { transport: "fast" }, connect: { transport: "connect" }, "connect protocol": { protocol: "connect" } } as const;
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** An HTTP/2 endpoint answering every request `status` with a plain body (an auth proxy): its hits counted. */
async function bareStatus(status: number, host = "127.0.0.1", port = 0): Promise<{ url: string; hits: () => number }> {
  let hits = 0;
  const server = http2.createServer((req, res) => {
    hits++;
    res.writeHead(status, { "www-authenticate": "Bearer", "content-type": "text/plain" });
    res.end("no\n");
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => (sessions.add(s), s.on("close", () => sessions.delete(s)), s.on("error", () => {})));
  await new Promise<void>((r) => server.listen(port, host, r));
  closers.push(() => new Promise<void>((r) => (sessions.forEach((s) => s.destroy()), server.close(() => r()))));
  return { url: `http://${host}:${(server.address() as net.AddressInfo).port}`, hits: () => hits };
}

/** A TCP relay to `port` that holds every connection until `open()`: the server behind it answers after the others. */
async function gate(port: number, at = 0): Promise<{ url: string; open(): void }> {
  let opened: () => void = () => {};
  const open = new Promise<void>((r) => (opened = r));
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    sockets.add(inbound);
    inbound.on("error", () => {}).on("close", () => sockets.delete(inbound));
    void open.then(() => {
      if (inbound.destroyed) return;
      const outbound = net.connect(port, "127.0.0.1");
      sockets.add(outbound);
      outbound.on("error", () => inbound.destroy()).on("close", () => (sockets.delete(outbound), inbound.destroy()));
      inbound.on("close", () => outbound.destroy());
      inbound.pipe(outbound).pipe(inbound);
    });
  });
  await new Promise<void>((r) => server.listen(at, "127.0.0.1", r));
  closers.push(() => new Promise<void>((r) => (sockets.forEach((s) => s.destroy()), server.close(() => r()))));
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, open: opened };
}

/** A client of `urls` with a recording logger and onError; stopped after the test. */
function client(urls: string[], transport: keyof typeof transports, more: Record<string, unknown> = {}) {
  const errors: ConnectError[] = [];
  /** When each error came (performance.now()). */
  const at: number[] = [];
  const lines: string[] = [];
  const say = (level: string) => (m: string, f?: Record<string, unknown>) => void lines.push(`${level} ${m} ${JSON.stringify(f ?? {})}`);
  const c: PromproxyClient = createClient({
    name: "app-1",
    serverUrl: urls,
    ...transports[transport],
    registry: testRegistry("app-1"),
    backoff: { initialMs: 50, maxMs: 300 },
    logger: { debug() {}, info: say("info"), warn: say("warn"), error: say("error") },
    onError: (e) => void (errors.push(e), at.push(performance.now())),
    ...more,
  });
  closers.push(() => c.stop());
  return { c, errors, at, lines, said: () => `\n${lines.join("\n")}` };
}

for (const transport of Object.keys(transports) as (keyof typeof transports)[]) {
  for (const status of [401, 403]) {
    test(`a good server and an endpoint answering a bare HTTP ${status}: the client serves through the good one, the other retried as not a promproxy server (${transport})`, { timeout: 60_000 }, async () => {
      const bad = await bareStatus(status);
      const good = await startServer();
      closers.push(() => good.close());
      const g = await gate(good.port);
      const { c, errors, said } = client([g.url, bad.url], transport);
      await c.start();
      // The bare status comes first (the good server is held at the gate): before the fix, it stopped the client.
      await waitFor("the endpoint hit twice, or the client stopped", () => bad.hits() >= 2 || c.state === "stopped", 20_000);
      assert.notEqual(c.state, "stopped", `the client stopped on a bare HTTP ${status}:${said()}`);
      g.open();
      await c.ready({ timeoutMs: 15_000 });
      const hits = bad.hits();
      await waitFor("two more attempts there", () => bad.hits() >= hits + 2 || c.state !== "connected", 20_000);
      assert.equal(c.state, "connected", said());
      const r = await proxyGet(good.port, "http://app-1/metrics");
      assert.equal(r.status, 200, r.body.toString());
      assert.match(r.body.toString(), /test_up_total\{name="app-1"\} 1/);
      const there = errors.filter((e) => e.rawMessage.includes(new URL(bad.url).host));
      assert.ok(there.length >= 2, said());
      for (const e of there) {
        assert.equal(e.code, Code.Unavailable, e.rawMessage);
        assert.equal(e.rawMessage, `${bad.url} answered HTTP ${status} without a gRPC status (content-type text/plain): not a promproxy server (an auth proxy? a wrong address?)`);
      }
      assert.ok(!errors.some((e) => e.code === Code.Unauthenticated || e.code === Code.PermissionDenied), said());
    });
  }

  test(`one of two promproxy servers refuses our token: the client serves through the other, the refusal said once and retried at the longest backoff (${transport})`, { timeout: 60_000 }, async () => {
    const strict = await startServer({ interceptors: [bearerAuth({ tokens: { "right-token-0123456789abcdef": "app-*" } })] });
    const open = await startServer();
    closers.push(() => strict.close(), () => open.close());
    const g = await gate(open.port);
    // The longest step 1 s, the first 20 ms: the refusing server is retried 1 s apart, not 20, 40, 80 ms.
    const backoff = { initialMs: 20, maxMs: 1_000 };
    const { c, errors, at, lines, said } = client([g.url, strict.url], transport, { backoff, interceptors: [bearerToken("wrong-token-0123456789abcdef")] });
    const refusals = () => errors.filter((e) => e.code === Code.Unauthenticated).length;
    await c.start();
    await waitFor("the refusal, or the client stopped", () => refusals() >= 1 || c.state === "stopped", 20_000);
    await new Promise((r) => setTimeout(r, 100)); // the stop, if any, is synchronous with the refusal
    assert.notEqual(c.state, "stopped", `one server's refusal stopped the client:${said()}`);
    g.open();
    await c.ready({ timeoutMs: 15_000 });
    await waitFor("three refusals", () => refusals() >= 3 || c.state !== "connected", 20_000);
    assert.equal(c.state, "connected", said());
    const r = await proxyGet(open.port, "http://app-1/metrics");
    assert.equal(r.status, 200, r.body.toString());
    const when = errors.flatMap((e, i) => (e.code === Code.Unauthenticated ? [at[i] ?? 0] : []));
    for (let i = 1; i < when.length; i++) assert.ok(when[i]! - when[i - 1]! >= 0.9 * backoff.maxMs, `refusals ${Math.round(when[i]! - when[i - 1]!)} ms apart:${said()}`);
    const held = lines.filter((l) => /^error refused by one of the servers: retrying it every 1s while the others serve \(or may\)/.test(l));
    assert.equal(held.length, 1, said());
    assert.match(held[0] ?? "", new RegExp(`"server":"${new URL(strict.url).host}","code":"Unauthenticated"`));
    assert.ok(!lines.some((l) => /the client stops/.test(l)), said());
  });

  for (const servers of [1, 2]) {
    test(`${servers === 1 ? "the only server" : "every one of two servers"} refuses our token: the client stops, ready() rejects with the refusal (${transport})`, { timeout: 60_000 }, async () => {
      const urls: string[] = [];
      for (let i = 0; i < servers; i++) {
        const s = await startServer({ interceptors: [bearerAuth({ tokens: { "right-token-0123456789abcdef": "app-*" } })] });
        closers.push(() => s.close());
        urls.push(s.url);
      }
      const { c, lines, said } = client(urls, transport, { interceptors: [bearerToken("wrong-token-0123456789abcdef")] });
      await c.start();
      await assert.rejects(c.ready({ timeoutMs: 15_000 }), (e: unknown) => e instanceof ConnectError && e.code === Code.Unauthenticated);
      assert.equal(c.state, "stopped");
      assert.equal(lines.filter((l) => /^error refused by the server: the client stops/.test(l)).length, 1, said());
    });
  }
}

test("the forwarder given a good server and one answering a bare HTTP 401 keeps running and serves through the good one (it exited 1)", { timeout: 60_000 }, async () => {
  const exporter = http.createServer((_req, res) => res.end("up 1\n"));
  await new Promise<void>((r) => exporter.listen(0, "127.0.0.1", r));
  closers.push(() => new Promise<void>((r) => (exporter.closeAllConnections(), exporter.close(() => r()))));
  const bad = await bareStatus(401);
  const good = await startServer();
  closers.push(() => good.close());
  const g = await gate(good.port);
  const target = `9100=http://127.0.0.1:${(exporter.address() as net.AddressInfo).port}/metrics`;
  const fwd = runCli(["client", "--name", "fwd", "--server", g.url, "--server", bad.url, "--target", target]);
  closers.push(() => fwd.kill());
  const out = () => `\nstdout:\n${fwd.stdout()}\nstderr:\n${fwd.stderr()}`;
  let exited = false;
  void fwd.exited.then(() => (exited = true));
  await waitFor("the endpoint hit twice, or the forwarder gone", () => bad.hits() >= 2 || exited, 20_000);
  assert.equal(exited, false, `the forwarder exited on a bare HTTP 401:${out()}`);
  g.open();
  await waitFor("connected", () => /INFO promproxy: connected/.test(fwd.stderr()) || exited, 20_000);
  const r = await proxyGet(good.port, "http://fwd:9100/metrics");
  assert.equal(r.status, 200, `${r.body.toString()}${out()}`);
  assert.equal(r.body.toString(), "up 1\n");
  assert.match(fwd.stderr(), /code="Unavailable" reason="http:\/\/127\.0\.0\.1:\d+ answered HTTP 401 without a gRPC status \(content-type text\/plain\): not a promproxy server \(an auth proxy\? a wrong address\?\)"/);
  assert.doesNotMatch(fwd.stderr(), /the client stops|refused client/, out());
});

test("one server name, two addresses, one of them answering a bare HTTP 401: the client serves through the other", { timeout: 60_000 }, async () => {
  const bad = await bareStatus(401, "127.0.0.2"); // a stale DNS entry now pointing at an auth proxy
  const port = Number(new URL(bad.url).port);
  const good = await startServer();
  closers.push(() => good.close());
  const g = await gate(good.port, port); // 127.0.0.1, the same port
  const { c, errors, said } = client([`http://promproxy.test:${port}`], "fast", { resolve: async () => ["127.0.0.1", "127.0.0.2"] });
  await c.start();
  await waitFor("the stale address hit twice, or the client stopped", () => bad.hits() >= 2 || c.state === "stopped", 20_000);
  assert.notEqual(c.state, "stopped", `the client stopped on a bare HTTP 401:${said()}`);
  g.open();
  await c.ready({ timeoutMs: 15_000 });
  assert.equal((await proxyGet(good.port, "http://app-1/metrics")).status, 200);
  const there = errors.filter((e) => e.rawMessage.includes("(127.0.0.2)"));
  assert.ok(there.length >= 2, said());
  for (const e of there) assert.equal(e.rawMessage, `http://promproxy.test:${port} (127.0.0.2) answered HTTP 401 without a gRPC status (content-type text/plain): not a promproxy server (an auth proxy? a wrong address?)`);
});
