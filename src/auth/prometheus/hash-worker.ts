/**
 * The body of a bcrypt worker thread (see `hash-pool.ts`): bcryptjs is pure
 * JavaScript, so a check run on the main thread blocks its event loop for the
 * whole hash (about 70 ms at cost 10); here it blocks only this thread.
 *
 * @internal
 */
import { parentPort } from "node:worker_threads";
import bcrypt from "bcryptjs";

/** A request from the pool: compare `password` with the bcrypt `hash`. */
export interface HashJob {
  id: number;
  password: string;
  hash: string;
}

/** The answer: whether they match, or why the comparison failed. */
export interface HashResult {
  id: number;
  ok?: boolean;
  error?: string;
}

parentPort?.on("message", (job: HashJob) => {
  let result: HashResult;
  try {
    result = { id: job.id, ok: bcrypt.compareSync(job.password, job.hash) };
  } catch (e) {
    result = { id: job.id, error: (e as Error).message };
  }
  parentPort?.postMessage(result);
});
