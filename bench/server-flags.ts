/**
 * The Node flags the server runs with as shipped: the image's ENTRYPOINT
 * (`Dockerfile`) passes the same, and `test/deploy/deploy-docker.test.ts`
 * checks that it does. Every bench server process (ours and `--alt`'s, so
 * that an A/B compares code) starts with them, before any flag of its own
 * (a later flag wins: `--server-node-args=--max-semi-space-size=16` undoes it).
 *
 * `--max-semi-space-size=4`: a server's JS heap is small (13 MB with one
 * client, 30-40 MB with 2,000) while V8 grows the young generation to 16 MiB
 * semi-spaces; with a young generation that large against the old
 * generation's headroom, V8 starts a full mark-compact every 100-200 ms under
 * scrape load (`--trace-gc`: 31-35 per 8 s bench run against 10-11 with 4
 * MiB) and the server spends about a fifth more CPU per scrape
 * (bench/measurements.md).
 */
export const shippedNodeFlags: readonly string[] = ["--max-semi-space-size=4"];

/** Node flags for a bench server process: the shipped ones, then `extra`. */
export const serverExecArgv = (extra: readonly string[]): string[] => [...shippedNodeFlags, ...extra];
