/**
 * Issue 8, item 3, end to end with a real Prometheus: a client may not take
 * another target's identity through its labels. Tokens are bound to name
 * patterns (`app-*`, `evil-*`); a client holding the `evil-*` token that
 * announces `instance: "app-1:80"` (or `job`, in its hello or a target) is
 * refused with InvalidArgument naming the label, and app-1's series in
 * Prometheus stay app-1's own.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient as createRpcClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { ScrapeService, type ClientFrameSchema } from "../../gen/promproxy/v1/scrape_pb.ts";
import { bearerToken, createClient, type PromproxyClient } from "../../src/client/index.ts";
import { bearerAuth } from "../../src/server/index.ts";
import { startClient, startServer, waitFor, type TestServer } from "../helpers.ts";
import { startPrometheus, type RunningPrometheus } from "./prometheus.ts";

type Frame = MessageInitShape<typeof ClientFrameSchema>;
interface RawHello {
  name: string;
  labels?: Record<string, string>;
  targets?: { port: number; path: string; labels: Record<string, string> }[];
}

let server: TestServer;
const clients: PromproxyClient[] = [];

before(async () => {
  server = await startServer({
    // The probing hellos below end by resetting their streams; they are not vanished clients to keep listed.
    vanishedRetentionMs: 0,
    interceptors: [bearerAuth({ tokens: { "token-app": { name: "apps", patterns: "app-*" }, "token-evil": { name: "evil", patterns: "evil-*" } } })],
  });
  clients.push(await startClient(server.url, "app-1", { interceptors: [bearerToken("token-app")], labels: { team: "payments" } }));
  clients.push(await startClient(server.url, "evil-2", { interceptors: [bearerToken("token-evil")], labels: { team: "evil" } }));
});

after(async () => {
  for (const c of clients) await c.stop();
  await server?.close();
});

/**
 * Sends one hello with a bearer token over a real gRPC stream, bypassing the
 * client library's own checks: resolves with the refusal, or undefined when
 * the server welcomed it (the stream is then closed at once).
 */
async function hello(token: string, h: RawHello): Promise<ConnectError | undefined> {
  const sessionManager = new Http2SessionManager(server.url);
  const transport = createGrpcTransport({ baseUrl: server.url, sessionManager, interceptors: [bearerToken(token)] });
  const rpc = createRpcClient(ScrapeService, transport);
  const stop = new AbortController();
  const done = new Promise<void>((resolve) => stop.signal.addEventListener("abort", () => resolve()));
  async function* frames(): AsyncGenerator<Frame> {
    yield { frame: { case: "hello", value: { name: h.name, labels: h.labels ?? {}, targets: h.targets ?? [], version: "attacker/0" } } };
    await done;
  }
  try {
    for await (const f of rpc.scrape(frames(), { signal: stop.signal })) {
      if (f.frame.case === "welcome") return undefined;
    }
    return new ConnectError("the stream ended without a welcome or an error", Code.Unknown);
  } catch (e) {
    return ConnectError.from(e);
  } finally {
    stop.abort();
    sessionManager.abort();
  }
}

test("hellos that claim job or instance, in labels or targets, are refused with InvalidArgument naming the label", async () => {
  const attempts: [RawHello, RegExp][] = [
    [{ name: "evil-1", labels: { instance: "app-1:80" } }, /^bad hello: labels: the label name "instance" is reserved/],
    [{ name: "evil-1", labels: { job: "promproxy", instance: "app-1:80" } }, /^bad hello: labels: the label name "(job|instance)" is reserved/],
    [{ name: "evil-1", targets: [{ port: 0, path: "", labels: { instance: "app-1:80" } }] }, /^bad hello: target labels: the label name "instance" is reserved/],
    [{ name: "evil-1", targets: [{ port: 0, path: "", labels: { job: "promproxy" } }] }, /^bad hello: target labels: the label name "job" is reserved/],
    [{ name: "evil-1", labels: { __address__: "app-1:80" } }, /^bad hello: labels: the label name "__address__" is reserved/],
  ];
  for (const [h, message] of attempts) {
    const err = await hello("token-evil", h);
    assert.equal(err?.code, Code.InvalidArgument, `${JSON.stringify(h)}: ${err?.rawMessage}`);
    assert.match(err.rawMessage, message);
  }
  // The name binding still holds, and an honest hello with the same token is welcome.
  assert.equal((await hello("token-evil", { name: "app-1" }))?.code, Code.PermissionDenied);
  assert.equal(await hello("token-evil", { name: "evil-1", labels: { team: "evil" } }), undefined);
  // The client library refuses such labels before it connects.
  assert.throws(() => createClient({ name: "evil-3", serverUrl: server.url, labels: { instance: "app-1:80" } }), /"instance" is reserved/);

  const body = (await (await fetch(`${server.url}/clients`)).json()) as { targets: string[]; labels: Record<string, string> }[];
  assert.deepEqual(body.map((g) => g.targets[0]).sort(), ["app-1", "evil-2"]);
  for (const g of body) assert.ok(!("instance" in g.labels) && !("job" in g.labels), JSON.stringify(g));
});

test("in a real Prometheus, app-1's series stay app-1's own", { timeout: 90_000 }, async () => {
  // The attacks again, while Prometheus watches /clients.
  let prom: RunningPrometheus | undefined;
  try {
    prom = await startPrometheus({ serverUrl: server.url });
    const p = prom;
    const attack = await hello("token-evil", { name: "evil-1", labels: { instance: "app-1:80", job: "promproxy" } });
    assert.equal(attack?.code, Code.InvalidArgument);
    try {
      await waitFor(
        "both clients scraped",
        async () => (await p.query('up{job="promproxy"} == 1')).length === 2,
        45_000,
        250,
      );
      const own = await p.query('test_up_total{instance="app-1:80"}');
      assert.deepEqual(
        own.map((s) => s.metric),
        [{ __name__: "test_up_total", instance: "app-1:80", job: "promproxy", name: "app-1", team: "payments" }],
        "only app-1's own sample carries instance=app-1:80",
      );
      const evil = await p.query('test_up_total{name="evil-2"}');
      assert.equal(evil.length, 1);
      assert.equal(evil[0]?.metric["instance"], "evil-2:80", "the evil client's samples carry its own address");
      assert.deepEqual((await p.query("count by (instance) (up)")).map((s) => s.metric["instance"]).sort(), ["app-1:80", "evil-2:80"]);
    } catch (e) {
      throw new Error(`${(e as Error).message}\ntargets: ${JSON.stringify(await p.targets().catch(() => "?"))}\nPrometheus log:\n${p.log()}`);
    }
  } finally {
    await prom?.stop();
  }
});
