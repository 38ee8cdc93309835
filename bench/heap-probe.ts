/**
 * Preloaded (`--import`) into a bench server by bench/alloc-ab.ts: answers the driver's `{ probe: "heapNow" }`
 * messages on the IPC channel with the V8 heap's used bytes and the count of garbage collections so far, and
 * `allocStart` / `allocStop` (argument: a file) with a sampling allocation profile that keeps the objects
 * collected since (every allocation, not only what survives; `node bench/alloc-ab.ts --prof=DIR`). Answers are
 * `{ probed: NAME, result }`; the child's own command table (bench/ipc.ts) answers such a message with an error
 * for no request id, which the driver drops.
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { PerformanceObserver } from "node:perf_hooks";
import { getHeapStatistics } from "node:v8";

let gcs = 0;
new PerformanceObserver((l) => void (gcs += l.getEntries().length)).observe({ entryTypes: ["gc"] });
const session = new Session();
session.connect();
const post = (method: string, params?: object) =>
  new Promise<unknown>((resolve, reject) => session.post(method, params, (e, r) => (e ? reject(e) : resolve(r))));

process.on("message", (m: { probe?: string; arg?: unknown }) => {
  const answer = (result: unknown) => process.send?.({ probed: m.probe, result });
  if (m.probe === "heapNow") answer({ used: getHeapStatistics().used_heap_size, gcs });
  else if (m.probe === "allocStart") {
    void post("HeapProfiler.enable")
      .then(() => post("HeapProfiler.startSampling", { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true }))
      .then(() => answer(true));
  } else if (m.probe === "allocStop") {
    void post("HeapProfiler.stopSampling").then((r) => {
      writeFileSync(m.arg as string, JSON.stringify((r as { profile: unknown }).profile));
      answer(true);
    });
  }
});
