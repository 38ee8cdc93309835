/**
 * Summarises a V8 heap snapshot by constructor (self sizes, as DevTools' Summary view groups them), or
 * the difference between two: what N idle clients added, per client.
 *
 *   node bench/heap-summary.ts AFTER.heapsnapshot [BEFORE.heapsnapshot] [--per=N] [--top=40]
 */
import { readFileSync } from "node:fs";

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

function summarise(file: string): Map<string, { count: number; bytes: number }> {
  const s = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
  const f = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const [iType, iName, iSize] = [f.indexOf("type"), f.indexOf("name"), f.indexOf("self_size")];
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < s.nodes.length; i += f.length) {
    const type = types[s.nodes[i + iType] as number] as string;
    let name = s.strings[s.nodes[i + iName] as number] as string;
    // Group as DevTools does: objects by constructor, the rest by kind (strings and code are not told apart).
    if (type === "string" || type === "concatenated string" || type === "sliced string") name = "(string)";
    else if (type === "code") name = "(compiled code)";
    else if (type === "number") name = "(number)";
    else if (type === "array") name = `(array) ${name.length > 40 ? name.slice(0, 40) : name}`;
    else if (type === "closure") name = `(closure) ${name}`;
    else if (type === "hidden" || type === "object shape") name = `(${type}) ${name.slice(0, 40)}`;
    else if (type === "native") name = `(native) ${name.replace(/\d+/g, "N").slice(0, 60)}`;
    else if (type !== "object") name = `(${type}) ${name.slice(0, 40)}`;
    const e = out.get(name) ?? { count: 0, bytes: 0 };
    e.count++;
    e.bytes += s.nodes[i + iSize] as number;
    out.set(name, e);
  }
  return out;
}

const files = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const opt = (k: string, d: number) => Number(process.argv.find((a) => a.startsWith(`--${k}=`))?.split("=")[1] ?? d);
const per = opt("per", 1);
const top = opt("top", 40);
const after = summarise(files[0] as string);
const before = files[1] ? summarise(files[1]) : new Map<string, { count: number; bytes: number }>();
const rows = [...after].map(([k, v]) => {
  const b = before.get(k) ?? { count: 0, bytes: 0 };
  return { k, count: v.count - b.count, bytes: v.bytes - b.bytes };
});
rows.sort((a, b) => b.bytes - a.bytes);
const total = rows.reduce((a, r) => a + r.bytes, 0);
console.log(`${files[1] ? "difference" : "heap"}: ${(total / 1024 / 1024).toFixed(2)} MiB of self sizes${per > 1 ? `, ${(total / per).toFixed(0)} B per ${per === 1 ? "" : "client"} (÷${per})` : ""}`);
console.log(`${"bytes/N".padStart(10)} ${"count/N".padStart(8)}  ${"share".padStart(6)}  constructor`);
for (const r of rows.slice(0, top)) {
  console.log(`${(r.bytes / per).toFixed(0).padStart(10)} ${(r.count / per).toFixed(2).padStart(8)}  ${((r.bytes / total) * 100).toFixed(1).padStart(5)}%  ${r.k}`);
}
