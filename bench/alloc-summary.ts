/**
 * Summarises a sampling allocation profile (bench/alloc-ab.ts --prof=DIR): bytes allocated per scrape in all,
 * and by the function that allocated them.
 *
 *   node bench/alloc-summary.ts FILE.heapprofile SCRAPES [--top=30]
 */
import * as fs from "node:fs";

interface Node { callFrame: { functionName: string; url: string; lineNumber: number }; selfSize: number; children: Node[] }
const [file, scrapesArg] = process.argv.slice(2);
if (!file || !scrapesArg) {
  console.error("usage: node bench/alloc-summary.ts FILE.heapprofile SCRAPES [--top=30]");
  process.exit(2);
}
const scrapes = Number(scrapesArg);
const top = Number(/--top=(\d+)/.exec(process.argv.join(" "))?.[1] ?? 30);
const head = (JSON.parse(fs.readFileSync(file, "utf8")) as { head: Node }).head;
const bySite = new Map<string, number>();
let total = 0;
const walk = (n: Node) => {
  const f = n.callFrame;
  const site = `${f.functionName || "(anonymous)"} ${f.url.replace(/.*\/(src|node_modules)\//, "$1/")}:${f.lineNumber + 1}`;
  total += n.selfSize;
  bySite.set(site, (bySite.get(site) ?? 0) + n.selfSize);
  for (const c of n.children) walk(c);
};
walk(head);
console.log(`${file}: ${(total / scrapes).toFixed(0)} bytes allocated per scrape (sampled)`);
for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${(bytes / scrapes).toFixed(0).padStart(7)}  ${site}`);
}
