/**
 * The client trusts no server, HTTP/2 control frames: PING, SETTINGS, ORIGIN
 * and ALTSVC that nghttp2 answers or takes by itself, below the client's frame
 * budget (which paces a stream's DATA). A server keeping its PINGs and SETTINGS
 * under nghttp2's flood detector, or sending frames that want no answer, had
 * the host answer ~700,000 PINGs or take ~300,000 ORIGIN frames a second, 35-64 %
 * of a core, for as long as it liked, with no log line (outside review, round
 * 13a). Past maxServerControlFramesPerSecond (default 100) the connection is
 * closed, the stream ends with a reason that says so, and the client dials again.
 *
 * The bounds are counts: the frames a server got out on a connection before the
 * client cut it. The flood server keeps at most two batches unacknowledged, so
 * what it got out is what the client took, give or take two batches.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { waitFor } from "../helpers.ts";
import { cleanupsAfterAll, clientTls, pause, serverTls, startHost } from "./fixtures/hostile-server/harness.ts";
import { startControlServer, type ControlKind } from "./fixtures/hostile-server/control-server.ts";

const cleanups = cleanupsAfterAll();

const cutLine = (limit: number) =>
  new RegExp(`^log warn disconnected .*"reason":"the server sent \\d+ HTTP/2 control frames \\(PING/SETTINGS/ORIGIN/ALTSVC\\) in [\\d.]+ s, more than maxServerControlFramesPerSecond \\(${limit} a second\\) allows"`);

const floods: { kind: ControlKind; transport: "fast" | "connect"; tls?: boolean; batch: number }[] = [
  { kind: "ping", transport: "fast", batch: 100 },
  { kind: "ping", transport: "connect", batch: 100 },
  { kind: "settings", transport: "fast", batch: 100 },
  { kind: "altsvc", transport: "fast", batch: 100 },
  // Node emits "origin" only on TLS, but wakes JavaScript for every ORIGIN frame on cleartext too. Large batches:
  // the marker PINGs alone stay under the limit.
  { kind: "origin", transport: "fast", batch: 5_000 },
  { kind: "origin", transport: "fast", tls: true, batch: 5_000 },
];

for (const f of floods) {
  test(`${f.transport}${f.tls ? ", TLS" : ""}: ${f.kind} frames as fast as the client takes them, under nghttp2's flood detector: the connection is cut past 100 a second`, async (t) => {
    const server = await startControlServer({ kind: f.kind, mode: "flood", batch: f.batch, ...(f.tls ? { tls: serverTls } : {}) });
    cleanups.push(() => server.close());
    const host = startHost(server.url, { client: { transport: f.transport, ...(f.tls ? { tls: clientTls } : {}) } });
    cleanups.push(() => host.stop());
    const line = (await waitFor("the cut, said", () => host.logs().find((l) => cutLine(100).test(l)), 20_000)) ?? "";
    await waitFor("the first connection closed", () => server.closed[0], 10_000);
    // The limit's second's worth, two batches (and their markers) in flight, one more taken, and what refills meanwhile, twice over.
    const most = 2 * (100 + 3 * (f.batch + 1)) + 1_000;
    const taken = server.sent[0]!;
    t.diagnostic(`${line.slice(0, 260)}; the server got ${taken} frames out on the first connection (at most ${most})`);
    assert.ok(taken <= most, `${taken} ${f.kind} frames taken before the cut (at most ${most})`);
    assert.ok(taken >= 100, `${taken} frames: the cut came before the limit`);
    await waitFor("a second connection (the client dials again)", () => server.sent.length >= 2, 20_000);
    assert.equal(host.script.stderr(), "");
  });
}

test("a server at the limit (20 a second, PINGs, SETTINGS and ALTSVC) keeps its stream; one at 30 a second is cut", async (t) => {
  const kinds: ControlKind[] = ["ping", "settings", "altsvc"];
  const honest = await Promise.all(kinds.map((kind) => startControlServer({ kind, mode: "paced", perTick: 2 })));
  const over = await startControlServer({ kind: "ping", mode: "paced", perTick: 3 });
  for (const s of [...honest, over]) cleanups.push(() => s.close());
  const hosts = [...honest, over].map((s) => startHost(s.url, { client: { maxServerControlFramesPerSecond: 20 } }));
  for (const h of hosts) cleanups.push(() => h.stop());
  const overHost = hosts[3]!;
  // At 30 a second against 20 and a bucket of 20: empty after about 2 s.
  const line = (await waitFor("the cut at 30 a second", () => overHost.logs().find((l) => cutLine(20).test(l)), 20_000)) ?? "";
  t.diagnostic(line.slice(0, 260));
  await waitFor("every honest server sent 60 frames", () => honest.every((s) => (s.sent[0] ?? 0) >= 60), 20_000);
  await pause(500);
  for (const [i, s] of honest.entries()) {
    t.diagnostic(`${kinds[i]}: ${s.sent[0]} frames at 20 a second on ${s.sent.length} connection(s)`);
    assert.equal(s.sent.length, 1, `${kinds[i]} at the limit: the client dialled again`);
    assert.equal(s.closed[0], false, `${kinds[i]} at the limit: the connection was closed`);
    assert.deepEqual(hosts[i]!.logs().filter((l) => /disconnected/.test(l)), []);
  }
  for (const h of hosts) assert.equal(h.script.stderr(), "");
});
