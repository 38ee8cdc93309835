/**
 * Readings the driver takes of another process from /proc (Linux): CPU time
 * (utime + stime of /proc/PID/stat, all threads), RSS and its peak (VmRSS,
 * VmHWM of /proc/PID/status). For processes that are not bench children (the
 * `promproxy client` forwarder) and for comparing processes alike.
 */
import { readFileSync } from "node:fs";

/** Clock ticks per second of /proc/PID/stat (USER_HZ; 100 on every Linux this runs on). */
const ticksPerSecond = 100;

/** User and system CPU time, ms, of a /proc/PID/stat (or /proc/PID/task/TID/stat) text. */
export function statTimesMs(stat: string): { user: number; sys: number } {
  // The command name (field 2) may contain spaces and parentheses: fields are counted after the last ")".
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: (Number(rest[11]) * 1000) / ticksPerSecond, sys: (Number(rest[12]) * 1000) / ticksPerSecond };
}

/** Minor page faults of a /proc stat line's process (field 10: all its threads for /proc/PID/stat). */
export function statMinorFaults(stat: string): number {
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[7]);
}

/** CPU time of the process so far (user + system, all threads), ms; NaN when unreadable. */
export function procCpuMs(pid: number): number {
  try {
    const { user, sys } = statTimesMs(readFileSync(`/proc/${pid}/stat`, "utf8"));
    return user + sys;
  } catch {
    return NaN;
  }
}

function statusKb(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Resident set size now, bytes. */
export const procRss = (pid: number) => statusKb(pid, "VmRSS");
/** Peak resident set size since start (or the last clear_refs), bytes. */
export const procHwm = (pid: number) => statusKb(pid, "VmHWM");

/** A CPU meter over several processes: begin(), then end() gives ms per pid since begin. */
export function cpuDelta(pids: Record<string, number>) {
  let start: Record<string, number> = {};
  let t0 = 0;
  return {
    begin() {
      start = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, procCpuMs(pid)]));
      t0 = performance.now();
    },
    end(): { wallMs: number; cpuMs: Record<string, number> } {
      return {
        wallMs: performance.now() - t0,
        cpuMs: Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, procCpuMs(pid) - (start[k] ?? NaN)])),
      };
    },
  };
}
