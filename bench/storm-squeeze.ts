/**
 * The storm section's overload on demand: the new server's process (all its
 * threads) pinned to `cpus` (taskset) and `burners` busy-loop processes pinned
 * to the same CPUs for the length of the storm, so that the server gets a
 * share of one core while 10,000 clients come back: the loaded machine under
 * which the storm used to collapse, reproduced instead of waited for.
 * Linux only (taskset, util-linux).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";

export interface Squeeze {
  /** CPU list for taskset, e.g. "0". */
  cpus: string;
  /** Busy-loop processes pinned beside the server. */
  burners: number;
}

/** Pins every thread of `pid` to the squeeze's CPUs and starts its burners; returns their stop. */
export function squeeze(pid: number, s: Squeeze): () => void {
  execFileSync("taskset", ["-a", "-p", "-c", s.cpus, String(pid)], { stdio: "ignore" });
  const burners: ChildProcess[] = [];
  for (let i = 0; i < s.burners; i++) {
    burners.push(spawn("taskset", ["-c", s.cpus, process.execPath, "-e", "for (;;);"], { stdio: "ignore" }));
  }
  const stop = () => {
    for (const b of burners) b.kill("SIGKILL");
    process.off("exit", stop);
  };
  process.once("exit", stop); // never left running when the bench ends early
  return stop;
}
