/**
 * The Node flags the server runs with as shipped: the image's ENTRYPOINT
 * (`Dockerfile`) passes the same, and `test/deploy/deploy-docker.test.ts`
 * checks that it does. Every bench server process (ours and `--alt`'s, so
 * that an A/B compares code) starts with them, before any flag of its own
 * (a later flag wins: `--server-node-args=--max-semi-space-size=16` undoes it).
 *
 * `--max-semi-space-size=8`: a server's JS heap is small (13 MB with one
 * client, 30-40 MB with 2,000) while V8 grows the young generation to 16 MiB
 * semi-spaces; with a young generation that large against the old
 * generation's headroom, V8 starts a full mark-compact every 100-200 ms under
 * scrape load (`--trace-gc`: 29-35 per bench run against 10-11 with 4 or 8
 * MiB). 8 MiB: server CPU per 10 KB scrape at 8 concurrent about a sixth
 * lower, as low as 4 MiB, and 1-20 MB scrapes no dearer than the default
 * (docs/performance.md).
 */
export const shippedNodeFlags: readonly string[] = ["--max-semi-space-size=8"];

/** Node flags for a bench server process: the shipped ones, then `extra`. */
export const serverExecArgv = (extra: readonly string[]): string[] => [...shippedNodeFlags, ...extra];
