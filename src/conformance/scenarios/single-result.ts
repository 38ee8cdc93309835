/**
 * The feature "single-result": a result that fits one chunk within its credit
 * may come as one `result` frame (head, data and end); one that does not still
 * comes as a head, chunks within the credit, and an end. The kit's body is
 * larger than a chunk, so a HEAD order (feature "head") shows the one frame.
 *
 * @internal
 */
import { assertHealthy, connectClient, scrapeOk } from "../harness.ts";
import { formatBytes } from "../result-check.ts";
import { notOffered, pass, type Scenario } from "../scenario.ts";
import type { ScrapeRecord } from "../scrape-ledger.ts";

const how = (r: ScrapeRecord) => (r.single ? "one result frame" : `a head, ${r.chunks} chunks and an end`);

export const singleResult: Scenario = {
  id: "single-result",
  title: 'feature "single-result": a small result in one frame, a large one under credit in chunks',
  timeoutMs: 60_000,
  async run(ctx) {
    const { server, session } = await connectClient(ctx, { welcome: false });
    if (!session.hello.features.includes("single-result")) return notOffered('the hello names no feature "single-result"');
    // With "head" too, a HEAD order: a result without a body, which always fits one frame.
    const head = session.hello.features.includes("head");
    session.welcome({ features: head ? ["single-result", "head"] : ["single-result"], maxChunkBytes: 1 << 20 });
    const ample = await scrapeOk(session, { creditBytes: 64 << 20, grantBytes: 64 << 20 });
    const tight = await scrapeOk(session, { creditBytes: 1024, grantBytes: 4096 }, 50_000);
    const headOnly = head ? await scrapeOk(session, { method: "HEAD", creditBytes: 1024 }) : undefined;
    assertHealthy(server, session);
    const parts = [`${formatBytes(ample.bodyBytes)} with ample credit: ${how(ample)}`, `${formatBytes(tight.bodyBytes)} with 1 KiB of credit: ${how(tight)}`];
    if (headOnly) parts.push(`HEAD: ${how(headOnly)}`);
    return pass(parts.join("; "));
  },
};
