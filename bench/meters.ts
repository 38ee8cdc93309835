/** Measurements a bench child takes of itself, as IPC commands. */
import { readFileSync, writeFileSync } from "node:fs";
import { PerformanceObserver } from "node:perf_hooks";
import { writeHeapSnapshot } from "node:v8";

const gc = (globalThis as { gc?: () => void }).gc;

/** Full collections so that RSS readings start from live data (needs --expose-gc). */
function collect() {
  gc?.();
  gc?.();
}

export interface CpuReading {
  /** User + system CPU time in ms since cpuBegin (all threads: GC helpers included). */
  cpuMs: number;
  /** Time the main thread spent in GC pauses since cpuBegin, ms. */
  gcMs: number;
  wallMs: number;
}

export function cpuMeter() {
  let start = process.cpuUsage();
  let t0 = performance.now();
  let gcMs = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcMs += e.duration;
  }).observe({ entryTypes: ["gc"] });
  return {
    commands: {
      cpuBegin() {
        start = process.cpuUsage();
        t0 = performance.now();
        gcMs = 0;
      },
      cpuEnd(): CpuReading {
        const d = process.cpuUsage(start);
        return { cpuMs: (d.user + d.system) / 1000, gcMs, wallMs: performance.now() - t0 };
      },
    },
  };
}

export interface RssReading {
  /** RSS after full collections when rssBegin was called, bytes. */
  baseline: number;
  /** Highest RSS since rssBegin, bytes: the kernel's VmHWM (reset through /proc/self/clear_refs), else sampled every 5 ms. */
  peak: number;
  /** How the peak was taken. */
  method: "VmHWM" | "sampled";
}

/** Peak RSS (VmHWM) in bytes, or undefined where /proc does not offer it. */
function highWaterMark(): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Resets the kernel's peak RSS of this process (Linux >= 4.0). */
function resetHighWaterMark(): boolean {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
    return highWaterMark() !== undefined;
  } catch {
    return false;
  }
}

export function rssMeter() {
  let baseline = 0;
  let peak = 0;
  let viaKernel = false;
  let timer: NodeJS.Timeout | undefined;
  const sample = () => {
    const rss = process.memoryUsage.rss();
    if (rss > peak) peak = rss;
  };
  return {
    commands: {
      /** RSS after full collections, bytes. */
      rssNow(): number {
        collect();
        return process.memoryUsage.rss();
      },
      rssBegin() {
        collect();
        baseline = peak = process.memoryUsage.rss();
        clearInterval(timer);
        timer = undefined;
        // The kernel keeps the peak for free; sampling would cost the measured process CPU.
        viaKernel = resetHighWaterMark();
        if (!viaKernel) timer = setInterval(sample, 5);
      },
      rssEnd(): RssReading {
        clearInterval(timer);
        timer = undefined;
        sample();
        if (viaKernel) peak = Math.max(peak, highWaterMark() ?? 0);
        return { baseline, peak, method: viaKernel ? "VmHWM" : "sampled" };
      },
      heapSnapshot(path: unknown) {
        collect();
        return writeHeapSnapshot(String(path));
      },
    },
  };
}
