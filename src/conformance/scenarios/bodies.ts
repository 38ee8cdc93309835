/**
 * Scenarios on the scripted server about the hello and about results: a plain
 * scrape, a body under tight credit and small chunks, the 64 KiB default when
 * the welcome names no chunk limit, several scrapes at once, HEAD.
 *
 * @internal
 */
import { checkName } from "../../shared/names.ts";
import { assertHealthy, connectClient, scrapeOk } from "../harness.ts";
import { checkResult, formatBytes } from "../result-check.ts";
import { check, notApplicable, notOffered, pass, sleep, type Scenario } from "../scenario.ts";

const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const reservedLabels = new Set(["job", "instance", "le", "quantile"]);

/** A body that cannot show whether the rule holds: the kit says so instead of passing. */
function tooSmall(got: number, asked: number, fits: string) {
  return notApplicable(
    `the body (${formatBytes(got)}) fits ${fits}, so the rule was not exercised: serve at least {size} bytes (${formatBytes(asked)} asked)`,
  );
}

export const helloWelcome: Scenario = {
  id: "hello",
  title: "hello first, nothing more before the welcome; pong after it",
  timeoutMs: 30_000,
  async run(ctx) {
    const { server, session } = await connectClient(ctx, { welcome: false });
    const h = session.hello;
    const named = checkName(h.name);
    check(!("error" in named), () => `the hello's name: ${"error" in named ? named.error : ""}`);
    check(h.name.toLowerCase() === ctx.name, `the hello names ${JSON.stringify(h.name)}, want ${JSON.stringify(ctx.name)}`);
    const labels = [...Object.keys(h.labels), ...h.targets.flatMap((t) => Object.keys(t.labels))];
    const bad = labels.find((l) => !labelName.test(l) || l.startsWith("__") || reservedLabels.has(l));
    check(bad === undefined, `the hello announces the label ${JSON.stringify(bad)}, which a server refuses`);
    const badPath = h.targets.find((t) => t.path !== "" && !t.path.startsWith("/"));
    check(!badPath, `a target path ${JSON.stringify(badPath?.path)} that does not start with "/"`);
    await sleep(1_000); // the welcome is late: the client must wait for it
    check(session.received.length === 0, () => `sent a ${session.received[0]?.frame.frame.case} before the welcome`);
    session.welcome();
    const rtt = await session.ping(42n, 5_000);
    assertHealthy(server, session);
    const targets = h.targets.length ? h.targets.map((t) => `${t.port || "*"}${t.path || "/metrics"}`).join(",") : "default target";
    return pass(`version ${JSON.stringify(h.version)}, ${targets}, features [${h.features.join(",")}]; waited for a 1 s late welcome; pong in ${rtt.toFixed(0)} ms`);
  },
};

export const plainScrape: Scenario = {
  id: "scrape",
  title: "a scrape with ample credit: 200, content-type, exact content-length, exposition",
  timeoutMs: 30_000,
  async run(ctx) {
    const { server, session } = await connectClient(ctx, { welcome: { maxChunkBytes: 256 * 1024 } });
    const r = await scrapeOk(session, { creditBytes: 64 << 20, grantBytes: 64 << 20 });
    assertHealthy(server, session);
    const ms = (r.end?.at ?? 0) - r.orderedAt;
    return pass(`${formatBytes(r.bodyBytes)} in ${r.chunks} chunks (largest ${formatBytes(r.largestChunk)}), ${ms} ms`);
  },
};

export const tightCredit: Scenario = {
  id: "credit",
  title: "body under credit: 1 KiB chunks, 4 KiB credit, granted as read",
  timeoutMs: 60_000,
  async run(ctx) {
    const { server, session } = await connectClient(ctx, { welcome: { maxChunkBytes: 1024 } });
    const r = await scrapeOk(session, { creditBytes: 4096, grantBytes: 4096 }, 50_000);
    assertHealthy(server, session);
    if (r.bodyBytes <= 4096) return tooSmall(r.bodyBytes, ctx.bodyBytes, "the first credit");
    check(r.grants > 0, "the body was larger than its credit, yet no credit was needed");
    const ms = (r.end?.at ?? 0) - r.orderedAt;
    return pass(`${formatBytes(r.bodyBytes)} in ${r.chunks} chunks (largest ${r.largestChunk} B), ${r.grants} credit grants, never over credit; ${ms} ms`);
  },
};

export const defaultChunkLimit: Scenario = {
  id: "chunk-default",
  title: "a welcome without limits: chunks of at most 64 KiB",
  timeoutMs: 30_000,
  async run(ctx) {
    const { server, session } = await connectClient(ctx, { welcome: { maxChunkBytes: 0 } });
    const r = await scrapeOk(session, { creditBytes: 64 << 20, grantBytes: 64 << 20 });
    assertHealthy(server, session);
    if (r.bodyBytes <= 64 * 1024) return tooSmall(r.bodyBytes, ctx.bodyBytes, "one chunk of 64 KiB");
    return pass(`${formatBytes(r.bodyBytes)} in ${r.chunks} chunks, largest ${formatBytes(r.largestChunk)}`);
  },
};

export const concurrentScrapes: Scenario = {
  id: "concurrent",
  title: "four scrapes at once under credit, all correct",
  timeoutMs: 60_000,
  async run(ctx) {
    const { server, session } = await connectClient(ctx, { welcome: { maxChunkBytes: 1024 } });
    const trackers = Array.from({ length: 4 }, () => session.order({ creditBytes: 2048, grantBytes: 2048 }));
    const records = await Promise.all(trackers.map((t) => t.settled(50_000)));
    for (const r of records) {
      const problem = checkResult(r);
      check(!problem, () => problem ?? "");
    }
    assertHealthy(server, session);
    // Were their chunks interleaved on the stream (served at once), or one after the other?
    let switches = 0;
    let last: bigint | undefined;
    for (const { frame } of session.received) {
      if (frame.frame.case !== "chunk") continue;
      if (last !== undefined && frame.frame.value.scrapeId !== last) switches++;
      last = frame.frame.value.scrapeId;
    }
    const sizes = records.map((r) => formatBytes(r.bodyBytes)).join(", ");
    return pass(`4 results (${sizes}); chunks of different scrapes interleaved ${switches} times`);
  },
};

export const headOrder: Scenario = {
  id: "head",
  title: 'HEAD (feature "head"): a head and no body',
  timeoutMs: 30_000,
  async run(ctx) {
    const { server, session } = await connectClient(ctx, { welcome: false });
    if (!session.hello.features.includes("head")) return notOffered('the hello names no feature "head"');
    session.welcome({ features: ["head"] });
    const r = await scrapeOk(session, { method: "HEAD" });
    assertHealthy(server, session);
    const length = r.head?.value.headers.find((h) => h.name.toLowerCase() === "content-length")?.value;
    return pass(`head ${r.head?.value.status} and an end, no chunks${length ? `, content-length ${length}` : ""}`);
  },
};
