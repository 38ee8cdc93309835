/**
 * Summarises a V8 .cpuprofile (from `npm run bench -- --cpu-prof=DIR`):
 * self and inclusive time by package/area and by function.
 *
 *   node bench/prof-summary.ts FILE.cpuprofile [--top=25] [--match=REGEX] [--window=FILE.json]
 *
 * --match limits the function tables to functions whose name or file matches. --window counts only the
 * samples within { from, to } (CLOCK_MONOTONIC microseconds, a profile's own clock), as `seq-cpu.ts
 * --cpu-prof=DIR` writes to DIR/window.json: the measured scrapes without the process's start-up.
 */
import * as fs from "node:fs";

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

const file = process.argv[2];
if (!file) {
  console.error("usage: node bench/prof-summary.ts FILE.cpuprofile [--top=N] [--match=REGEX]");
  process.exit(2);
}
const opt = new Map(process.argv.slice(3).map((a) => {
  const m = /^--([^=]+)=?(.*)$/.exec(a);
  return [m?.[1] ?? a, m?.[2] ?? ""] as const;
}));
const top = Number(opt.get("top") || 25);
const match = opt.get("match") ? new RegExp(opt.get("match") as string) : undefined;
const window = opt.get("window") ? (JSON.parse(fs.readFileSync(opt.get("window") as string, "utf8")) as { from: number; to: number }) : undefined;

const p = JSON.parse(fs.readFileSync(file, "utf8")) as Profile;
const byId = new Map<number, ProfileNode>();
const parent = new Map<number, number>();
for (const n of p.nodes) {
  byId.set(n.id, n);
  for (const c of n.children ?? []) parent.set(c, n.id);
}

/** Where a frame belongs: a package, a node: internal area, our source, or a V8 pseudo-frame. */
export function area(cf: CallFrame): string {
  const u = cf.url;
  if (!u) {
    if (cf.functionName.startsWith("(")) return cf.functionName;
    return "(native)";
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  if (nm) return nm[1] as string;
  if (u.startsWith("node:")) {
    const m = /^node:(?:internal\/)?([^/]+(?:\/[^/]+)?)/.exec(u);
    return "node:" + (m?.[1] ?? u).replace(/\.js$/, "");
  }
  const src = /\/(src|gen|bench|test)\/(.*)$/.exec(u);
  if (src) return `${src[1]}/${src[2]}`;
  return u;
}
function fnKey(cf: CallFrame): string {
  const f = cf.url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*\/(src|gen|bench)\//, "$1/");
  return `${cf.functionName || "(anonymous)"} ${f}:${cf.lineNumber + 1}`;
}

const selfArea = new Map<string, number>();
const selfFn = new Map<string, number>();
const inclArea = new Map<string, number>();
const inclFn = new Map<string, number>();
let total = 0;
let idle = 0;
const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
let at = p.startTime;
for (let i = 0; i < p.samples.length; i++) {
  at += p.timeDeltas[i] ?? 0;
  if (window && (at < window.from || at > window.to)) continue;
  const dt = (p.timeDeltas[i] ?? 0) / 1000; // ms
  const leaf = byId.get(p.samples[i] as number);
  if (!leaf) continue;
  total += dt;
  if (leaf.callFrame.functionName === "(idle)") {
    idle += dt;
    continue;
  }
  add(selfArea, area(leaf.callFrame), dt);
  add(selfFn, fnKey(leaf.callFrame), dt);
  const seenA = new Set<string>();
  const seenF = new Set<string>();
  for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
    const cf = (byId.get(id) as ProfileNode).callFrame;
    if (cf.functionName === "(root)") break;
    const a = area(cf);
    const f = fnKey(cf);
    if (!seenA.has(a)) (seenA.add(a), add(inclArea, a, dt));
    if (!seenF.has(f)) (seenF.add(f), add(inclFn, f, dt));
  }
}
const busy = total - idle;
const pct = (v: number) => `${((v / busy) * 100).toFixed(1).padStart(5)}%`;
const ms = (v: number) => `${v.toFixed(0).padStart(7)} ms`;
const rows = (m: Map<string, number>, n: number, filter = false) =>
  [...m].filter(([k]) => !filter || !match || match.test(k)).sort((a, b) => b[1] - a[1]).slice(0, n);

console.log(`${file}: ${(total / 1000).toFixed(1)} s profiled, ${(busy / 1000).toFixed(2)} s busy (not idle)`);
console.log("\nself time by area (% of busy):");
for (const [k, v] of rows(selfArea, top)) console.log(`  ${pct(v)} ${ms(v)}  ${k}`);
console.log("\ninclusive time by area:");
for (const [k, v] of rows(inclArea, top)) console.log(`  ${pct(v)} ${ms(v)}  ${k}`);
console.log("\nself time by function:");
for (const [k, v] of rows(selfFn, top, true)) console.log(`  ${pct(v)} ${ms(v)}  ${k}`);
console.log("\ninclusive time by function:");
for (const [k, v] of rows(inclFn, top, true)) console.log(`  ${pct(v)} ${ms(v)}  ${k}`);
