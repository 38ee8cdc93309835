/**
 * The client trusts no server, part four: what the client queues to send
 * when a server negotiates the one-frame result (feature "single-result") with
 * the largest chunks (1 MiB), then reads nothing and keeps ordering scrapes. A
 * result frame carries a whole body; queued uncounted, each order cost the
 * host a rendered body until the stream ended (up to 3 heartbeats: 30
 * minutes), ~1 MB an order (round 16a). Counted, a result waits for room as
 * any chunk does. Thresholds are on memory and counts, never on speed.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { waitFor } from "../helpers.ts";
import { MiB, mb, startHost } from "./fixtures/hostile-server/harness.ts";
import { startHostileServer, type HostileStream } from "./fixtures/hostile-server/server.ts";

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const transport of ["fast", "connect"] as const) {
  test(`a server that takes single results of 1 MiB chunks and reads nothing (${transport} transport): the host holds a few bodies, not one per order; all are answered once it reads`, async (t) => {
    const orders = 40;
    let stream: HostileStream | undefined;
    let go: () => void = () => {};
    const started = new Promise<void>((r) => (go = r));
    let sent = 0;
    const server = await startHostileServer(async (s) => {
      stream = s;
      await s.send({
        frame: {
          case: "welcome",
          value: { sessionId: "held", features: ["single-result", "head"], limits: { maxChunkBytes: MiB }, heartbeatInterval: { seconds: 600n, nanos: 0 } },
        },
      });
      await started;
      for (let id = 1n; id <= BigInt(orders) && !s.closed; id++) {
        await s.send({ frame: { case: "order", value: { scrapeId: id, path: "/metrics", creditBytes: 16n * BigInt(MiB), timeout: { seconds: 120n, nanos: 0 } } } });
        sent++;
        await pause(50);
      }
    }, { windowSize: 0 }); // takes none of the client's bytes, until the test opens the window below
    cleanups.push(() => server.close());
    // Every scrape renders afresh (maxRenderPercent 100): each order's body is its own ~600 KB.
    const host = startHost(server.url, { registryBytes: 600_000, client: { maxRenderPercent: 100, maxScrapesInFlight: 2, transport } });
    cleanups.push(() => host.stop());
    await waitFor("connected", async () => (await host.stats()).connected >= 1, 30_000);
    const base = await host.stats();
    go();
    await waitFor("the orders sent", () => sent >= orders, 60_000);
    await pause(3_000); // the client reads what it will of them
    const now = await host.stats();
    const grown = now.external - base.external;
    t.diagnostic(`${orders} orders: ${now.collects.total - base.collects.total} renders; host external ${mb(base.external)} -> ${mb(now.external)} (+${mb(grown)}), heap ${mb(base.heapUsed)} -> ${mb(now.heapUsed)}, rss ${mb(base.rss)} -> ${mb(now.rss)}`);
    // Uncounted, every order queued its body: +30 MB or so here. Counted: a high-water mark and a body queued, one
    // taken by the transport, one waiting per place (maxScrapesInFlight 2): about 4 bodies.
    assert.ok(grown < 12 * MiB, `the host holds ${mb(grown)} more after ${orders} orders nobody reads`);
    assert.equal(host.script.stderr(), "");

    // The server reads now: every order is answered whole (a result, or head, chunks and end, or a busy end).
    const answered = new Map<bigint, string>();
    const bodies = new Map<bigint, { length: number; got: number }>();
    const s = stream!;
    s.read((f) => {
      const c = f.frame;
      if (c.case === "result") answered.set(c.value.scrapeId, c.value.error ? `result error ${c.value.error.message}` : `result ${c.value.data.byteLength}`);
      if (c.case === "head") bodies.set(c.value.scrapeId, { length: Number(c.value.headers.find((h) => h.name === "content-length")?.value ?? -1), got: 0 });
      if (c.case === "chunk") bodies.get(c.value.scrapeId)!.got += c.value.data.byteLength;
      if (c.case === "end") {
        const b = bodies.get(c.value.scrapeId);
        answered.set(c.value.scrapeId, c.value.error ? `end error ${c.value.error.message}` : b && b.got === b.length ? "whole" : `cut ${b?.got}/${b?.length}`);
      }
    });
    s.stream.session?.settings({ initialWindowSize: 4 * MiB });
    await waitFor("every order answered", () => answered.size >= orders, 60_000);
    const kinds = new Map<string, number>();
    for (const a of answered.values()) {
      const k = a.replace(/\d+/g, "N");
      kinds.set(k, (kinds.get(k) ?? 0) + 1);
    }
    t.diagnostic(`answers: ${[...kinds].map(([k, n]) => `${n} ${k}`).join(", ")}`);
    for (const [id, a] of answered) assert.match(a, /^(result \d{6,}|whole|end error .*in flight, its maximum)$/, `scrape ${id}: ${a}`);
    assert.ok([...answered.values()].some((a) => a.startsWith("result")), "a single result while the queue had room");
  });
}
