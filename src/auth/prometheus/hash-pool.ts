import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { HashJob, HashResult } from "./hash-worker.ts";

/**
 * Runs bcrypt comparisons on worker threads so that no hash blocks the event
 * loop (bcryptjs' own async API only slices the work, it still runs on the
 * main thread). Workers start on demand, up to one per CPU, each runs one
 * comparison at a time, and each ends after `idleMs` without work; an idle
 * worker never keeps the process alive (`unref`). A worker that dies fails its comparison
 * and is replaced by the next one needed.
 *
 * @internal
 */
export interface HashPool {
  /** Whether `password` matches the bcrypt `hash`. */
  compare(password: string, hash: string): Promise<boolean>;
  /** Workers running now (for tests). */
  readonly workers: number;
}

interface Slot {
  worker: Worker;
  job?: { id: number; resolve: (ok: boolean) => void; reject: (e: Error) => void };
  idle?: NodeJS.Timeout;
}

// The worker file sits next to this one: hash-worker.ts when Node runs the sources, hash-worker.js in dist/.
const workerUrl = new URL(`./hash-worker${import.meta.url.slice(import.meta.url.lastIndexOf("."))}`, import.meta.url);

export function createHashPool(options: { maxWorkers?: number; idleMs?: number } = {}): HashPool {
  const maxWorkers = options.maxWorkers ?? availableParallelism();
  const idleMs = options.idleMs ?? 10_000;
  const slots = new Set<Slot>();
  const queue: (HashJob & { resolve: (ok: boolean) => void; reject: (e: Error) => void })[] = [];
  let nextId = 0;

  function spawn(): Slot {
    const slot: Slot = { worker: new Worker(workerUrl) };
    slot.worker.on("message", (r: HashResult) => {
      const job = slot.job;
      slot.job = undefined;
      if (job && job.id === r.id) {
        if (r.error !== undefined) job.reject(new Error(`bcrypt: ${r.error}`));
        else job.resolve(r.ok === true);
      }
      dispatch(slot);
    });
    const gone = (e: Error) => {
      if (!slots.delete(slot)) return;
      clearTimeout(slot.idle);
      slot.job?.reject(e);
      slot.job = undefined;
      const next = queue[0];
      if (next) take(spawn(), queue.shift() as typeof next);
    };
    slot.worker.on("error", gone);
    slot.worker.on("exit", (code) => gone(new Error(`bcrypt worker exited with code ${code}`)));
    slots.add(slot);
    return slot;
  }

  function take(slot: Slot, job: (typeof queue)[number]): void {
    clearTimeout(slot.idle);
    slot.idle = undefined;
    slot.job = job;
    slot.worker.ref(); // a comparison in progress keeps the process alive, as crypto.scrypt's does
    slot.worker.postMessage({ id: job.id, password: job.password, hash: job.hash } satisfies HashJob);
  }

  function dispatch(slot: Slot): void {
    const next = queue.shift();
    if (next) return take(slot, next);
    slot.worker.unref();
    slot.idle = setTimeout(() => {
      slots.delete(slot);
      void slot.worker.terminate();
    }, idleMs);
    slot.idle.unref();
  }

  return {
    compare(password, hash) {
      return new Promise((resolve, reject) => {
        const job = { id: nextId++, password, hash, resolve, reject };
        for (const slot of slots) if (!slot.job) return take(slot, job);
        if (slots.size < maxWorkers) return take(spawn(), job);
        queue.push(job);
      });
    },
    get workers() {
      return slots.size;
    },
  };
}

/** The process-wide pool used by bcrypt stored passwords. @internal */
export const bcryptPool: HashPool = createHashPool();
