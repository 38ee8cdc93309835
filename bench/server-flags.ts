/**
 * The Node flags the server and the forwarder run with as shipped: the
 * image's ENTRYPOINT (`Dockerfile`) passes the same, and
 * `test/deploy/deploy-docker.test.ts` checks that it does. Every bench server
 * process and `promproxy client` forwarder (ours and `--alt`'s, so that an
 * A/B compares code) starts with them, before any flag of its own (a later
 * flag wins: `--server-node-args=--max-semi-space-size=16` undoes it).
 *
 * `--max-semi-space-size=8`: a server's JS heap is small (13 MB with one
 * client, 30-40 MB with 2,000) while V8 grows the young generation to 16 MiB
 * semi-spaces; with a young generation that large against the old
 * generation's headroom, V8 starts a full mark-compact every 100-200 ms under
 * scrape load (`--trace-gc`: 29-35 per bench run against 10-11 with 4 or 8
 * MiB). 8 MiB: server CPU per 10 KB scrape at 8 concurrent about a sixth
 * lower, as low as 4 MiB, and 1-20 MB scrapes no dearer than the default
 * (docs/performance.md).
 *
 * `--initial-old-space-size=64`: without it, V8 draws the old generation's
 * limits from the server's small heap (12-15 MB) and starts a full
 * mark-compact for every 20 MB scrape (`--trace-gc`: 22 in a bench row of 22
 * proxied 20 MB scrapes, their concurrent marking 20-40 ms of helper-thread
 * CPU each); with it, one. Server CPU per 20 MB scrape a third lower, per
 * 1 MB and per 10 KB at 8 concurrent about a fifth; RSS at 2,000 idle
 * clients +5 MB in all, per client unchanged. The forwarder, whose CPU per
 * 20 MB scrape swung between 30 and 57 ms from run to run, stays at 30-34
 * (docs/performance.md).
 */
export const shippedNodeFlags: readonly string[] = ["--max-semi-space-size=8", "--initial-old-space-size=64"];

/** Node flags for a bench server process: the shipped ones, then `extra`. */
export const serverExecArgv = (extra: readonly string[]): string[] => [...shippedNodeFlags, ...extra];
