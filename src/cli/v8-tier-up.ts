/**
 * V8's tier-up for a long-running promproxy process (`promproxy server`,
 * `promproxy client`): a function is compiled by TurboFan, V8's optimizing
 * compiler, after about 300 invocations instead of V8's default 3,000.
 *
 * Most of a scrape's functions run once or a few times per scrape, so with
 * V8's default a process serves its first thousands of scrapes from
 * unoptimized code: for a target scraped every 15 s, hours. In the bench, a
 * sequential 10 KB scrape through server and forwarder takes 3,000 scrapes
 * to reach its fastest with V8's default, and about 1,000 with 300, where it
 * is faster still (docs/performance.md). The price is compiling sooner: more
 * CPU over a process's first few hundred scrapes, once.
 *
 * Only the CLI sets it: the library never changes V8 flags of the process
 * it runs in. A Node flag of the user's own (`NODE_OPTIONS` or the command
 * line) wins.
 */
import * as v8 from "node:v8";

/** Invocations before TurboFan compiles a function (V8's default: 3000). */
export const turbofanInvocations = 300;

const flagName = /--invocation[-_]count[-_]for[-_]turbofan\b/;

/**
 * Sets V8's TurboFan threshold to `turbofanInvocations`, unless Node was
 * started with one (in `execArgv` or `nodeOptions`). Returns the flag it set,
 * or undefined when it left the user's.
 */
export function tuneTierUp(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env["NODE_OPTIONS"] ?? ""): string | undefined {
  if (execArgv.some((a) => flagName.test(a)) || flagName.test(nodeOptions)) return undefined;
  const flag = `--invocation-count-for-turbofan=${turbofanInvocations}`;
  v8.setFlagsFromString(flag);
  return flag;
}
