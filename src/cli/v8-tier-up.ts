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
 * Only on Node 22, which runs V8 without Maglev, its mid-tier optimizing
 * compiler. Node 23 and later run Maglev after about 400 invocations; on
 * Node 24 the bench showed no gain, and they keep V8's defaults (a flag a
 * later V8 drops would also print an error on every start).
 *
 * Only the CLI sets it: the library never changes V8 flags of the process
 * it runs in. A flag of the user's own on node's command line wins.
 */
import * as v8 from "node:v8";

/** Invocations before TurboFan compiles a function (V8's default: 3000). */
export const turbofanInvocations = 300;

/** V8 takes its flags with one dash or two, and `_` for `-`. */
const flagName = /^--?invocation[-_]count[-_]for[-_]turbofan\b/;
const freezeFlag = /^--?(no-?)?freeze[-_]flags[-_]after[-_]init\b/;

/**
 * Sets V8's TurboFan threshold to `turbofanInvocations` on Node 22, unless
 * Node was started with one, or with V8's flags frozen after start
 * (`--freeze-flags-after-init`: changing one then aborts the process).
 * Returns the flag it set, or undefined when it left V8's or the user's.
 * (Node refuses V8 flags like these in `NODE_OPTIONS`: only the command line
 * can carry them.)
 */
export function tuneTierUp(execArgv: readonly string[] = process.execArgv, nodeVersion: string = process.versions.node): string | undefined {
  if (!nodeVersion.startsWith("22.")) return undefined;
  if (execArgv.some((a) => flagName.test(a))) return undefined;
  const freeze = execArgv.filter((a) => freezeFlag.test(a)).at(-1);
  if (freeze !== undefined && !freezeFlag.exec(freeze)?.[1]) return undefined;
  const flag = `--invocation-count-for-turbofan=${turbofanInvocations}`;
  v8.setFlagsFromString(flag);
  return flag;
}
